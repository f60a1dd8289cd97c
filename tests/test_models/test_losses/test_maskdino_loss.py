# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
import math
from typing import List

import pytest
import torch
import torch.nn.functional as F
from mmcv.ops import point_sample
from mmdet.registry import MODELS
from mmengine.structures import InstanceData

from mmmaskdino.models.losses.maskdino_loss import (LOSS_NAMES, MaskDINOLoss,
                                                    point_sample_by_index)

C = 4  # classes
Q = 6  # matching queries
L = 2  # decoder layers = number of aux sets
SIZE = 64  # padded input
H4 = SIZE // 4
POINTS = 128


def build_loss(**kwargs) -> MaskDINOLoss:
    cfg = dict(type='MaskDINOLoss', num_classes=C, num_points=POINTS)
    cfg.update(kwargs)
    return MODELS.build(cfg)


def make_gt(labels: List[int],
            seed: int,
            with_masks: bool = True) -> InstanceData:
    """Axis-aligned block objects on the 4-px grid, so their 1/4 masks are
    exact."""
    g = torch.Generator().manual_seed(seed)
    n = len(labels)
    x0 = torch.randint(0, 8, (n, ), generator=g) * 4
    y0 = torch.randint(0, 8, (n, ), generator=g) * 4
    w = torch.randint(3, 8, (n, ), generator=g) * 4
    h = torch.randint(3, 8, (n, ), generator=g) * 4
    masks = torch.zeros(n, SIZE, SIZE)
    for i in range(n):
        masks[i, y0[i]:y0[i] + h[i], x0[i]:x0[i] + w[i]] = 1
    boxes = torch.stack([x0 + w / 2, y0 + h / 2, w, h], dim=1).float() / SIZE
    gt = InstanceData(
        labels=torch.tensor(labels, dtype=torch.long).view(-1),
        bboxes=boxes.view(-1, 4))
    if with_masks:
        gt.masks = masks
    return gt


def random_set(bs: int, n: int, seed: int, k: int = C) -> dict:
    g = torch.Generator().manual_seed(seed)
    return dict(
        pred_logits=torch.randn(bs, n, k, generator=g).requires_grad_(),
        pred_boxes=(0.2 +
                    0.6 * torch.rand(bs, n, 4, generator=g)).requires_grad_(),
        pred_masks=torch.randn(bs, n, H4, H4, generator=g).requires_grad_())


def perfect_set(gts: List[InstanceData],
                n: int,
                slots: List[torch.Tensor],
                k: int = C) -> dict:
    """Predictions equal to GT t at query ``slots[b][j]`` for every j with ``t
    = j % #GT``."""
    bs = len(gts)
    logits = torch.full((bs, n, k), -10.0)
    boxes = torch.full((bs, n, 4), 0.5)
    boxes[..., 2:] = 0.1
    masks = torch.full((bs, n, H4, H4), -10.0)
    for b, gt in enumerate(gts):
        for j, q in enumerate(slots[b].tolist()):
            t = j % len(gt)
            logits[b, q, gt.labels[t]] = 10.0
            boxes[b, q] = gt.bboxes[t]
            masks[b, q] = F.max_pool2d(gt.masks[t][None], 4)[0] * 20 - 10
    return dict(
        pred_logits=logits.requires_grad_(),
        pred_boxes=boxes.requires_grad_(),
        pred_masks=masks.requires_grad_())


def make_outputs(make_set, two_stage: bool = True) -> dict:
    outputs = make_set(0)
    outputs['aux_outputs'] = [make_set(i + 1) for i in range(L)]
    outputs['interm_outputs'] = make_set(L + 1) if two_stage else None
    return outputs


def dn_aux_indices(two_stage: bool = True) -> List[int]:
    """The supervised DN aux sets, as the decoder states them."""
    return list(range(0 if two_stage else 1, L))


def make_dn(gts: List[InstanceData],
            make_set,
            two_stage: bool = True) -> tuple:
    single_pad = max(len(gt) for gt in gts)
    groups = 12 // single_pad
    dn_outputs = make_set(100, single_pad * groups)
    dn_outputs['aux_indices'] = dn_aux_indices(two_stage)
    dn_outputs['aux_outputs'] = [
        make_set(101 + i, single_pad * groups)
        for i in dn_outputs['aux_indices']
    ]
    return dn_outputs, dict(
        pad_size=single_pad * groups, num_groups=groups, single_pad=single_pad)


def total(losses: dict) -> torch.Tensor:
    return sum(losses.values())


def expected_keys(two_stage: bool, dn_active: bool = True) -> set:
    prefixes = [''] + [f'd{i}.'
                       for i in range(L)] + (['enc_'] if two_stage else [])
    if dn_active:
        prefixes += ['dn_'] + [
            f'd{i}.dn_' for i in range(0 if two_stage else 1, L)
        ]
    return {p + k for p in prefixes for k in LOSS_NAMES}


@pytest.mark.parametrize('two_stage', [True, False])
def test_keys_and_dn_skip(two_stage: bool):
    torch.manual_seed(0)
    gts = [make_gt([0, 2, 3], 0), make_gt([1], 1)]
    loss = build_loss()
    outputs = make_outputs(lambda s: random_set(2, Q, s), two_stage)
    dn_outputs, dn_meta = make_dn(gts, lambda s, n: random_set(2, n, s),
                                  two_stage)
    losses = loss(outputs, dn_outputs, dn_meta, gts)
    assert set(losses) == expected_keys(two_stage)
    assert len(losses) == (5 * (1 + L + 1) + 5 * (1 + L) if two_stage else 5 *
                           (1 + L) + 5 * L)
    assert all(torch.isfinite(v) and v.item() > 0 for v in losses.values())

    # DN skipped for the batch: the decoder still states the supervised sets
    skipped = loss(outputs, dict(aux_indices=dn_aux_indices(two_stage)), None,
                   gts)
    assert set(skipped) == expected_keys(two_stage)
    for key in expected_keys(two_stage) - expected_keys(
            two_stage, dn_active=False):
        assert skipped[key].item() == 0 and skipped[key].requires_grad
    # no denoising at all (decoder without denoising, or eval)
    assert set(loss(outputs, None, None, gts)) == expected_keys(
        two_stage, dn_active=False)


def test_default_config_is_official():
    loss = MODELS.build(dict(type='MaskDINOLoss', num_classes=80))
    weights = [
        m.loss_weight for m in (loss.loss_cls, loss.loss_mask, loss.loss_dice,
                                loss.loss_bbox, loss.loss_iou)
    ]
    assert weights == [4.0, 5.0, 5.0, 5.0, 2.0]
    assert [c.weight
            for c in loss.assigner.match_costs] == [4.0, 5.0, 2.0, 5.0, 5.0]
    assert loss.assigner.match_costs[0].eps == 1e-8
    assert loss.assigner.match_costs[
        4].eps == 1.0 and loss.assigner.match_costs[4].pred_act
    assert loss.num_points == 12544
    assert (loss.oversample_ratio, loss.importance_sample_ratio) == (3.0, 0.75)
    assert loss.loss_dice.eps == 1.0 and loss.loss_dice.naive_dice


def test_empty_gt_everywhere():
    torch.manual_seed(0)
    gts = [make_gt([], 0), make_gt([], 1)]
    outputs = make_outputs(lambda s: random_set(2, Q, s))
    # no GT: the batch skips denoising
    losses = build_loss()(outputs, dict(aux_indices=dn_aux_indices()), None,
                          gts)
    assert set(losses) == expected_keys(True)
    for key, value in losses.items():
        assert torch.isfinite(value) and value.requires_grad
        if key.endswith('loss_cls') and 'dn_' not in key:
            assert value.item() > 0
        else:
            assert value.item() == 0
    # focal loss summed over all queries and classes, normaliser clamped to 1
    logits = outputs['pred_logits']
    p = logits.sigmoid()
    focal = 0.75 * p**2 * F.binary_cross_entropy_with_logits(
        logits, torch.zeros_like(logits), reduction='none')
    torch.testing.assert_close(
        losses['loss_cls'], 4.0 * focal.sum(), rtol=1e-5, atol=1e-5)
    total(losses).backward()
    assert outputs['pred_logits'].grad.abs().sum() > 0


def test_box_only_images_skip_mask_terms():
    torch.manual_seed(0)
    box_only = [make_gt([0, 1], 0, with_masks=False)]
    outputs = make_outputs(lambda s: random_set(1, Q, s))
    dn_outputs, dn_meta = make_dn(box_only, lambda s, n: random_set(1, n, s))
    losses = build_loss()(outputs, dn_outputs, dn_meta, box_only)
    for key, value in losses.items():
        if 'mask' in key or 'dice' in key:
            assert value.item() == 0 and value.requires_grad
        else:
            assert value.item() > 0
    assert losses['loss_bbox'].item() > 0

    # zero mask logits: BCE = log 2 at every point whatever the target, so
    # loss_mask = 5 log 2 iff
    # the normaliser counts only the GT with masks (3 of 5)
    gts = [make_gt([0, 1, 2], 1), make_gt([3, 3], 2, with_masks=False)]

    def zero_mask_set(seed, n=Q):
        preds = random_set(2, n, seed)
        preds['pred_masks'] = torch.zeros(2, n, H4, H4, requires_grad=True)
        return preds

    outputs = make_outputs(zero_mask_set)
    dn_outputs, dn_meta = make_dn(gts, zero_mask_set)
    losses = build_loss()(outputs, dn_outputs, dn_meta, gts)
    for prefix in ('', 'd0.', 'enc_', 'dn_', 'd1.dn_'):
        assert losses[prefix + 'loss_mask'].item() == pytest.approx(
            5 * math.log(2), rel=1e-5)
    total(losses).backward()
    for preds in [outputs, dn_outputs] + outputs['aux_outputs']:
        grad = preds['pred_masks'].grad
        assert grad[0].abs().sum() > 0
        assert grad[1].abs().sum() == 0


def test_perfect_predictions_beat_random_and_match():
    torch.manual_seed(0)
    gts = [make_gt([0, 2, 3], 3), make_gt([1, 1], 4)]
    slots = [torch.tensor([4, 0, 2]), torch.tensor([5, 1])]
    loss = build_loss()
    outputs = make_outputs(lambda s: perfect_set(gts, Q, slots))
    for i, preds in enumerate([outputs] + outputs['aux_outputs'] +
                              [outputs['interm_outputs']]):
        batch_idx, pred_idx, gt_idx = loss._match(preds, gts, f'set {i}')
        assert batch_idx.tolist() == [0, 0, 0, 1, 1]
        for b in range(2):
            in_image = batch_idx == b
            assert torch.equal(slots[b][gt_idx[in_image]], pred_idx[in_image])
    dn_slots = [
        torch.arange(12).view(4, 3)[:, :len(gt)].flatten() for gt in gts
    ]
    dn_outputs, dn_meta = make_dn(gts,
                                  lambda s, n: perfect_set(gts, n, dn_slots))
    assert dn_meta == dict(pad_size=12, num_groups=4, single_pad=3)
    perfect = loss(outputs, dn_outputs, dn_meta, gts)
    for key in ('loss_bbox', 'loss_iou', 'dn_loss_bbox', 'd1.dn_loss_iou',
                'enc_loss_bbox'):
        assert perfect[key].item() < 1e-5
    for key in ('loss_cls', 'dn_loss_cls', 'd0.loss_cls'):
        assert perfect[key].item() < 1e-3

    rand_outputs = make_outputs(lambda s: random_set(2, Q, s))
    rand_dn, _ = make_dn(gts, lambda s, n: random_set(2, n, s))
    rand = loss(rand_outputs, rand_dn, dn_meta, gts)
    assert total(perfect).item() < 0.1 * total(rand).item()
    for key in perfect:
        assert perfect[key].item() <= rand[key].item()


def test_gradient_reaches_all_predictions():
    torch.manual_seed(0)
    gts = [make_gt([0, 2], 5), make_gt([3], 6)]
    outputs = make_outputs(lambda s: random_set(2, Q, s))
    dn_outputs, dn_meta = make_dn(gts, lambda s, n: random_set(2, n, s))
    total(build_loss()(outputs, dn_outputs, dn_meta, gts)).backward()
    sets = [outputs, outputs['interm_outputs'], dn_outputs]
    sets += outputs['aux_outputs'] + dn_outputs['aux_outputs']
    for preds in sets:
        for key in ('pred_logits', 'pred_boxes', 'pred_masks'):
            assert preds[key].grad is not None and preds[key].grad.abs().sum(
            ) > 0, key


def test_cross_entropy_variant():
    torch.manual_seed(0)
    class_weight = [1.0] * C + [0.1]
    loss = build_loss(
        loss_cls=dict(
            type='CrossEntropyLoss',
            use_sigmoid=False,
            class_weight=class_weight,
            loss_weight=4.0))
    gts = [make_gt([0, 2, 3], 7), make_gt([1], 8)]
    slots = [torch.tensor([1, 3, 5]), torch.tensor([0])]
    outputs = make_outputs(
        lambda s: perfect_set(gts, Q, slots, k=C + 1), two_stage=False)
    g = torch.Generator().manual_seed(9)
    with torch.no_grad():
        outputs['pred_logits'] += torch.randn(2, Q, C + 1, generator=g)
    losses = loss(outputs, dict(aux_indices=dn_aux_indices(False)), None, gts)
    assert set(losses) == expected_keys(False)
    targets = torch.full((2, Q), C)
    for b in range(2):
        targets[b, slots[b]] = gts[b].labels
    expected = 4.0 * F.cross_entropy(
        outputs['pred_logits'].flatten(0, 1),
        targets.flatten(),
        weight=torch.tensor(class_weight))
    torch.testing.assert_close(
        losses['loss_cls'], expected, rtol=1e-5, atol=1e-6)

    empty = [make_gt([], 0), make_gt([], 1)]
    outputs = make_outputs(
        lambda s: random_set(2, Q, s, k=C + 1), two_stage=False)
    losses = loss(outputs, None, None, empty)
    expected = 4.0 * F.cross_entropy(outputs['pred_logits'].flatten(0, 1),
                                     torch.full((2 * Q, ), C))
    torch.testing.assert_close(
        losses['loss_cls'], expected, rtol=1e-5, atol=1e-6)


def test_decoupled_stuff_boxes():
    torch.manual_seed(0)
    loss = build_loss(num_things_classes=2, decouple_stuff_boxes=True)
    stuff_only = [make_gt([2, 3], 10)]
    outputs = make_outputs(lambda s: random_set(1, Q, s))
    losses = loss(outputs, None, None, stuff_only)
    assert losses['loss_bbox'].item() == 0 and losses['loss_iou'].item() == 0
    assert losses['loss_mask'].item() > 0

    gts = [make_gt([0, 3], 11)]
    slots = [torch.tensor([2, 4])]
    outputs = make_outputs(lambda s: perfect_set(gts, Q, slots))
    with torch.no_grad():
        outputs['pred_boxes'][0, 2, 0] += 0.1  # thing box off by 0.1
        outputs['pred_boxes'][0, 4, :2] += 0.2  # stuff box far off
    losses = loss(outputs, None, None, gts)
    # only the thing pair counts, normalised by both GT
    assert losses['loss_bbox'].item() == pytest.approx(5.0 * 0.1 / 2, rel=1e-4)
    full = build_loss()(outputs, None, None, gts)
    assert full['loss_bbox'].item() == pytest.approx(5.0 * 0.5 / 2, rel=1e-4)


def test_non_finite_prediction_raises():
    gts = [make_gt([0], 12)]
    outputs = make_outputs(lambda s: random_set(1, Q, s))
    with torch.no_grad():
        outputs['aux_outputs'][1]['pred_boxes'][0, 3, 1] = float('nan')
    with pytest.raises(
            ValueError, match='pred_boxes of aux output 1 contains NaN/inf'):
        build_loss()(outputs, None, None, gts)
    outputs = make_outputs(lambda s: random_set(1, Q, s))
    with torch.no_grad():
        outputs['interm_outputs']['pred_masks'][0, 0, 0, 0] = float('inf')
    with pytest.raises(
            ValueError, match='pred_masks of interm output contains NaN/inf'):
        build_loss()(outputs, None, None, gts)


def test_point_sample_by_index_equals_gather():
    g = torch.Generator().manual_seed(13)
    masks = torch.rand(4, 20, 20, generator=g)
    index = torch.tensor([2, 0, 2, 3, 2, 0])
    coords = torch.rand(6, 30, 2, generator=g)
    expected = point_sample(masks[index][:, None], coords).squeeze(1)
    torch.testing.assert_close(
        point_sample_by_index(masks, index, coords), expected)


def test_dn_assignment_layout():
    gts = [make_gt([0, 1, 2], 0), make_gt([3], 1)]
    batch_idx, pred_idx, gt_idx = MaskDINOLoss._dn_assignment(
        gts, dict(pad_size=9, num_groups=3, single_pad=3))
    assert batch_idx.tolist() == [0] * 9 + [1] * 3
    assert pred_idx.tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 8, 0, 3, 6]
    assert gt_idx.tolist() == [0, 1, 2] * 3 + [0, 0, 0]
