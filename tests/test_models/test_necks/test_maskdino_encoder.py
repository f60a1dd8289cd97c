# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
import math

import pytest
import torch
from mmdet.registry import MODELS

from mmmaskdino.models.necks.maskdino_encoder import MaskDINOEncoder
from mmmaskdino.utils.checkpoint_conversion import convert_head_state_dict
from tests.conftest import load_parity_fixture

PREFIX = 'panoptic_head.pixel_decoder.'
BACKBONE_CHANNELS = (16, 32, 64, 128)


def build_from_fixture(fx: dict) -> MaskDINOEncoder:
    """Build the encoder from a fixture's flat official config."""
    cfg = fx['config']
    names = cfg['MODEL.SEM_SEG_HEAD.IN_FEATURES']
    trans = cfg[
        'MODEL.SEM_SEG_HEAD.DEFORMABLE_TRANSFORMER_ENCODER_IN_FEATURES']
    shapes = fx['input_shapes']
    return MODELS.build(
        dict(
            type='MaskDINOEncoder',
            in_channels=[shapes[n]['channels'] for n in names],
            strides=[shapes[n]['stride'] for n in names],
            transformer_in_features=[names.index(n) for n in trans],
            feat_channels=cfg['MODEL.SEM_SEG_HEAD.CONVS_DIM'],
            mask_dim=cfg['MODEL.SEM_SEG_HEAD.MASK_DIM'],
            num_feature_levels=cfg[
                'MODEL.SEM_SEG_HEAD.TOTAL_NUM_FEATURE_LEVELS'],
            feature_order=cfg['MODEL.SEM_SEG_HEAD.FEATURE_ORDER'],
            common_stride=cfg['MODEL.SEM_SEG_HEAD.COMMON_STRIDE'],
            num_encoder_layers=cfg[
                'MODEL.SEM_SEG_HEAD.TRANSFORMER_ENC_LAYERS'],
            ffn_channels=cfg['MODEL.SEM_SEG_HEAD.DIM_FEEDFORWARD'],
            num_heads=fx['constants']['encoder_n_heads'],
            num_points=fx['constants']['encoder_n_points'],
            norm_cfg=dict(
                type='GN', num_groups=fx['constants']['group_norm_groups'])))


def pixel_decoder_state_dict(fx: dict) -> dict:
    converted = convert_head_state_dict(fx['state_dict'])
    return {
        k[len(PREFIX):]: v
        for k, v in converted.items() if k.startswith(PREFIX)
    }


def tiny_encoder(**kwargs) -> MaskDINOEncoder:
    cfg = dict(
        in_channels=BACKBONE_CHANNELS,
        strides=(4, 8, 16, 32),
        transformer_in_features=(1, 2, 3),
        feat_channels=32,
        mask_dim=24,
        num_feature_levels=4,
        num_encoder_layers=2,
        ffn_channels=64,
        num_heads=4,
        num_points=2)
    cfg.update(kwargs)
    torch.manual_seed(0)
    encoder = MaskDINOEncoder(**cfg)
    encoder.init_weights()
    return encoder


def backbone_feats(bs: int, h: int, w: int) -> list:
    """Maps with the strides of a ResNet on an (h, w) image (ceil division)."""
    torch.manual_seed(1)
    sizes = [(math.ceil(h / s), math.ceil(w / s)) for s in (4, 8, 16, 32)]
    return [
        torch.randn(bs, c, hh, ww)
        for c, (hh, ww) in zip(BACKBONE_CHANNELS, sizes)
    ]


@pytest.mark.parametrize('variant', ['instance', 'panoptic', 'semantic'])
def test_parity_with_official(variant):
    fx = load_parity_fixture(variant)
    encoder = build_from_fixture(fx)
    state = pixel_decoder_state_dict(fx)
    assert len(state) == sum(
        k.startswith('sem_seg_head.pixel_decoder.') for k in fx['state_dict'])
    encoder.load_state_dict(state, strict=True)
    encoder.eval()
    feats = [fx['inputs'][n] for n in ('res2', 'res3', 'res4', 'res5')]
    with torch.no_grad():
        mask_features, multi_scale = encoder(feats)

    ref = fx['outputs']
    assert len(multi_scale) == len(ref['multi_scale_features'])
    assert [list(m.shape[-2:]) for m in multi_scale
            ] == [list(s) for s in ref['encoder_spatial_shapes']]
    errors = [(mask_features - ref['mask_features']).abs().max().item()]
    torch.testing.assert_close(
        mask_features, ref['mask_features'], rtol=1e-4, atol=1e-4)
    for out, expected in zip(multi_scale, ref['multi_scale_features']):
        errors.append((out - expected).abs().max().item())
        torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-4)
    print(f'{variant}: max abs error {max(errors):.3e}')
    assert max(errors) < 1e-4


@pytest.mark.parametrize('feature_order,expected_hw', [
    ('low2high', [(13, 10), (7, 5), (4, 3), (1, 1), (2, 2)]),
    ('high2low', [(1, 1), (2, 2), (4, 3), (7, 5), (13, 10)]),
])
def test_five_levels_odd_sizes(feature_order, expected_hw):
    encoder = tiny_encoder(num_feature_levels=5, feature_order=feature_order)
    assert len(encoder.input_proj) == 5
    assert encoder.input_proj[3].conv.in_channels == 128
    assert encoder.input_proj[4].conv.in_channels == 32
    assert encoder.level_embed.shape == (5, 32)
    assert encoder.encoder.layers[0].self_attn.num_levels == 5
    mask_features, multi_scale = encoder(backbone_feats(2, 100, 76))
    assert mask_features.shape == (2, 24, 25, 19)
    assert [tuple(m.shape) for m in multi_scale] == [(2, 32, h, w)
                                                     for h, w in expected_hw]


def test_two_fpn_levels():
    encoder = tiny_encoder(
        transformer_in_features=(2, 3), num_feature_levels=3)
    assert len(encoder.lateral_convs) == len(encoder.output_convs) == 2
    mask_features, multi_scale = encoder(backbone_feats(1, 64, 96))
    assert mask_features.shape == (1, 24, 16, 24)
    assert [tuple(m.shape[-2:]) for m in multi_scale] == [(4, 6), (2, 3),
                                                          (1, 2)]


def test_gradients_reach_every_parameter():
    encoder = tiny_encoder()
    torch.manual_seed(2)
    # With the official init (zero offset/attention weights) the query, hence
    # level_embed, has no effect yet: perturb those weights first.
    for layer in encoder.encoder.layers:
        for linear in (layer.self_attn.sampling_offsets,
                       layer.self_attn.attention_weights):
            torch.nn.init.normal_(linear.weight, std=0.05)
    mask_features, multi_scale = encoder(backbone_feats(2, 64, 96))
    # Random weights: the plain sum of a LayerNorm output has zero gradient.
    loss = (mask_features * torch.randn_like(mask_features)).sum()
    loss = loss + sum((m * torch.randn_like(m)).sum() for m in multi_scale)
    loss.backward()
    for name, param in encoder.named_parameters():
        assert param.grad is not None, name
        assert param.grad.abs().sum() > 0, name


def test_autocast_runs_in_fp32():
    encoder = tiny_encoder().eval()
    feats = backbone_feats(2, 64, 96)
    with torch.no_grad():
        ref_mask, ref_multi = encoder(feats)
        with torch.autocast('cpu', dtype=torch.bfloat16):
            mask_features, multi_scale = encoder(
                [f.to(torch.bfloat16) for f in feats])
            fp32_mask, _ = encoder(feats)
    assert mask_features.dtype == torch.float32
    assert all(m.dtype == torch.float32 for m in multi_scale)
    torch.testing.assert_close(fp32_mask, ref_mask, rtol=0, atol=0)
    bf16_feats = [f.to(torch.bfloat16).float() for f in feats]
    with torch.no_grad():
        expected_mask, expected_multi = encoder(bf16_feats)
    torch.testing.assert_close(mask_features, expected_mask, rtol=0, atol=0)
    for out, expected in zip(multi_scale, expected_multi):
        torch.testing.assert_close(out, expected, rtol=0, atol=0)
    assert ref_multi[0].shape == (2, 32, 8, 12)


def test_init_weights_matches_official_scheme():
    encoder = tiny_encoder()
    for proj in encoder.input_proj:
        assert torch.all(proj.conv.bias == 0)
        assert torch.all(proj.gn.weight == 1) and torch.all(proj.gn.bias == 0)
    for layer in encoder.encoder.layers:
        attn = layer.self_attn
        assert torch.all(attn.sampling_offsets.weight == 0)
        assert torch.all(attn.attention_weights.weight == 0)
        assert torch.all(attn.attention_weights.bias == 0)
        # direction grid: head 0 points along +x, point k scaled by k + 1
        grid = attn.sampling_offsets.bias.view(attn.num_heads, attn.num_levels,
                                               attn.num_points, 2)
        torch.testing.assert_close(grid[0, :, :, 0],
                                   torch.tensor([1., 2.]).expand(4, 2))
        assert torch.all(attn.value_proj.bias == 0)
        # xavier bound on the FFN: sqrt(6 / (fan_in + fan_out))
        bound = math.sqrt(6 / (32 + 64))
        assert layer.ffn.layers[0][0].weight.abs().max() <= bound
    assert 0.7 < encoder.level_embed.std().item() < 1.3
    # kaiming_uniform(a=1) bound on the 3x3 conv: sqrt(3 / fan_in)
    conv = encoder.output_convs[0].conv
    assert conv.weight.abs().max() <= math.sqrt(3 / (32 * 9))
    assert conv.bias is None and encoder.lateral_convs[0].conv.bias is None
    assert torch.all(encoder.mask_features.bias == 0)
