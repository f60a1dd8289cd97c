# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
"""The chunked CPU FFN of the pixel decoder against mmcv's FFN."""
import copy

import pytest
import torch
from mmcv.cnn.bricks.transformer import FFN

from mmmaskdino.models.layers import chunked_ffn
from mmmaskdino.models.layers.chunked_ffn import ChunkedFFN, use_chunked_ffn
from mmmaskdino.models.utils import ffn_cfg


def _pair():
    torch.manual_seed(0)
    reference = FFN(**ffn_cfg(8, 32))
    chunked = copy.deepcopy(reference)
    use_chunked_ffn(chunked)
    return reference, chunked


# 32 hidden channels: chunks of all 2 x 13 rows, or of 5, 5, 5, 5, 5 and 1
@pytest.mark.parametrize('hidden_per_chunk', [2**22, 5 * 32])
def test_equals_mmcv_with_gradients(hidden_per_chunk, monkeypatch):
    monkeypatch.setattr(chunked_ffn, 'HIDDEN_PER_CHUNK', hidden_per_chunk)
    reference, chunked = _pair()
    assert type(chunked) is ChunkedFFN
    x = torch.randn(2, 13, 8)
    weights = torch.linspace(-1, 1, x.numel()).view_as(x)
    results = []
    for module in (reference, chunked):
        inp = x.clone().requires_grad_()
        out = module(inp)
        (out * weights).sum().backward()
        results.append([out.detach(), inp.grad] +
                       [p.grad for p in module.parameters()])
    assert results[1][0].shape == (2, 13, 8)
    for got, expected in zip(results[1], results[0]):
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    with torch.no_grad():
        torch.testing.assert_close(chunked(x), reference(x))
        identity = torch.randn(2, 13, 8)
        torch.testing.assert_close(
            chunked(x, identity=identity), reference(x, identity=identity))


def test_backward_keeps_no_hidden_activation():
    """The graph holds the input and weights, not the ``(n, F)`` hidden
    activation (recomputed per chunk in the backward pass); zero rows work."""
    _, chunked = _pair()
    out = chunked(torch.randn(2, 13, 8, requires_grad=True))
    # identity + view(mlp(x))
    mlp = out.grad_fn.next_functions[1][0].next_functions[0][0]
    saved = [t.shape for t in mlp.saved_tensors]
    assert (26, 32) not in saved and (26, 8) in saved
    empty = torch.zeros(0, 8, requires_grad=True)
    assert chunked(empty).shape == (0, 8)


def test_only_plain_relu_ffns_are_swapped_and_weights_kept():
    reference, chunked = _pair()
    for key, value in reference.state_dict().items():
        assert torch.equal(chunked.state_dict()[key], value)
    gelu = FFN(**dict(ffn_cfg(8, 32), act_cfg=dict(type='GELU')))
    dropout = FFN(**dict(ffn_cfg(8, 32), ffn_drop=0.1))
    container = torch.nn.ModuleList([gelu, dropout])
    use_chunked_ffn(container)
    assert [type(m) for m in container] == [FFN, FFN]


def test_autocast_falls_back_to_mmcv():
    reference, chunked = _pair()
    x = torch.randn(2, 13, 8)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        torch.testing.assert_close(chunked(x), reference(x))


def test_pixel_decoder_layers_use_it():
    from tests.test_models.test_necks.test_maskdino_encoder import tiny_encoder
    encoder = tiny_encoder()
    ffns = [layer.ffn for layer in encoder.encoder.layers]
    assert ffns and all(type(f) is ChunkedFFN for f in ffns)
