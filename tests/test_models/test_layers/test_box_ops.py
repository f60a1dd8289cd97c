# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
import math

import pytest
import torch

from mmmaskdino.models.layers.box_ops import (gen_encoder_output_proposals,
                                              inverse_sigmoid, masks_to_boxes,
                                              masks_to_refpoint_logits)

LOGIT_BOUND = math.log((1 - 1e-5) / 1e-5)  # 11.5129


def _hand_made_masks() -> torch.Tensor:
    """(4, 6, 8): a rectangle, an empty mask, one pixel, an L shape."""
    masks = torch.zeros(4, 6, 8, dtype=torch.bool)
    masks[0, 1:4, 2:6] = True
    masks[2, 5, 7] = True
    masks[3, 0, 1:3] = True
    masks[3, 0:5, 1] = True
    return masks


def _official_mask2box(masks: torch.Tensor) -> torch.Tensor:
    """The official masked-min / masked-max formula, written independently."""
    h, w = masks.shape[-2:]
    y, x = torch.meshgrid(
        torch.arange(h, dtype=torch.float),
        torch.arange(w, dtype=torch.float),
        indexing='ij')
    x_mask = masks * x
    y_mask = masks * y
    return torch.stack([
        x_mask.masked_fill(~masks, 1e8).flatten(1).min(-1)[0],
        y_mask.masked_fill(~masks, 1e8).flatten(1).min(-1)[0],
        x_mask.flatten(1).max(-1)[0],
        y_mask.flatten(1).max(-1)[0]
    ], 1)


def test_mask2box_rule():
    boxes = masks_to_boxes(_hand_made_masks(), 'mask2box')
    expected = torch.tensor([[2., 1., 5., 3.], [1e8, 1e8, 0., 0.],
                             [7., 5., 7., 5.], [1., 0., 2., 4.]])
    assert boxes.dtype == torch.float32
    torch.testing.assert_close(boxes, expected, rtol=0, atol=0)


def test_bitmask_rule():
    boxes = masks_to_boxes(_hand_made_masks(), 'bitmask')
    expected = torch.tensor([[2., 1., 6., 4.], [0., 0., 0., 0.],
                             [7., 5., 8., 6.], [1., 0., 3., 5.]])
    torch.testing.assert_close(boxes, expected, rtol=0, atol=0)


def test_mask2box_matches_official_formula_on_random_masks():
    gen = torch.Generator().manual_seed(0)
    masks = torch.rand(64, 9, 11, generator=gen) > 0.9
    masks[:5] = False
    torch.testing.assert_close(
        masks_to_boxes(masks, 'mask2box'),
        _official_mask2box(masks),
        rtol=0,
        atol=0)


def test_masks_to_refpoint_logits():
    masks = _hand_made_masks()
    logits = torch.where(masks, 3.0, -2.0)[None]  # (1, 4, 6, 8)
    logits[0, 1] = 0.0  # exactly 0 is background: the mask is empty
    m2b = masks_to_refpoint_logits(logits, 'mask2box')
    bit = masks_to_refpoint_logits(logits, 'bitmask')
    assert m2b.shape == bit.shape == (1, 4, 4)
    # rectangle: xyxy (2, 1, 5, 3) on an 8 x 6 map
    expected = inverse_sigmoid(
        torch.tensor([3.5 / 8, 2.0 / 6, 3.0 / 8, 2.0 / 6]))
    torch.testing.assert_close(m2b[0, 0], expected)
    expected_bit = inverse_sigmoid(
        torch.tensor([4.0 / 8, 2.5 / 6, 4.0 / 8, 3.0 / 6]))
    torch.testing.assert_close(bit[0, 0], expected_bit)
    # empty masks
    torch.testing.assert_close(
        m2b[0, 1],
        torch.tensor([LOGIT_BOUND, LOGIT_BOUND, -LOGIT_BOUND, -LOGIT_BOUND]),
        rtol=0,
        atol=1e-4)
    torch.testing.assert_close(
        bit[0, 1], torch.full((4, ), -LOGIT_BOUND), rtol=0, atol=1e-4)
    # single pixel at the bottom-right corner: mask2box has zero size
    torch.testing.assert_close(
        m2b[0, 2, 2:], torch.full((2, ), -LOGIT_BOUND), rtol=0, atol=1e-4)
    assert abs(LOGIT_BOUND - 11.5129) < 1e-4


def test_refpoint_logits_carry_no_gradient():
    logits = torch.randn(2, 3, 6, 8, requires_grad=True)
    assert not masks_to_refpoint_logits(logits, 'mask2box').requires_grad


def test_encoder_output_proposals():
    spatial_shapes = torch.tensor([[2, 3], [50, 4]])
    num_tokens = 2 * 3 + 50 * 4
    memory = torch.randn(2, num_tokens, 8)
    output_memory, proposals = gen_encoder_output_proposals(
        memory, spatial_shapes)
    assert proposals.shape == (2, num_tokens, 4)
    # level 0, token (i=1, j=2): centre (2.5/3, 1.5/2), size 0.05
    p = torch.tensor([2.5 / 3, 1.5 / 2, 0.05, 0.05])
    torch.testing.assert_close(proposals[0, 5], torch.log(p / (1 - p)))
    # level 1 (H = 50): size 0.1, first and last rows invalid (0.5 / 50 ==
    # 0.01)
    lvl1 = proposals[:, 6:].view(2, 50, 4, 4)
    invalid = torch.isinf(lvl1).all(-1)
    assert invalid[:, 0].all() and invalid[:, -1].all()
    assert not invalid[:, 1:-1].any()
    assert (lvl1[:, 0] == float('inf')).all()
    torch.testing.assert_close(lvl1[0, 1, 0, 2:],
                               torch.full((2, ), math.log(0.1 / 0.9)))
    mem1 = output_memory[:, 6:].view(2, 50, 4, 8)
    assert (mem1[:, 0] == 0).all() and (mem1[:, -1] == 0).all()
    torch.testing.assert_close(output_memory[:, :6], memory[:, :6])


@pytest.mark.parametrize('box_type', ['mask2box', 'bitmask'])
def test_masks_to_boxes_empty_batch(box_type):
    assert masks_to_boxes(torch.zeros(0, 4, 5, dtype=torch.bool),
                          box_type).shape == (0, 4)
