# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
"""One switch, one place: class counts and ``semantic_ce`` are filled in from
``panoptic_head``; a config that contradicts them is refused."""
import pytest
from mmdet.registry import MODELS
from mmengine.config import Config

from tests.conftest import REPO_ROOT
from tests.test_apis.utils import register_all_modules  # noqa: F401

CONFIGS = REPO_ROOT / 'configs' / 'maskdino'


def _model_cfg(name: str):
    return Config.fromfile(str(CONFIGS / f'{name}.py')).model


@pytest.mark.parametrize('name, semantic_ce', [
    ('maskdino_r18-tiny_1xb4-2.2k_shapes', False),
    ('maskdino_r18-tiny_1xb4-2k_shapes-semantic', True),
])
def test_semantic_ce_follows_the_class_loss(name, semantic_ce):
    cfg = _model_cfg(name)
    model = MODELS.build(cfg)
    head = model.panoptic_head
    classes = head.num_classes
    assert head.semantic_ce is semantic_ce
    assert model.panoptic_fusion_head.semantic_ce is semantic_ce
    assert head.predictor.class_embed.out_features == classes + semantic_ce
    assert head.criterion.loss_cls.use_sigmoid is not semantic_ce
    assert model.panoptic_fusion_head.num_classes == classes
    assert head.criterion.num_things_classes == head.num_things_classes


def test_switching_the_class_loss_switches_every_part():
    cfg = _model_cfg('maskdino_r18-tiny_1xb4-2.2k_shapes')
    cfg.panoptic_head.criterion.loss_cls = dict(
        type='CrossEntropyLoss', use_sigmoid=False, loss_weight=4.0)
    model = MODELS.build(cfg)
    classes = model.panoptic_head.num_classes
    assert model.panoptic_head.predictor.class_embed.out_features == \
        classes + 1
    assert model.panoptic_fusion_head.semantic_ce
    # the "no object" weight (0.1) is added to the class weights
    assert model.panoptic_head.criterion.loss_cls.class_weight == \
        [1.0] * classes + [0.1]


@pytest.mark.parametrize('where, key, value', [
    ('predictor', 'semantic_ce', True),
    ('predictor', 'num_classes', 3),
    ('criterion', 'num_classes', 3),
    ('test_cfg', 'semantic_ce', True),
])
def test_contradictions_are_errors(where, key, value):
    cfg = _model_cfg('maskdino_r18-tiny_1xb4-2.2k_shapes')
    target = cfg.test_cfg if where == 'test_cfg' else \
        cfg.panoptic_head[where]
    target[key] = value
    with pytest.raises(ValueError, match=key):
        MODELS.build(cfg)


def test_agreeing_repetition_is_accepted():
    cfg = _model_cfg('maskdino_r18-tiny_1xb4-2k_shapes-semantic')
    cfg.panoptic_head.predictor.semantic_ce = True
    cfg.test_cfg.semantic_ce = True
    assert MODELS.build(cfg).panoptic_fusion_head.semantic_ce


def test_unknown_test_cfg_key_is_an_error():
    cfg = _model_cfg('maskdino_r18-tiny_1xb4-2.2k_shapes')
    cfg.test_cfg.max_per_img = 50  # mmdet's spelling, not this head's
    with pytest.raises(ValueError, match='max_per_img'):
        MODELS.build(cfg)
