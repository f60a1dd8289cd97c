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
    # a softmax class loss has a "no object" logit
    semantic_ce = not head.criterion.loss_cls.get('use_sigmoid', True)
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


COSTS = [
    'FocalLossCost', 'NormalizedBBoxL1Cost', 'NormalizedGIoUCost',
    'FastCrossEntropyLossCost', 'DiceCost'
]
LOSSES = ('loss_cls', 'loss_mask', 'loss_dice', 'loss_bbox', 'loss_iou')


@pytest.mark.parametrize('path', MASKDINO_CONFIGS, ids=lambda p: p.name)
def test_config_shows_match_costs_and_loss_weights(path: Path):
    """Every config states the Hungarian costs and the five loss terms with
    their weights (the official 4 / 5 / 5 / 5 / 2)."""
    criterion = Config.fromfile(str(path)).model.panoptic_head.criterion
    costs = criterion.assigner.match_costs
    assert [c.type for c in costs] == COSTS
    assert [c.weight for c in costs] == [4.0, 5.0, 2.0, 5.0, 5.0]
    assert [criterion[k].loss_weight
            for k in LOSSES] == [4.0, 5.0, 5.0, 5.0, 2.0]


def test_a_loss_weight_changed_in_the_config_changes_training():
    """Doubling ``loss_dice.loss_weight`` in the config doubles every dice
    term of the same step and leaves the others as they are."""
    from tests.test_models.utils import batch_for, render_images, tiny_config
    register_all_modules()
    losses = []
    for weight in (5.0, 10.0):
        cfg = tiny_config('instance')
        cfg.model.panoptic_head.criterion.loss_dice.loss_weight = weight
        torch.manual_seed(0)
        model = MODELS.build(cfg.model).train()
        samples = batch_for(model, num_objects=(2, 3))
        torch.manual_seed(1)
        with torch.no_grad():
            losses.append(model.loss(render_images(samples), samples))
    base, doubled = losses
    for key in base:
        factor = 2.0 if key.endswith('loss_dice') else 1.0
        torch.testing.assert_close(doubled[key], factor * base[key])
    assert base['loss_dice'].item() > 0
