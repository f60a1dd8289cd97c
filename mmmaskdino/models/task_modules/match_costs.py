# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
"""Match costs of Mask DINO that mmdet lacks or computes differently.

The class and dice costs of the official matcher are mmdet's own
(``FocalLossCost(eps=1e-8)``, ``DiceCost(pred_act=True, eps=1.0)``, same
formulas). ``CrossEntropyLossCost`` has the official value too;
``FastCrossEntropyLossCost`` only evaluates it faster. The box costs differ:

- mmdet's ``BBoxL1Cost`` takes absolute xyxy boxes and divides them by
  ``img_meta['img_shape']``, while Mask DINO's boxes are already normalised
  cxcywh relative to the padded input;
- mmdet's ``IoUCost`` takes xyxy boxes;
- neither supports the panoptic "decoupled stuff boxes" rule: GT without a
  meaningful box (stuff) get the mean cost of the GT with a box, so only class
  and mask costs decide their assignment.

Both costs read ``bboxes`` (normalised cxcywh) from the prediction and GT
``InstanceData`` and an optional GT field ``has_box`` (bool ``(n,)``); without
``has_box`` every GT column is a box column.
"""
from typing import Optional, Union

import torch
import torch.nn.functional as F
from mmdet.models.task_modules.assigners import CrossEntropyLossCost, IoUCost
from mmdet.models.task_modules.assigners.match_cost import BaseMatchCost
from mmdet.registry import TASK_UTILS
from mmdet.structures.bbox import bbox_cxcywh_to_xyxy
from mmengine.structures import InstanceData
from torch import Tensor


def fill_boxless_columns(cost: Tensor, gt_instances: InstanceData) -> Tensor:
    """Replace the columns of GT without a box by the mean over the columns
    with a box.

    Official rule (``panoptic_on`` branch of ``HungarianMatcher``), a NaN mean
    (no GT with a box) gives 0. Any per-column constant gives the same
    assignment; the mean keeps the cost values official.

    Args:
        cost (Tensor): ``(num_preds, num_gts)`` box cost.
        gt_instances (InstanceData): GT, optionally with ``has_box (num_gts,)``
            bool.

    Returns:
        Tensor: ``(num_preds, num_gts)`` cost.
    """
    has_box = gt_instances.get('has_box')
    if has_box is None or bool(has_box.all()):
        return cost
    mean = cost[:, has_box].mean(dim=1, keepdim=True).nan_to_num(0.0)
    return cost.where(has_box[None, :], mean)


@TASK_UTILS.register_module()
class NormalizedBBoxL1Cost(BaseMatchCost):
    """L1 cost between normalised cxcywh boxes (``torch.cdist(p=1)``), no
    ``img_shape`` scaling.

    Args:
        weight (float): Cost weight. Defaults to 1.
    """

    def __call__(self,
                 pred_instances: InstanceData,
                 gt_instances: InstanceData,
                 img_meta: Optional[dict] = None,
                 **kwargs) -> Tensor:
        """Compute the cost.

        Args:
            pred_instances (InstanceData): ``bboxes (num_preds, 4)`` normalised
                cxcywh.
            gt_instances (InstanceData): ``bboxes (num_gts, 4)`` normalised
                cxcywh, optional ``has_box (num_gts,)``.
            img_meta (dict, optional): Unused.

        Returns:
            Tensor: ``(num_preds, num_gts)`` weighted cost.
        """
        cost = torch.cdist(pred_instances.bboxes, gt_instances.bboxes, p=1)
        return fill_boxless_columns(cost, gt_instances) * self.weight


@TASK_UTILS.register_module()
class NormalizedGIoUCost(IoUCost):
    """Negative GIoU between normalised cxcywh boxes (converted to xyxy, then
    mmdet's ``IoUCost``).

    mmdet's ``bbox_overlaps`` uses ``max(union, 1e-6)`` where the official
    ``generalized_box_iou`` adds 1e-6; the relative difference is ``1e-6 /
    union`` (below 1e-4 for boxes wider than 1% of the input).

    Args:
        weight (float): Cost weight. Defaults to 1.
    """

    def __init__(self, weight: Union[float, int] = 1.) -> None:
        super().__init__(iou_mode='giou', weight=weight)

    def __call__(self,
                 pred_instances: InstanceData,
                 gt_instances: InstanceData,
                 img_meta: Optional[dict] = None,
                 **kwargs) -> Tensor:
        """The weighted ``(num_preds, num_gts)`` cost; arguments as
        :meth:`NormalizedBBoxL1Cost.__call__`."""
        xyxy_preds = InstanceData(
            bboxes=bbox_cxcywh_to_xyxy(pred_instances.bboxes))
        xyxy_gts = InstanceData(
            bboxes=bbox_cxcywh_to_xyxy(gt_instances.bboxes))
        cost = super().__call__(xyxy_preds, xyxy_gts, img_meta)
        return fill_boxless_columns(cost, gt_instances)


@TASK_UTILS.register_module()
class FastCrossEntropyLossCost(CrossEntropyLossCost):
    """mmdet's sigmoid BCE point cost, evaluated with one softplus and one
    matmul.

    With ``BCE(x, 1) = softplus(-x)`` and ``BCE(x, 0) = x + softplus(-x)``, the
    mean over points of ``BCE(x, 1) * t + BCE(x, 0) * (1 - t)`` is ``(sum_k
    softplus(-x_k) + x @ (1 - t)) / K``. mmdet's version builds both BCE maps
    and two matmuls; this one is about 4x faster for ``(300, 12544)`` point
    logits on CPU and equal up to float rounding.

    Args:
        weight (float): Cost weight. Defaults to 1.
    """

    def __init__(self, weight: Union[float, int] = 1.) -> None:
        super().__init__(use_sigmoid=True, weight=weight)

    def _binary_cross_entropy(self, cls_pred: Tensor,
                              gt_labels: Tensor) -> Tensor:
        """Mean BCE over points for every (prediction, GT) pair.

        Args:
            cls_pred (Tensor): ``(num_preds, *)`` logits.
            gt_labels (Tensor): ``(num_gts, *)`` targets in ``[0, 1]``.

        Returns:
            Tensor: ``(num_preds, num_gts)`` unweighted cost.
        """
        cls_pred = cls_pred.flatten(1).float()
        gt_labels = gt_labels.flatten(1).float()
        pos = F.softplus(-cls_pred).sum(dim=1, keepdim=True)
        return (pos + cls_pred @ (1 - gt_labels).T) / cls_pred.shape[1]
