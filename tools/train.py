# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
r"""Train a detector with MMEngine's Runner.

Works with mmmaskdino configs and with stock MMDetection configs alike
(``mmdet::path/in/mmdet/configs.py`` or a file). The annotation files of the
train and val data are checked before the Runner is built
(:mod:`mmmaskdino.datasets.annotation_checks`)::

    python tools/train.py \
        configs/maskdino/maskdino_r18-tiny_1xb4-2.2k_shapes.py
    python tools/train.py CONFIG --data-root data/bundled/coco/  # elsewhere
    python tools/train.py CONFIG --resume  # latest checkpoint in work_dir
    python tools/train.py CONFIG --resume PATH.pth  # a given checkpoint
    bash tools/dist_train.sh CONFIG 8  # distributed
"""
import argparse

from mmengine.config import Config

from mmmaskdino.datasets.annotation_checks import check_datasets
from mmmaskdino.utils.tool_utils import (add_common_args, build_runner,
                                         enable_amp, load_runner_config)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Train a detector')
    parser.add_argument('config', help='train config file path')
    add_common_args(parser)
    parser.add_argument(
        '--amp',
        action='store_true',
        help='enable automatic mixed precision training')
    parser.add_argument(
        '--auto-scale-lr',
        action='store_true',
        help='scale the learning rate by the actual total batch size')
    parser.add_argument(
        '--resume',
        nargs='?',
        type=str,
        const='auto',
        help='resume from the given checkpoint, or from the latest one in '
        'the work dir when no path is given')
    return parser.parse_args()


def setup_cfg(args: argparse.Namespace) -> Config:
    """Merge command-line options into the config."""
    cfg = load_runner_config(args)
    if args.amp:
        enable_amp(cfg)

    if args.auto_scale_lr:
        if 'auto_scale_lr' not in cfg or 'base_batch_size' not in cfg.get(
                'auto_scale_lr', {}):
            raise RuntimeError('--auto-scale-lr needs `auto_scale_lr` with '
                               '`base_batch_size` in the config')
        cfg.auto_scale_lr.enable = True

    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = args.resume
    return cfg


def main() -> None:
    args = parse_args()
    cfg = setup_cfg(args)
    check_datasets(cfg, ['train', 'val'] if cfg.get('val_cfg') else ['train'])
    runner = build_runner(cfg)
    runner.train()


if __name__ == '__main__':
    main()
