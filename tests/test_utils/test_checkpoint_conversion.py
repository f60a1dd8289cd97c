# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
"""Conversion of official (detectron2) checkpoints, direct loading and
fine-tuning loads."""
import functools
import logging
from dataclasses import replace

import pytest
import torch
from mmdet.models.layers import PatchMerging
from mmdet.registry import MODELS
from mmdet.utils import register_all_modules
from mmengine.config import Config
from mmengine.logging import MMLogger
from mmengine.runner import load_checkpoint

from mmmaskdino.utils.checkpoint_conversion import (
    check_state_dict_fits, convert_backbone_state_dict,
    convert_official_state_dict, official_weights)
from tests.conftest import REPO_ROOT, load_parity_fixture
from tests.official_keys import (R50_INSTANCE, RELEASED, TINY, OfficialSpec,
                                 head_shapes, model_cfg, official_shapes,
                                 official_state_dict, spec_from_fixture)


def _released_model(config_file: str) -> torch.nn.Module:
    register_all_modules()
    cfg = Config.fromfile(
        str(REPO_ROOT / 'configs' / 'maskdino' / config_file))
    cfg.model.backbone.init_cfg = None
    return MODELS.build(cfg.model)


@functools.lru_cache(maxsize=1)
def _official(spec: OfficialSpec) -> dict:
    """Synthetic official state dict; the two Swin-L instance checkpoints
    share one (the last one is kept)."""
    return official_state_dict(spec)


def test_generator_matches_official_key_counts():
    # the official R50 checkpoints: 720 keys (265 backbone) for COCO, 714 for
    # ADE
    shapes = official_shapes(R50_INSTANCE)
    assert len(shapes) == 720
    assert sum(k.startswith('backbone.') for k in shapes) == 265
    assert len(official_shapes(RELEASED['r50_ade20k'][1])) == 714
    assert shapes['sem_seg_head.pixel_decoder.input_proj.3.0.weight'] == (256,
                                                                          2048,
                                                                          3, 3)


@pytest.mark.parametrize('variant', ['instance', 'panoptic', 'semantic'])
def test_generator_matches_official_fixture(variant):
    fx = load_parity_fixture(variant)
    expected = [(k, tuple(v.shape)) for k, v in fx['state_dict'].items()]
    assert list(head_shapes(spec_from_fixture(fx)).items()) == expected


@pytest.mark.parametrize('name', list(RELEASED))
def test_released_checkpoint_loads_strictly(name):
    config_file, spec = RELEASED[name]
    model = _released_model(config_file)
    model_state = model.state_dict()
    official = _official(spec)
    converted = convert_official_state_dict(official)
    check_state_dict_fits(converted, model_state)
    result = model.load_state_dict(converted, strict=True)
    assert (result.missing_keys, result.unexpected_keys) == ([], [])
    name = 'panoptic_head.predictor.decoder.layers.0.ffn.layers.1.weight'
    assert torch.equal(model.state_dict()[name], converted[name])
    # every official tensor except the aliases and criterion is used once
    aliases = 2 + 2 * 6 * spec.dec_layers
    tracked = sum(k.endswith('num_batches_tracked')
                  for k in model_state) * (not spec.sync_bn)
    assert len(converted) == len(official) - aliases - 1 + tracked


def test_resnet_names_and_values():
    official = _official(R50_INSTANCE)
    converted = convert_official_state_dict(official)
    pairs = {
        'backbone.stem.conv1.weight':
        'backbone.conv1.weight',
        'backbone.stem.conv1.norm.running_var':
        'backbone.bn1.running_var',
        'backbone.res2.0.conv2.norm.weight':
        'backbone.layer1.0.bn2.weight',
        'backbone.res3.0.shortcut.weight':
        'backbone.layer2.0.downsample.0.weight',
        'backbone.res5.2.conv3.norm.running_mean':
        'backbone.layer4.2.bn3.running_mean',
        'backbone.res4.0.shortcut.norm.bias':
        'backbone.layer3.0.downsample.1.bias',
    }
    for src, dst in pairs.items():
        assert torch.equal(converted[dst], official[src]), dst
    assert converted['backbone.layer1.0.bn1.num_batches_tracked'].item() == 0
    assert sum(k.endswith('num_batches_tracked') for k in converted) == 53


def test_head_names_and_aliases():
    official = _official(R50_INSTANCE)
    converted = convert_official_state_dict(official)
    p, q = 'sem_seg_head.predictor.', 'panoptic_head.predictor.'
    assert torch.equal(converted[q + 'bbox_embed.layers.2.weight'],
                       official[p + 'decoder.bbox_embed.8.layers.2.weight'])
    assert torch.equal(converted[q + 'decoder.norm.bias'],
                       official[p + 'decoder_norm.bias'])
    assert torch.equal(converted[q + 'decoder.layers.4.norms.0.weight'],
                       official[p + 'decoder.layers.4.norm2.weight'])
    assert not any('criterion' in k or 'decoder_norm' in k for k in converted)

    broken = dict(official)
    broken[p + 'bbox_embed.3.layers.0.bias'] = torch.zeros(256)
    with pytest.raises(
            ValueError,
            match=r'bbox_embed\.3\.layers\.0\.bias '
            r'should be a copy of .*_bbox_embed\.layers\.0\.bias'):
        convert_official_state_dict(broken)


def test_swin_patch_merging_channel_order():
    """Official Swin merges ``cat(x0, x1, x2, x3)`` (x1 = odd rows); the
    converted weights give the same output in mmdet's unfold-based layer."""
    gen = torch.Generator().manual_seed(0)
    channels, h, w = 6, 4, 6
    official = {
        'layers.0.downsample.reduction.weight':
        torch.randn(2 * channels, 4 * channels, generator=gen),
        'layers.0.downsample.norm.weight':
        1 + torch.randn(4 * channels, generator=gen),
        'layers.0.downsample.norm.bias':
        torch.randn(4 * channels, generator=gen),
        'patch_embed.proj.weight':
        torch.zeros(1),
    }
    converted = convert_backbone_state_dict(official)
    merge = PatchMerging(channels, 2 * channels)
    merge.load_state_dict({
        k[len('backbone.stages.0.downsample.'):]: v
        for k, v in converted.items() if 'downsample' in k
    })
    x = torch.randn(2, h, w, channels, generator=gen)
    cat = torch.cat([
        x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]
    ], -1).reshape(2, -1, 4 * channels)
    expected = torch.nn.functional.linear(
        torch.nn.functional.layer_norm(
            cat, (4 * channels, ), official['layers.0.downsample.norm.weight'],
            official['layers.0.downsample.norm.bias']),
        official['layers.0.downsample.reduction.weight'])
    out, out_size = merge(x.reshape(2, h * w, channels), (h, w))
    assert out_size == (h // 2, w // 2)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)


def test_mismatch_messages():
    converted = convert_official_state_dict(_official(R50_INSTANCE))
    with pytest.raises(ValueError) as err:
        check_state_dict_fits(
            converted,
            _released_model(RELEASED['r50_panoptic'][0]).state_dict())
    assert ('checkpoint has 80 classes (predictor.denoising.label_enc.weight '
            '80x256) but the config has 133 classes') in str(err.value)
    assert 'feature levels' not in str(err.value)

    with pytest.raises(ValueError) as err:
        check_state_dict_fits(
            converted,
            _released_model(RELEASED['r50_instance_hid1024'][0]).state_dict())
    message = str(err.value)
    assert 'checkpoint has 4 feature levels' in message
    assert 'but the config has 3 feature levels' in message
    assert 'checkpoint has encoder FFN width 2048' in message
    assert 'classes' not in message


def test_official_weights_detection():
    official = _official(TINY)
    assert official_weights({'model': official, 'iteration': 3}) is official
    assert official_weights(official) is official
    assert official_weights(convert_official_state_dict(official)) is None
    assert official_weights({'model': {'backbone.conv1.weight': 0}}) is None


def _tiny_model(num_classes: int):
    register_all_modules()
    spec = replace(TINY, num_classes=num_classes)
    return MODELS.build(model_cfg(spec, num_things=num_classes))


class _Records(logging.Handler):

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def _load_with_logs(model, path: str) -> list:
    """``load_checkpoint`` as the Runner calls it; the log records it made."""
    logger = MMLogger.get_current_instance()
    handler = _Records()
    logger.addHandler(handler)
    try:
        load_checkpoint(model, path, logger='current')
    finally:
        logger.removeHandler(handler)
    return handler.records


def test_direct_load_of_official_checkpoint(tmp_path):
    official = _official(TINY)
    path = tmp_path / 'official.pth'
    torch.save({'model': official, 'iteration': 90000}, path)
    model = _tiny_model(7)
    records = _load_with_logs(model, str(path))

    converted = convert_official_state_dict(official)
    state = model.state_dict()
    assert set(state) == set(converted)
    assert all(torch.equal(state[k], v) for k, v in converted.items())
    assert [r.levelno for r in records].count(logging.WARNING) == 0
    assert any('Converted an official Mask DINO' in r.getMessage()
               for r in records)


def test_finetune_load_keeps_own_class_tensors(tmp_path):
    official = _official(TINY)  # 7 classes
    path = tmp_path / 'official.pth'
    torch.save({'model': official}, path)
    model = _tiny_model(3)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    records = _load_with_logs(model, str(path))

    warnings = [
        r.getMessage() for r in records if r.levelno >= logging.WARNING
    ]
    assert len(warnings) == 1
    assert ('class_embed.weight (7x64 -> 3x64), class_embed.bias (7 -> 3), '
            'denoising.label_enc.weight (7x64 -> 3x64)') in warnings[0]
    converted = convert_official_state_dict(official)
    for key, value in model.state_dict().items():
        if 'class_embed' in key or 'label_enc' in key:
            assert torch.equal(value, before[key]), key
        else:
            assert torch.equal(value, converted[key]), key
