# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
"""Tiny shapes configs pointed at the test fixture data."""
from pathlib import Path
from typing import Any

import numpy as np
import torch
from mmdet.registry import MODELS
from mmdet.utils import register_all_modules
from mmengine.config import Config

from tests.conftest import REPO_ROOT

DEFAULT_ROOT = 'data/shapes/'

register_all_modules()


def _rebase(node: Any, data_root: str) -> None:
    """Point ``data_root`` and every ``data/shapes/...`` path at
    ``data_root``."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == 'data_root':
                node[key] = data_root
            elif isinstance(value, str) and value.startswith(DEFAULT_ROOT):
                node[key] = data_root + value[len(DEFAULT_ROOT):]
            else:
                _rebase(value, data_root)
    elif isinstance(node, list):
        for item in node:
            _rebase(item, data_root)


def shapes_config(name: str, data_root: Path) -> Config:
    """``configs/maskdino/<name>.py`` on ``data_root``, made smaller.

    Single-process data loading, 1 encoder and 2 decoder layers, 256 sampled
    mask points.
    """
    cfg = Config.fromfile(str(REPO_ROOT / 'configs/maskdino' / f'{name}.py'))
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader',
                'val_evaluator', 'test_evaluator'):
        _rebase(cfg[key], f'{data_root}/')
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[key].update(num_workers=0, persistent_workers=False)
    head = cfg.model.panoptic_head
    head.pixel_decoder.num_encoder_layers = 1
    head.predictor.num_layers = 2
    head.criterion.num_points = 256
    return cfg


def save_random_checkpoint(cfg: Config,
                           path: Path,
                           dataset_meta: dict,
                           class_bias: float = 2.0,
                           mask_offset: float = 2.0,
                           seed: int = 0) -> Path:
    """Save a randomly initialised model of ``cfg`` with its dataset_meta.

    Two biases are changed so that the untrained model predicts something
    to draw: the class-head bias is ``class_bias`` (instead of the
    focal-loss prior, sigmoid 0.01), and every mask logit is raised by
    ``mask_offset`` (one channel of the mask features and of the mask
    embedding get bias ``sqrt(mask_offset)``).
    """
    torch.manual_seed(seed)
    model = MODELS.build(cfg.model)
    model.init_weights()  # some parameters are allocated uninitialised
    state_dict = model.state_dict()
    state_dict['panoptic_head.predictor.class_embed.bias'].fill_(class_bias)
    for key in ('panoptic_head.pixel_decoder.mask_features.bias',
                'panoptic_head.predictor.mask_embed.layers.2.bias'):
        state_dict[key][0] = mask_offset**0.5
    torch.save(
        {
            'state_dict': state_dict,
            'meta': {
                'dataset_meta': dataset_meta
            }
        }, path)
    return path


def changed_pixels(a: np.ndarray, b: np.ndarray) -> int:
    """Number of pixels where two same-size images differ."""
    assert a.shape == b.shape
    return int((np.abs(a.astype(np.int32) - b).sum(-1) > 0).sum())
