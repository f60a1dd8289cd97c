# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
"""Factorised mask logits against the full-resolution logits."""
import torch
from mmcv.ops import point_sample

from mmmaskdino.models.layers.factorised_masks import FactorisedMasks
from mmmaskdino.models.losses.maskdino_loss import sample_mask_points


def _masks(requires_grad: bool = False) -> FactorisedMasks:
    g = torch.Generator().manual_seed(0)
    embeds = torch.randn(2, 7, 5, generator=g)
    features = torch.randn(2, 5, 6, 9, generator=g)
    return FactorisedMasks(
        embeds.requires_grad_(requires_grad),
        features.requires_grad_(requires_grad))


def test_shape_dense_sum_and_split():
    masks = _masks()
    dense = masks.dense()
    assert masks.shape == dense.shape == (2, 7, 6, 9)
    torch.testing.assert_close(
        dense, torch.einsum('bqc,bchw->bqhw', masks.embeds, masks.features))
    torch.testing.assert_close(masks.sum(), dense.sum())
    parts = masks.split([3, 4], dim=1)
    assert [p.shape[1] for p in parts] == [3, 4]
    torch.testing.assert_close(
        torch.cat([p.dense() for p in parts], dim=1), dense)
    masks.embeds[1, 2, 0] = float('nan')
    assert not torch.isfinite(masks.sum())


def test_point_samples_equal_samples_of_the_dense_logits():
    masks = _masks()
    points = torch.rand(2, 50, 2) * 1.2 - 0.1  # some outside the map
    expected = point_sample(masks.dense(), points)
    got = sample_mask_points(masks, points)
    assert got.shape == (2, 7, 50)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    # plain tensors take mmcv's point_sample
    torch.testing.assert_close(
        sample_mask_points(masks.dense(), points), expected)


def test_pairs_in_any_order_with_gradients():
    masks = _masks(requires_grad=True)
    batch_idx = torch.tensor([1, 0, 1, 0, 1])
    pred_idx = torch.tensor([6, 2, 0, 2, 3])
    got = masks[batch_idx, pred_idx]
    reference = _masks(requires_grad=True)
    expected = reference.dense()[batch_idx, pred_idx]
    assert got.shape == (5, 6, 9)
    torch.testing.assert_close(got, expected)
    weights = torch.linspace(-1, 1, got.numel()).view_as(got)
    (got * weights).sum().backward()
    (expected * weights).sum().backward()
    for a, b in ((masks.embeds, reference.embeds), (masks.features,
                                                    reference.features)):
        torch.testing.assert_close(a.grad, b.grad)
    empty = masks[batch_idx[:0], pred_idx[:0]]
    assert empty.shape == (0, 6, 9)


def test_pairs_of_one_image_only():
    """An image without pairs: its padded rows reach no output and no
    gradient."""
    masks = _masks(requires_grad=True)
    batch_idx = torch.tensor([1, 1])
    pred_idx = torch.tensor([4, 1])
    got = masks[batch_idx, pred_idx]
    torch.testing.assert_close(got, masks.dense()[batch_idx, pred_idx])
    got.sum().backward()
    assert not masks.features.grad[0].any()
    assert not masks.embeds.grad[0].any()
    torch.testing.assert_close(masks.embeds.grad[1, 4], masks.features[1].sum(
        (1, 2)))
