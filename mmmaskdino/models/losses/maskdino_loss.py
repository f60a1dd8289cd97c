# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
"""Mask DINO training criterion: Hungarian matching of every prediction set,
fixed DN assignment.

The per-term math is mmdet's (``HungarianAssigner`` with
``FocalLossCost``/``DiceCost`` and the BCE and normalised box costs of
``match_costs.py``; ``FocalLoss``, ``CrossEntropyLoss``, ``DiceLoss``,
``L1Loss``, ``GIoULoss``; mmdet's uncertainty point sampling). This module
owns what mmdet has no equivalent for: the bookkeeping over final, auxiliary,
interm and denoising sets (mmdet's DINO head has no mask terms and assumes
contrastive DN groups), box-only images and decoupled stuff boxes.

In training the decoder hands over its masks as :class:`FactorisedMasks`:
matching samples the mask features at the shared points, and the loss forms
the full-resolution logits of the matched queries only (equal to the
official full computation up to float rounding).
"""
from typing import Dict, List, Optional, Tuple, Union

import torch
from mmcv.ops import point_sample
from mmdet.models.utils import get_uncertain_point_coords_with_randomness
from mmdet.registry import MODELS, TASK_UTILS
from mmdet.structures.bbox import bbox_cxcywh_to_xyxy
from mmdet.utils import ConfigType, reduce_mean
from mmengine.model import BaseModule
from mmengine.structures import InstanceData
from torch import Tensor

from ..layers.factorised_masks import FactorisedMasks
from ..task_modules import \
    match_costs  # noqa: F401  (registers the default box costs)
from ..utils import uses_softmax_classes

# (batch_idx, pred_idx, gt_idx) of the assigned pairs, each ``(num_pairs,)``
# long; gt_idx is per image.
Assignment = Tuple[Tensor, Tensor, Tensor]
LOSS_NAMES = ('loss_cls', 'loss_mask', 'loss_dice', 'loss_bbox', 'loss_iou')
BOX_LOSS_NAMES = ('loss_cls', 'loss_bbox', 'loss_iou')

DEFAULT_ASSIGNER = dict(
    type='HungarianAssigner',
    match_costs=[
        dict(
            type='FocalLossCost', alpha=0.25, gamma=2.0, eps=1e-8, weight=4.0),
        dict(type='NormalizedBBoxL1Cost', weight=5.0),
        dict(type='NormalizedGIoUCost', weight=2.0),
        dict(type='FastCrossEntropyLossCost', weight=5.0),
        dict(
            type='DiceCost',
            pred_act=True,
            eps=1.0,
            naive_dice=True,
            weight=5.0),
    ])


def point_sample_by_index(masks: Tensor, index: Tensor,
                          coords: Tensor) -> Tensor:
    """Sample ``masks[index[i]]`` at ``coords[i]`` without gathering
    full-resolution masks.

    Pairs are grouped by mask: mask ``j`` is sampled once at the points of all
        pairs that use it, so the
    cost is one ``grid_sample`` over the ``n`` masks instead of a copy of
    ``num_pairs`` masks.

    Args:
        masks (Tensor): ``(n, H, W)`` masks.
        index (Tensor): ``(m,)`` long mask index of each pair.
        coords (Tensor): ``(m, K, 2)`` points in ``[0, 1]``.

    Returns:
        Tensor: ``(m, K)`` bilinearly sampled values.
    """
    order = index.argsort(stable=True)
    sorted_index = index[order]
    counts = torch.bincount(index, minlength=masks.shape[0])
    rank = torch.arange(
        index.numel(),
        device=index.device) - (counts.cumsum(0) - counts)[sorted_index]
    grid = coords.new_zeros(masks.shape[0], int(counts.max()), coords.shape[1],
                            2)
    grid[sorted_index, rank] = coords[order]
    sampled = point_sample(masks[:, None].float(),
                           grid.flatten(1, 2).float()).view(grid.shape[:3])
    values = coords.new_empty(coords.shape[:2])
    values[order] = sampled[sorted_index, rank].to(values.dtype)
    return values


def sample_mask_points(masks: Union[Tensor, FactorisedMasks],
                       points: Tensor) -> Tensor:
    """Mask logits at points shared by the queries of each image.

    Args:
        masks (Tensor | FactorisedMasks): ``(bs, Q, h, w)`` logits.
        points (Tensor): ``(bs, N, 2)`` points in ``[0, 1]``.

    Returns:
        Tensor: ``(bs, Q, N)``.
    """
    if isinstance(masks, FactorisedMasks):
        return masks.point_sample(points)
    return point_sample(masks, points)


@MODELS.register_module()
class MaskDINOLoss(BaseModule):
    """Weighted Mask DINO losses of one training step.

    Box-only images are the GT ``InstanceData`` without a ``masks`` field:
    their mask costs are neutralised in matching (the mask cost inputs are
    identical for every pair, a constant cost shift that leaves the assignment
    unchanged) and their mask/dice terms are skipped; the mask normaliser
    counts only GT of images with masks.

    Args:
        num_classes (int): Number of classes ``C`` (``K = C`` for focal, ``C +
            1`` for the CE variant).
        assigner (dict): Assigner config; its costs see ``scores (Q, K)``
            logits, ``bboxes (Q, 4)`` normalised cxcywh and ``masks (Q,
            num_points)`` point logits, and GT ``labels``, ``bboxes``, ``masks
            (n, num_points)`` point values and, with decoupled stuff boxes,
            ``has_box (n,)``.
        loss_cls (dict): Class loss: sigmoid ``FocalLoss`` (unmatched =
            all-zero target, normalised by #GT) or softmax ``CrossEntropyLoss``
            with ``class_weight`` (unmatched = class ``C``, PyTorch weighted
            mean as the official semantic model).
        loss_mask (dict): Point-sampled sigmoid BCE.
        loss_dice (dict): Point-sampled dice loss.
        loss_bbox (dict): L1 loss on normalised cxcywh.
        loss_iou (dict): GIoU loss (boxes converted to xyxy).
        num_points (int): Points per mask in matching and loss. Defaults to
            12544.
        oversample_ratio (float): Oversampling of the uncertainty point
            sampling. Defaults to 3.0.
        importance_sample_ratio (float): Share of uncertain points. Defaults to
            0.75.
        num_things_classes (int, optional): Labels below it are things (filled
            in by :class:`MaskDINOHead`). Needed only with
            ``decouple_stuff_boxes``.
        decouple_stuff_boxes (bool): Leave stuff GT (``label >=
            num_things_classes``) out of the box costs and the box losses
            (official ``panoptic_on`` / ``PANO_BOX_LOSS``; the normaliser still
            counts them). Defaults to False (official HEAD behaviour).
        dn_mask_losses (bool): Supervise the masks of the denoising queries
            too (official ``DN: seg``, mask denoising); False gives box-only
            denoising (official ``DN: standard``: class and box terms only).
            Defaults to True.
        no_object_weight (float): Weight of the "no object" class of a
            softmax ``loss_cls`` given without ``class_weight`` (which then
            becomes ``[1] * C + [no_object_weight]``). Defaults to 0.1.
        init_cfg (dict, optional): Initialisation config. Defaults to None.
    """

    def __init__(self,
                 num_classes: int,
                 assigner: ConfigType = DEFAULT_ASSIGNER,
                 loss_cls: ConfigType = dict(
                     type='FocalLoss',
                     use_sigmoid=True,
                     gamma=2.0,
                     alpha=0.25,
                     loss_weight=4.0),
                 loss_mask: ConfigType = dict(
                     type='CrossEntropyLoss',
                     use_sigmoid=True,
                     loss_weight=5.0),
                 loss_dice: ConfigType = dict(
                     type='DiceLoss',
                     use_sigmoid=True,
                     activate=True,
                     naive_dice=True,
                     eps=1.0,
                     loss_weight=5.0),
                 loss_bbox: ConfigType = dict(type='L1Loss', loss_weight=5.0),
                 loss_iou: ConfigType = dict(type='GIoULoss', loss_weight=2.0),
                 num_points: int = 12544,
                 oversample_ratio: float = 3.0,
                 importance_sample_ratio: float = 0.75,
                 num_things_classes: Optional[int] = None,
                 decouple_stuff_boxes: bool = False,
                 dn_mask_losses: bool = True,
                 no_object_weight: float = 0.1,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        assert not decouple_stuff_boxes or num_things_classes is not None, \
            'decouple_stuff_boxes needs num_things_classes'
        self.num_classes = num_classes
        self.num_things_classes = num_things_classes
        self.decouple_stuff_boxes = decouple_stuff_boxes
        self.dn_mask_losses = dn_mask_losses
        self.assigner = TASK_UTILS.build(assigner)
        if uses_softmax_classes(dict(
                loss_cls=loss_cls)) and loss_cls.get('class_weight') is None:
            # official NO_OBJECT_WEIGHT: the class count stays in one place
            loss_cls = dict(
                loss_cls,
                class_weight=[1.0] * num_classes + [no_object_weight])
        self.loss_cls = MODELS.build(loss_cls)
        self.loss_mask = MODELS.build(loss_mask)
        self.loss_dice = MODELS.build(loss_dice)
        self.loss_bbox = MODELS.build(loss_bbox)
        self.loss_iou = MODELS.build(loss_iou)
        self.num_points = num_points
        self.oversample_ratio = oversample_ratio
        self.importance_sample_ratio = importance_sample_ratio

    def forward(self, outputs: dict, dn_outputs: Optional[dict],
                dn_meta: Optional[dict],
                batch_gt_instances: List[InstanceData]) -> Dict[str, Tensor]:
        """Match every prediction set, then compute all weighted losses.

        Args:
            outputs (dict): Final prediction set (``pred_logits (bs, Q, K)``,
                ``pred_boxes (bs, Q, 4)``, ``pred_masks (bs, Q, h, w)``, a
                tensor or the decoder's :class:`FactorisedMasks`) plus
                ``aux_outputs`` (list of sets) and ``interm_outputs`` (set or
                None).
            dn_outputs (dict, optional): The decoder's denoising outputs:
                ``aux_indices`` (the supervised aux sets, named ``d{i}.dn_*``)
                and, unless the batch skipped denoising, the final set of the
                ``P`` DN queries and their supervised ``aux_outputs``. None
                without denoising.
            dn_meta (dict, optional): ``pad_size``, ``num_groups``,
                ``single_pad``; None when the batch skipped denoising (the DN
                terms are then zero).
            batch_gt_instances (list[InstanceData]): Per image ``labels (n,)``,
                ``bboxes (n, 4)`` normalised cxcywh and, unless box-only,
                ``masks (n, H, W)`` float.

        Returns:
            dict[str, Tensor]: ``loss_*``, ``d{i}.loss_*``, ``enc_loss_*``,
            ``dn_loss_*`` and ``d{i}.dn_loss_*`` (``*`` in cls, mask, dice,
            bbox, iou).
        """
        num_gts, num_gt_masks = self._normalisers(
            batch_gt_instances, outputs['pred_logits'].device)
        aux_outputs = outputs.get('aux_outputs') or []
        interm_outputs = outputs.get('interm_outputs')
        matched_sets = [('', 'final output', outputs)]
        matched_sets += [(f'd{i}.', f'aux output {i}', aux)
                         for i, aux in enumerate(aux_outputs)]
        if interm_outputs is not None:
            matched_sets.append(('enc_', 'interm output', interm_outputs))

        losses = {}
        for prefix, name, preds in matched_sets:
            assignment = self._match(preds, batch_gt_instances, name)
            set_losses = self._loss_single(preds, batch_gt_instances,
                                           assignment, num_gts, num_gt_masks)
            losses.update({prefix + k: v for k, v in set_losses.items()})

        if dn_outputs is not None:
            losses.update(
                self._dn_losses(outputs, dn_outputs, dn_meta,
                                batch_gt_instances, num_gts, num_gt_masks))
        return losses

    def _dn_losses(self, outputs: dict, dn_outputs: dict,
                   dn_meta: Optional[dict],
                   batch_gt_instances: List[InstanceData], num_gts: float,
                   num_gt_masks: float) -> Dict[str, Tensor]:
        """``dn_loss_*`` and ``d{i}.dn_loss_*`` of the sets the decoder
        supervises; zeros (same keys) when the batch skipped denoising."""
        prefixes = ['dn_'] + [f'd{i}.dn_' for i in dn_outputs['aux_indices']]
        if dn_meta is None:
            zero = outputs['pred_logits'].sum() * 0.0
            names = LOSS_NAMES if self.dn_mask_losses else BOX_LOSS_NAMES
            return {p + k: zero for p in prefixes for k in names}
        assignment = self._dn_assignment(batch_gt_instances, dn_meta)
        groups = dn_meta['num_groups']
        losses = {}
        for prefix, preds in zip(prefixes,
                                 [dn_outputs] + dn_outputs['aux_outputs']):
            set_losses = self._loss_single(preds, batch_gt_instances,
                                           assignment, num_gts * groups,
                                           num_gt_masks * groups,
                                           self.dn_mask_losses)
            losses.update({prefix + k: v for k, v in set_losses.items()})
        return losses

    @staticmethod
    def _normalisers(batch_gt_instances: List[InstanceData],
                     device: torch.device) -> Tuple[float, float]:
        """#GT and #GT with masks, averaged over processes and clamped to >= 1.

        Returns:
            tuple[float, float]: Box/class normaliser and mask normaliser.
        """
        counts = torch.tensor(
            [[len(gt), len(gt) if 'masks' in gt else 0]
             for gt in batch_gt_instances],
            dtype=torch.float,
            device=device).sum(0)
        counts = reduce_mean(counts).clamp(min=1).tolist()
        return counts[0], counts[1]

    @torch.no_grad()
    def _match(self, preds: dict, batch_gt_instances: List[InstanceData],
               name: str) -> Assignment:
        """Hungarian-match one prediction set, per image, in fp32 with autocast
        disabled.

        The mask costs use ``num_points`` uniform points per image, shared by
        all queries and GT.

        Args:
            preds (dict): Prediction set (``pred_logits``, ``pred_boxes``,
                ``pred_masks``).
            batch_gt_instances (list[InstanceData]): GT per image.
            name (str): Name of the set for error messages.

        Returns:
            Assignment: Matched ``(batch_idx, pred_idx, gt_idx)``.
        """
        for key in ('pred_logits', 'pred_boxes', 'pred_masks'):
            # One reduction instead of an elementwise test: a NaN or inf
            # anywhere makes the sum non-finite (inf - inf is NaN).
            if not torch.isfinite(preds[key].sum(dtype=torch.float32)):
                raise ValueError(f'{key} of {name} contains NaN/inf')
        device = preds['pred_logits'].device
        with torch.autocast(device_type=device.type, enabled=False):
            logits = preds['pred_logits'].float()
            boxes = preds['pred_boxes'].float()
            masks = preds['pred_masks'].float()
            bs, num_preds = logits.shape[:2]
            points = torch.rand(bs, self.num_points, 2, device=device)
            point_logits = sample_mask_points(masks,
                                              points)  # (bs, Q, num_points)
            pairs = []
            for b, gt in enumerate(batch_gt_instances):
                if 'masks' in gt:
                    pred_masks = point_logits[b]
                    gt_masks = point_sample(gt.masks[None].float(),
                                            points[b:b + 1])[0]
                else:
                    pred_masks = logits.new_zeros(num_preds, 1)
                    gt_masks = logits.new_zeros(len(gt), 1)
                pred_instances = InstanceData(
                    scores=logits[b], bboxes=boxes[b], masks=pred_masks)
                gt_instances = InstanceData(
                    labels=gt.labels, bboxes=gt.bboxes.float(), masks=gt_masks)
                if self.decouple_stuff_boxes:
                    gt_instances.has_box = gt.labels < self.num_things_classes
                gt_inds = self.assigner.assign(pred_instances,
                                               gt_instances).gt_inds
                pred_idx = (gt_inds > 0).nonzero().view(-1)
                pairs.append(
                    (torch.full_like(pred_idx,
                                     b), pred_idx, gt_inds[pred_idx] - 1))
        return tuple(torch.cat(p) for p in zip(*pairs))

    @staticmethod
    def _dn_assignment(batch_gt_instances: List[InstanceData],
                       dn_meta: dict) -> Assignment:
        """Fixed DN assignment: slot ``g * single_pad + t`` of every group
        ``g`` <-> GT ``t``.

        Returns:
            Assignment: ``(batch_idx, pred_idx, gt_idx)``, each ``(num_groups *
            sum #GT,)``.
        """
        groups, single_pad = dn_meta['num_groups'], dn_meta['single_pad']
        pairs = []
        for b, gt in enumerate(batch_gt_instances):
            gt_idx = torch.arange(len(gt), device=gt.labels.device)
            group_start = torch.arange(
                groups, device=gt.labels.device) * single_pad
            pred_idx = (group_start[:, None] + gt_idx[None, :]).flatten()
            pairs.append((torch.full_like(pred_idx,
                                          b), pred_idx, gt_idx.repeat(groups)))
        return tuple(torch.cat(p) for p in zip(*pairs))

    def _loss_single(self,
                     preds: dict,
                     batch_gt_instances: List[InstanceData],
                     assignment: Assignment,
                     num_gts: float,
                     num_gt_masks: float,
                     with_masks: bool = True) -> Dict[str, Tensor]:
        """All five weighted losses of one prediction set.

        Args:
            preds (dict): Prediction set.
            batch_gt_instances (list[InstanceData]): GT per image.
            assignment (Assignment): Assigned pairs.
            num_gts (float): Normaliser of the class and box losses.
            num_gt_masks (float): Normaliser of the mask losses.
            with_masks (bool): Compute the mask terms.

        Returns:
            dict[str, Tensor]: Losses keyed by ``LOSS_NAMES`` (without the
            mask terms unless ``with_masks``).
        """
        batch_idx, pred_idx, gt_idx = assignment
        offsets = torch.tensor(
            [0] + [len(gt) for gt in batch_gt_instances],
            device=gt_idx.device).cumsum(0)[:-1]
        flat_gt_idx = offsets[batch_idx] + gt_idx
        gt_labels = torch.cat([gt.labels for gt in batch_gt_instances
                               ]).long()[flat_gt_idx]
        gt_boxes = torch.cat([gt.bboxes
                              for gt in batch_gt_instances])[flat_gt_idx]

        losses = dict(
            loss_cls=self._loss_cls(preds['pred_logits'], batch_idx, pred_idx,
                                    gt_labels, num_gts))
        losses.update(
            self._loss_boxes(preds['pred_boxes'][batch_idx, pred_idx],
                             gt_boxes, gt_labels, num_gts))
        if with_masks:
            losses.update(
                self._loss_masks(preds['pred_masks'], batch_gt_instances,
                                 assignment, num_gt_masks))
        return losses

    def _loss_cls(self, logits: Tensor, batch_idx: Tensor, pred_idx: Tensor,
                  gt_labels: Tensor, num_gts: float) -> Tensor:
        """Class loss over all queries; unassigned queries target "no object"
        (index ``C``).

        Args:
            logits (Tensor): ``(bs, n, K)``.
            batch_idx, pred_idx (Tensor): ``(m,)`` assigned queries.
            gt_labels (Tensor): ``(m,)`` their GT labels.
            num_gts (float): Normaliser of the focal loss.

        Returns:
            Tensor: Scalar weighted loss.
        """
        targets = torch.full(
            logits.shape[:2],
            self.num_classes,
            dtype=torch.long,
            device=logits.device)
        targets[batch_idx, pred_idx] = gt_labels
        logits, targets = logits.flatten(0, 1), targets.flatten()
        if self.loss_cls.use_sigmoid:
            return self.loss_cls(logits, targets, avg_factor=num_gts)
        class_weight = self.loss_cls.class_weight
        if class_weight is None:
            avg_factor = float(targets.numel())
        else:
            avg_factor = logits.new_tensor(class_weight)[targets].sum().item()
        return self.loss_cls(logits, targets, avg_factor=avg_factor)

    def _loss_boxes(self, pred_boxes: Tensor, gt_boxes: Tensor,
                    gt_labels: Tensor, num_gts: float) -> Dict[str, Tensor]:
        """L1 and GIoU losses of the assigned pairs (things only with decoupled
        stuff boxes).

        Args:
            pred_boxes, gt_boxes (Tensor): ``(m, 4)`` normalised cxcywh.
            gt_labels (Tensor): ``(m,)``.
            num_gts (float): Normaliser.

        Returns:
            dict[str, Tensor]: ``loss_bbox`` and ``loss_iou``.
        """
        if self.decouple_stuff_boxes:
            is_thing = gt_labels < self.num_things_classes
            pred_boxes, gt_boxes = pred_boxes[is_thing], gt_boxes[is_thing]
        if pred_boxes.numel() == 0:
            zero = pred_boxes.sum() * 0.0
            return dict(loss_bbox=zero, loss_iou=zero)
        gt_boxes = gt_boxes.to(pred_boxes.dtype)
        return dict(
            loss_bbox=self.loss_bbox(pred_boxes, gt_boxes, avg_factor=num_gts),
            loss_iou=self.loss_iou(
                bbox_cxcywh_to_xyxy(pred_boxes),
                bbox_cxcywh_to_xyxy(gt_boxes),
                avg_factor=num_gts))

    def _loss_masks(self, pred_masks: Union[Tensor, FactorisedMasks],
                    batch_gt_instances: List[InstanceData],
                    assignment: Assignment,
                    num_gt_masks: float) -> Dict[str, Tensor]:
        """Point-sampled BCE and dice of the assigned pairs whose image has GT
        masks.

        Args:
            pred_masks (Tensor | FactorisedMasks): ``(bs, n, h, w)`` mask
                logits; only those of the assigned pairs are formed.
            batch_gt_instances (list[InstanceData]): GT per image.
            assignment (Assignment): Assigned pairs.
            num_gt_masks (float): Normaliser.

        Returns:
            dict[str, Tensor]: ``loss_mask`` and ``loss_dice``.
        """
        batch_idx, pred_idx, gt_idx = assignment
        has_masks = torch.tensor(['masks' in gt for gt in batch_gt_instances],
                                 dtype=torch.bool,
                                 device=batch_idx.device)
        keep = has_masks[batch_idx]
        batch_idx, pred_idx, gt_idx = batch_idx[keep], pred_idx[keep], gt_idx[
            keep]
        if batch_idx.numel() == 0:
            zero = pred_masks.sum() * 0.0
            return dict(loss_mask=zero, loss_dice=zero)

        mask_logits = pred_masks[batch_idx, pred_idx][:, None]  # (m, 1, h, w)
        with torch.no_grad():
            coords = get_uncertain_point_coords_with_randomness(
                mask_logits, None, self.num_points, self.oversample_ratio,
                self.importance_sample_ratio)
            point_targets = coords.new_empty(coords.shape[:2])
            for b in batch_idx.unique().tolist():
                in_image = (batch_idx == b).nonzero().view(-1)
                point_targets[in_image] = point_sample_by_index(
                    batch_gt_instances[b].masks, gt_idx[in_image],
                    coords[in_image])
        point_logits = point_sample(mask_logits,
                                    coords).squeeze(1)  # (m, num_points)
        point_targets = point_targets.to(point_logits.dtype)
        return dict(
            loss_mask=self.loss_mask(
                point_logits,
                point_targets,
                avg_factor=num_gt_masks * self.num_points),
            loss_dice=self.loss_dice(
                point_logits, point_targets, avg_factor=num_gt_masks))
