# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
import torch
import torch.nn.functional as F
from mmcv.ops import point_sample
from mmdet.registry import TASK_UTILS
from mmengine.structures import InstanceData

from mmmaskdino.models.losses.maskdino_loss import DEFAULT_ASSIGNER
from mmmaskdino.models.task_modules.match_costs import (NormalizedBBoxL1Cost,
                                                        NormalizedGIoUCost,
                                                        fill_boxless_columns)


def random_boxes(num: int, generator: torch.Generator) -> torch.Tensor:
    centers = 0.2 + 0.6 * torch.rand(num, 2, generator=generator)
    sizes = 0.05 + 0.3 * torch.rand(num, 2, generator=generator)
    return torch.cat([centers, sizes], dim=1)


def official_giou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Reference GIoU of cxcywh boxes, +1e-6 in both denominators. (n, m)."""

    def xyxy(x):
        return torch.cat([x[:, :2] - x[:, 2:] / 2, x[:, :2] + x[:, 2:] / 2],
                         dim=1)

    a, b = xyxy(a), xyxy(b)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    lt = torch.max(a[:, None, :2], b[None, :, :2])
    rb = torch.min(a[:, None, 2:], b[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    union = area_a[:, None] + area_b[None] - inter
    iou = inter / (union + 1e-6)
    lt = torch.min(a[:, None, :2], b[None, :, :2])
    rb = torch.max(a[:, None, 2:], b[None, :, 2:])
    enclose = (rb - lt).clamp(min=0).prod(-1)
    return iou - (enclose - union) / (enclose + 1e-6)


def test_box_costs_match_reference_formulas():
    g = torch.Generator().manual_seed(0)
    preds = InstanceData(bboxes=random_boxes(7, g))
    gts = InstanceData(bboxes=random_boxes(3, g))
    l1 = TASK_UTILS.build(dict(type='NormalizedBBoxL1Cost', weight=5.0))
    giou = TASK_UTILS.build(dict(type='NormalizedGIoUCost', weight=2.0))
    assert isinstance(l1, NormalizedBBoxL1Cost) and isinstance(
        giou, NormalizedGIoUCost)
    expected_l1 = (preds.bboxes[:, None] -
                   gts.bboxes[None]).abs().sum(-1) * 5.0
    torch.testing.assert_close(l1(preds, gts), expected_l1, atol=1e-5, rtol=0)
    expected_giou = -official_giou(preds.bboxes, gts.bboxes) * 2.0
    torch.testing.assert_close(
        giou(preds, gts), expected_giou, atol=1e-4, rtol=0)


def test_boxless_columns_get_mean_of_box_columns():
    cost = torch.arange(12, dtype=torch.float).view(4, 3)
    gts = InstanceData(
        labels=torch.zeros(3), has_box=torch.tensor([True, False, True]))
    filled = fill_boxless_columns(cost, gts)
    torch.testing.assert_close(filled[:, 1], (cost[:, 0] + cost[:, 2]) / 2)
    assert torch.equal(filled[:, [0, 2]], cost[:, [0, 2]])
    none_with_box = InstanceData(
        labels=torch.zeros(3), has_box=torch.zeros(3, dtype=torch.bool))
    assert torch.equal(
        fill_boxless_columns(cost, none_with_box), torch.zeros(4, 3))
    assert fill_boxless_columns(cost,
                                InstanceData(labels=torch.zeros(3))) is cost

    g = torch.Generator().manual_seed(1)
    preds = InstanceData(bboxes=random_boxes(5, g))
    gts = InstanceData(
        bboxes=random_boxes(3, g), has_box=torch.tensor([True, True, False]))
    cost = NormalizedGIoUCost(weight=2.0)(preds, gts)
    torch.testing.assert_close(cost[:, 2], cost[:, :2].mean(1))


def test_mmdet_class_and_mask_costs_equal_official_formulas():
    g = torch.Generator().manual_seed(2)
    costs = {
        c['type']: TASK_UTILS.build(c)
        for c in DEFAULT_ASSIGNER['match_costs']
    }
    logits = torch.randn(6, 4, generator=g) * 3
    labels = torch.tensor([2, 0, 2])
    prob = logits.sigmoid()
    pos = 0.25 * (1 - prob)**2 * -(prob + 1e-8).log()
    neg = 0.75 * prob**2 * -(1 - prob + 1e-8).log()
    cls_cost = costs['FocalLossCost'](InstanceData(scores=logits),
                                      InstanceData(labels=labels))
    torch.testing.assert_close(cls_cost,
                               4.0 * (pos[:, labels] - neg[:, labels]))

    point_logits = torch.randn(6, 50, generator=g) * 4
    point_gt = torch.rand(3, 50, generator=g).round()
    preds, gts = InstanceData(masks=point_logits), InstanceData(masks=point_gt)
    bce_pos = F.binary_cross_entropy_with_logits(
        point_logits, torch.ones_like(point_logits), reduction='none')
    bce_neg = F.binary_cross_entropy_with_logits(
        point_logits, torch.zeros_like(point_logits), reduction='none')
    expected_ce = (bce_pos @ point_gt.T + bce_neg @ (1 - point_gt).T) / 50
    torch.testing.assert_close(costs['FastCrossEntropyLossCost'](preds, gts),
                               5.0 * expected_ce)
    mmdet_ce = TASK_UTILS.build(
        dict(type='CrossEntropyLossCost', use_sigmoid=True, weight=5.0))
    torch.testing.assert_close(mmdet_ce(preds, gts), 5.0 * expected_ce)
    sig = point_logits.sigmoid()
    expected_dice = 1 - (2 * sig @ point_gt.T + 1) / (
        sig.sum(-1)[:, None] + point_gt.sum(-1)[None] + 1)
    torch.testing.assert_close(costs['DiceCost'](preds, gts),
                               5.0 * expected_dice)


def test_assigner_recovers_perfect_predictions():
    """Predictions equal to the GT at shuffled queries are assigned to their
    own GT."""
    g = torch.Generator().manual_seed(3)
    num_classes, num_queries, num_gt, size = 5, 10, 4, 64
    gt_boxes = random_boxes(num_gt, g)
    gt_labels = torch.tensor([1, 3, 1, 4])
    gt_masks = torch.zeros(num_gt, size, size)
    for i, (cx, cy, w, h) in enumerate(gt_boxes.tolist()):
        x0, x1 = int((cx - w / 2) * size), int((cx + w / 2) * size)
        y0, y1 = int((cy - h / 2) * size), int((cy + h / 2) * size)
        gt_masks[i, y0:y1, x0:x1] = 1
    query_of_gt = torch.randperm(num_queries, generator=g)[:num_gt]

    logits = torch.full((num_queries, num_classes), -10.0)
    boxes = random_boxes(num_queries, g)
    masks = torch.randn(num_queries, size, size, generator=g)
    logits[query_of_gt, gt_labels] = 10.0
    boxes[query_of_gt] = gt_boxes
    masks[query_of_gt] = gt_masks * 20 - 10

    points = torch.rand(1, 256, 2, generator=g)
    preds = InstanceData(
        scores=logits,
        bboxes=boxes,
        masks=point_sample(masks[None], points)[0])
    gts = InstanceData(
        labels=gt_labels,
        bboxes=gt_boxes,
        masks=point_sample(gt_masks[None], points)[0])
    assigner = TASK_UTILS.build(DEFAULT_ASSIGNER)
    gt_inds = assigner.assign(preds, gts).gt_inds
    assert int((gt_inds > 0).sum()) == num_gt
    assert torch.equal(gt_inds[query_of_gt], torch.arange(1, num_gt + 1))
