# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
"""Every config loads; the full-size configs build and run one forward pass."""
from pathlib import Path

import pytest
import torch
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmdet.utils import register_all_modules
from mmengine.config import Config

from tests.conftest import REPO_ROOT

ALL_CONFIGS = sorted((REPO_ROOT / 'configs').rglob('*.py'))
MASKDINO_CONFIGS = sorted((REPO_ROOT / 'configs/maskdino').glob('*.py'))
FULL_SIZE = [p for p in MASKDINO_CONFIGS if 'shapes' not in p.name]


@pytest.mark.parametrize('path', ALL_CONFIGS, ids=lambda p: p.name)
def test_config_loads(path: Path):
    cfg = Config.fromfile(str(path))
    assert isinstance(cfg.to_dict(), dict)
    if path.parent.name == 'maskdino':
        assert cfg.default_scope == 'mmdet'
        assert 'mmmaskdino' in cfg.custom_imports['imports']
        assert cfg.model.type == 'MaskDINO'


def _expected_outputs(cfg: Config) -> dict:
    head = cfg.model.panoptic_head
    classes = head.num_things_classes + head.num_stuff_classes
    semantic_ce = head.predictor.get('semantic_ce', False)
    return dict(
        queries=head.predictor.num_queries,
        logits=classes + 1 if semantic_ce else classes)


@pytest.mark.parametrize('path', FULL_SIZE, ids=lambda p: p.name)
def test_full_size_config_forward(path: Path):
    register_all_modules()
    cfg = Config.fromfile(str(path))
    cfg.model.backbone.init_cfg = None
    if cfg.model.backbone.get('norm_cfg', {}).get('type') == 'SyncBN':
        cfg.model.backbone.norm_cfg = dict(type='BN', requires_grad=True)
    model = MODELS.build(cfg.model).eval()
    size = 160  # enough encoder tokens for 300 queries
    meta = dict(
        img_shape=(size, size),
        ori_shape=(size, size),
        batch_input_shape=(size, size),
        pad_shape=(size, size))
    with torch.no_grad():
        logits, masks, boxes = model._forward(
            torch.randn(1, 3, size, size), [DetDataSample(metainfo=meta)])
    expected = _expected_outputs(cfg)
    assert logits.shape == (1, expected['queries'], expected['logits'])
    assert masks.shape == (1, expected['queries'], size // 4, size // 4)
    assert boxes.shape == (1, expected['queries'], 4)
    assert torch.isfinite(logits).all() and torch.isfinite(masks).all()
    assert ((boxes >= 0) & (boxes <= 1)).all()
