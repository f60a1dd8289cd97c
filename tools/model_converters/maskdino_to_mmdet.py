# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
"""Convert an official Mask DINO (detectron2) checkpoint to mmmaskdino keys.

    python tools/model_converters/maskdino_to_mmdet.py SRC DST [--config CFG]

SRC is a released ``.pth`` (weights under ``model``) or its URL. With
``--config`` the result is checked against the model built from that config
(class count, feature levels, FFN widths, ...) and strict-loaded into it; the
missing and unexpected keys are printed and any of them fails the conversion.
The output records the class names in ``meta.dataset_meta`` (the test dataset
metainfo of ``--config`` when it has one, else the official training dataset
that the class count names), so ``init_detector`` / ``DetInferencer`` label
predictions correctly. Configs can also load official checkpoints directly
(``load_from``), see :mod:`mmmaskdino.utils.checkpoint_conversion`.
"""
import argparse
import copy
import os.path as osp
import sys
from typing import Optional, Sequence

import torch
from mmdet.registry import MODELS
from mmdet.utils import register_all_modules
from mmengine.config import Config
from mmengine.runner.checkpoint import CheckpointLoader

from mmmaskdino.apis import dataset_meta_from_config
from mmmaskdino.utils import official_dataset_meta
from mmmaskdino.utils.checkpoint_conversion import (
    check_state_dict_fits, convert_official_state_dict, official_weights)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Convert an official Mask DINO checkpoint')
    parser.add_argument('src', help='official checkpoint file or URL')
    parser.add_argument('dst', help='output checkpoint file')
    parser.add_argument(
        '--config', help='config the checkpoint must load into strictly')
    return parser.parse_args(argv)


def strict_load(state_dict: dict, cfg: Config) -> None:
    """Check ``state_dict`` against the model of ``cfg`` and load it.

    Raises:
        ValueError: When the shapes do not fit or any key is missing or
            unexpected.
    """
    register_all_modules()
    cfg = copy.deepcopy(cfg)
    cfg.model.backbone.init_cfg = None
    model = MODELS.build(cfg.model)
    check_state_dict_fits(state_dict, model.state_dict())
    result = model.load_state_dict(state_dict, strict=False)
    print(f'missing keys: {result.missing_keys}')
    print(f'unexpected keys: {result.unexpected_keys}')
    if result.missing_keys or result.unexpected_keys:
        raise ValueError(f'the checkpoint does not load strictly into '
                         f'{cfg.filename}')


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    checkpoint = CheckpointLoader.load_checkpoint(args.src, map_location='cpu')
    weights = official_weights(checkpoint)
    if weights is None:
        print(
            f'{args.src} is not an official Mask DINO checkpoint (no '
            '`sem_seg_head.*` weights, neither under `model` nor at the top '
            'level)',
            file=sys.stderr)
        return 1
    converted = convert_official_state_dict(weights)
    print(f'converted {len(weights)} official tensors to {len(converted)}')
    meta = dict(source=osp.basename(args.src), converter='maskdino_to_mmdet')
    if args.config:
        cfg = Config.fromfile(args.config)
        try:
            strict_load(converted, cfg)
        except ValueError as err:
            print(f'error: {err}', file=sys.stderr)
            return 1
    meta['dataset_meta'] = (
        dataset_meta_from_config(cfg) if args.config
        and 'test_dataloader' in cfg else official_dataset_meta(checkpoint))
    if meta['dataset_meta'] is None:
        print(
            'warning: unknown class count and no --config: no class names '
            'recorded',
            file=sys.stderr)
        del meta['dataset_meta']
    torch.save(dict(state_dict=converted, meta=meta), args.dst)
    print(f'saved {args.dst}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
