# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
"""The CPU sampling paths of deformable attention against mmcv's."""
import pytest
import torch
from mmcv.ops import MultiScaleDeformableAttention
from mmcv.ops.multi_scale_deform_attn import \
    multi_scale_deformable_attn_pytorch
from torch import nn

from mmmaskdino.models.layers import \
    gather_deformable_attention as gather_module
from mmmaskdino.models.layers.gather_deformable_attention import (
    GatherMultiScaleDeformableAttention, export_deformable_attn,
    gather_deformable_attn, grid_sample_deformable_attn, use_gather_attention)


def _inputs(bs: int):
    torch.manual_seed(0)
    shapes = torch.tensor([[7, 9], [4, 5], [2, 3], [1, 1]])
    keys = int(shapes.prod(-1).sum())
    value = torch.randn(bs, keys, 4, 8)
    # points well outside the maps too (zero padding)
    locations = torch.rand(bs, 11, 4, 4, 3, 2) * 3 - 1
    weights = torch.rand(bs, 11, 4, 4, 3)
    return value, shapes, locations, weights


@pytest.mark.parametrize('bs', [1, 3])
@pytest.mark.parametrize('fn',
                         [gather_deformable_attn, export_deformable_attn])
def test_inference_paths_equal_mmcv(bs, fn):
    """The gather path (CPU inference) and the ONNX export path."""
    args = _inputs(bs)
    expected = multi_scale_deformable_attn_pytorch(*args)
    out = fn(*args)
    assert out.shape == (bs, 11, 32)
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-5)


# 2 images x 11 queries x 4 heads = 88 bags of 4 x 4 levels x 3 points rows
# of 8 channels (384 gathered values): one chunk, chunks of 10 bags (the
# last of 8), one bag per chunk.
@pytest.mark.parametrize('gathered_per_chunk', [2**23, 10 * 384 + 383, 1])
def test_export_path_chunks_equal_gather_path(gathered_per_chunk, monkeypatch):
    monkeypatch.setattr(gather_module, 'GATHERED_PER_CHUNK',
                        gathered_per_chunk)
    args = _inputs(2)
    torch.testing.assert_close(
        export_deformable_attn(*args),
        gather_deformable_attn(*args),
        rtol=0,
        atol=1e-6)


# 2 images x 4 heads x 8 channels x 3 points = 192 samples per query: one
# chunk of all 11 queries, or chunks of 4, 4 and 3 queries.
@pytest.mark.parametrize('samples_per_chunk', [2**22, 4 * 192])
def test_training_path_equals_mmcv_with_gradients(samples_per_chunk,
                                                  monkeypatch):
    monkeypatch.setattr(gather_module, 'SAMPLES_PER_CHUNK', samples_per_chunk)
    value, shapes, locations, weights = _inputs(2)
    results = []
    for fn in (multi_scale_deformable_attn_pytorch,
               grid_sample_deformable_attn):
        inputs = [
            t.clone().requires_grad_() for t in (value, locations, weights)
        ]
        out = fn(inputs[0], shapes, inputs[1], inputs[2])
        (out *
         torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
        results.append([out.detach()] + [t.grad for t in inputs])
    for got, expected in zip(results[1], results[0]):
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_replacement_keeps_weights_and_random_stream():
    torch.manual_seed(0)
    module = nn.Sequential(
        MultiScaleDeformableAttention(32, 4, 2, 2, batch_first=True))
    state = {k: v.clone() for k, v in module.state_dict().items()}
    before = torch.random.get_rng_state()
    use_gather_attention(module)
    assert torch.equal(torch.random.get_rng_state(), before)
    assert type(module[0]) is GatherMultiScaleDeformableAttention
    for key, tensor in module.state_dict().items():
        assert torch.equal(tensor, state[key]), key
