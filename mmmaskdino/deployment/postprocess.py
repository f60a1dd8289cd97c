# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
"""NumPy post-processing of exported Mask DINO outputs.

The same rules as :class:`mmmaskdino.models.seg_heads.MaskDINOFusionHead`
(see its docstrings for the reasoning), on NumPy arrays and for one image:
mask logits are upsampled bilinearly to the padded input, cropped to
``img_shape`` and resized to the output size; instances are the top-k
(query, class) pairs with mask-quality rescoring and the predicted boxes;
panoptic and semantic maps follow the fusion head's inference. Only the
queries a task needs are upsampled (all of them for semantic maps), so the
instance path does not hold ``Q`` full-size masks.
"""
from typing import Dict, Mapping, Optional, Sequence, Tuple

import numpy as np

from mmdet.evaluation.functional import INSTANCE_OFFSET
from mmmaskdino.models.seg_heads.maskdino_fusion_head import TEST_CFG_DEFAULTS


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Logistic function in the dtype of ``x``."""
    return (1 / (1 + np.exp(-x))).astype(x.dtype)


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """Numerically stable softmax along ``axis``."""
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _linear_taps(in_size: int,
                 out_size: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Source indices and weights of PyTorch's ``align_corners=False``
    linear interpolation along one axis (``scale = in / out``)."""
    scale = np.float32(in_size / out_size)
    src = (np.arange(out_size, dtype=np.float32) + 0.5) * scale - 0.5
    src = np.maximum(src, 0)
    lo = np.minimum(np.floor(src).astype(np.int64), in_size - 1)
    hi = np.minimum(lo + 1, in_size - 1)
    weight_hi = (src - lo).astype(np.float32)
    return lo, hi, weight_hi


def resize_bilinear(maps: np.ndarray, size: Sequence[int]) -> np.ndarray:
    """``F.interpolate(maps[None], size, mode='bilinear',
    align_corners=False)[0]`` for ``(N, h, w)`` float arrays."""
    out_h, out_w = int(size[0]), int(size[1])
    y_lo, y_hi, wy = _linear_taps(maps.shape[-2], out_h)
    x_lo, x_hi, wx = _linear_taps(maps.shape[-1], out_w)
    cols = maps[..., x_lo] * (1 - wx) + maps[..., x_hi] * wx
    return (cols[..., y_lo, :] * (1 - wy)[:, None] +
            cols[..., y_hi, :] * wy[:, None]).astype(maps.dtype)


def rescale_boxes(boxes: np.ndarray, batch_input_shape: Sequence[int],
                  img_shape: Sequence[int],
                  out_shape: Sequence[int]) -> np.ndarray:
    """Normalised cxcywh boxes of the padded input -> xyxy output pixels
    (:meth:`MaskDINOFusionHead.rescale_boxes`)."""
    scale_h = batch_input_shape[0] / img_shape[0] * out_shape[0]
    scale_w = batch_input_shape[1] / img_shape[1] * out_shape[1]
    cx, cy, w, h = np.split(boxes, 4, axis=-1)
    xyxy = np.concatenate(
        [cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h], axis=-1)
    return xyxy * np.array([scale_w, scale_h, scale_w, scale_h],
                           dtype=boxes.dtype)


class NumpyPostProcessor:
    """Instance, panoptic and semantic results from the network outputs.

    Args:
        num_things_classes (int): Thing classes (ids ``0 .. T - 1``).
        num_stuff_classes (int): Stuff classes (the following ids).
        test_cfg (Mapping, optional): The fusion head's ``test_cfg``;
            missing keys take ``TEST_CFG_DEFAULTS``.
    """

    def __init__(self,
                 num_things_classes: int,
                 num_stuff_classes: int,
                 test_cfg: Optional[Mapping] = None) -> None:
        self.num_things_classes = num_things_classes
        self.num_classes = num_things_classes + num_stuff_classes
        self.cfg = dict(TEST_CFG_DEFAULTS, **(test_cfg or {}))

    def _sharpened_scores(self, mask_cls: np.ndarray) -> np.ndarray:
        scores = sigmoid(mask_cls)
        if self.cfg['pano_transform_eval']:
            scores = softmax(scores / self.cfg['pano_temperature'])
        return scores

    @staticmethod
    def _output_masks(mask_pred: np.ndarray, meta: Mapping,
                      out_shape: Sequence[int]) -> np.ndarray:
        """Mask logits at 1/4 -> padded input -> crop -> output size."""
        img_h, img_w = meta['img_shape'][:2]
        padded = resize_bilinear(mask_pred, meta['batch_input_shape'][:2])
        return resize_bilinear(padded[:, :img_h, :img_w], out_shape)

    def instance_topk(
            self, mask_cls: np.ndarray
    ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Sorted top-k (query, class) pairs, as
        :meth:`MaskDINOFusionHead.instance_topk`."""
        scores = sigmoid(mask_cls[:, :self.num_classes]).ravel()
        num_top = min(self.cfg['max_per_image'], scores.size)
        flat = np.argsort(-scores, kind='stable')[:num_top]
        return scores[flat], flat % self.num_classes, flat // self.num_classes

    def instances(self, mask_cls: np.ndarray, mask_pred: np.ndarray,
                  mask_box: np.ndarray, meta: Mapping,
                  out_shape: Sequence[int],
                  topk: Optional[Sequence[np.ndarray]] = None
                  ) -> Dict[str, np.ndarray]:
        """Instance results (:meth:`MaskDINOFusionHead.instance_postprocess`).

        Args:
            mask_cls (np.ndarray): ``(Q, K)`` class logits.
            mask_pred (np.ndarray): ``(Q, h4, w4)`` mask logits.
            mask_box (np.ndarray): ``(Q, 4)`` normalised cxcywh boxes.
            meta (Mapping): ``batch_input_shape``, ``img_shape``.
            out_shape (Sequence[int]): Output ``(H0, W0)``.
            topk (Sequence[np.ndarray], optional): ``(scores, labels,
                query_indices)`` computed in the graph; else computed here.

        Returns:
            dict: ``bboxes (N, 4)`` xyxy, ``labels (N,)``, ``scores (N,)``,
            ``masks (N, H0, W0)`` bool and ``query_indices (N,)``.
        """
        scores, labels, queries = topk if topk is not None else \
            self.instance_topk(mask_cls)
        is_thing = labels < self.num_things_classes
        scores, labels = scores[is_thing], labels[is_thing].astype(np.int64)
        queries = queries[is_thing].astype(np.int64)
        # Upsample each selected query once.
        unique, inverse = np.unique(queries, return_inverse=True)
        logits = self._output_masks(mask_pred[unique], meta, out_shape)
        binary = logits > 0
        if not self.cfg['focus_on_box']:
            quality = (sigmoid(logits) * binary).reshape(len(unique), -1).sum(
                1) / (binary.reshape(len(unique), -1).sum(1) + 1e-6)
            scores = scores * quality[inverse].astype(scores.dtype)
        boxes = rescale_boxes(mask_box, meta['batch_input_shape'],
                              meta['img_shape'], out_shape)
        return dict(
            bboxes=boxes[queries],
            labels=labels,
            scores=scores,
            masks=binary[inverse],
            query_indices=queries)

    def semantic(self, mask_cls: np.ndarray, mask_pred: np.ndarray,
                 meta: Mapping,
                 out_shape: Sequence[int]) -> Dict[str, np.ndarray]:
        """Semantic results (:meth:`MaskDINOFusionHead.semantic_inference`).

        Returns:
            dict: ``sem_seg (H0, W0)`` labels and ``seg_logits (C, H0, W0)``.
        """
        if self.cfg['semantic_ce']:
            cls_probs = softmax(mask_cls)[:, :-1]
        else:
            cls_probs = self._sharpened_scores(mask_cls)
        resize_first = (self.cfg['instance_on'] or self.cfg['panoptic_on'] or
                        self.cfg['sem_seg_postprocess_before_inference'])
        if resize_first:
            mask_pred = self._output_masks(mask_pred, meta, out_shape)
        else:
            mask_pred = resize_bilinear(mask_pred,
                                        meta['batch_input_shape'][:2])
        height, width = mask_pred.shape[-2:]
        seg_logits = (cls_probs.T @ sigmoid(mask_pred).reshape(
            len(mask_pred), -1)).reshape(-1, height, width)
        if not resize_first:
            img_h, img_w = meta['img_shape'][:2]
            seg_logits = resize_bilinear(seg_logits[:, :img_h, :img_w],
                                         out_shape)
        return dict(sem_seg=seg_logits.argmax(0), seg_logits=seg_logits)

    def panoptic(self, mask_cls: np.ndarray, mask_pred: np.ndarray,
                 meta: Mapping, out_shape: Sequence[int]) -> np.ndarray:
        """Panoptic map in mmdet's encoding
        (:meth:`MaskDINOFusionHead.panoptic_inference` and
        :meth:`~MaskDINOFusionHead.encode_panoptic`).

        Returns:
            np.ndarray: ``(H0, W0)`` int32, things ``label + id *
            INSTANCE_OFFSET``, stuff ``label``, void ``num_classes``.
        """
        probs = sigmoid(mask_cls)
        keep = (probs.argmax(-1) != self.num_classes) & (
            probs.max(-1) > self.cfg['object_mask_thr'])
        sharpened = self._sharpened_scores(mask_cls)
        cur_scores = sharpened.max(-1)[keep]
        cur_classes = sharpened.argmax(-1)[keep].tolist()
        panoptic = np.full(tuple(out_shape[:2]), self.num_classes, np.int32)
        if not cur_classes:
            return panoptic
        cur_masks = sigmoid(
            self._output_masks(mask_pred[keep], meta, out_shape))
        winner = (cur_scores[:, None, None] * cur_masks).argmax(0)
        stuff_codes = {}
        num_segments = 0
        for k, pred_class in enumerate(cur_classes):
            wins = winner == k
            foreground = cur_masks[k] >= 0.5
            mask = wins & foreground
            mask_area, original_area = int(wins.sum()), int(foreground.sum())
            if mask_area == 0 or original_area == 0 or not mask.any():
                continue
            if mask_area / original_area < self.cfg['iou_thr']:
                continue
            isthing = pred_class < self.num_things_classes
            if not isthing and pred_class in stuff_codes:
                panoptic[mask] = stuff_codes[pred_class]
                continue
            num_segments += 1
            code = pred_class
            if isthing:
                code += num_segments * INSTANCE_OFFSET
            else:
                stuff_codes[pred_class] = code
            panoptic[mask] = code
        return panoptic

    def __call__(self,
                 mask_cls: np.ndarray,
                 mask_pred: np.ndarray,
                 mask_box: np.ndarray,
                 meta: Mapping,
                 rescale: bool = True,
                 topk: Optional[Sequence[np.ndarray]] = None) -> dict:
        """Results of one image for the tasks enabled in ``test_cfg``.

        Args:
            mask_cls (np.ndarray): ``(Q, K)`` class logits.
            mask_pred (np.ndarray): ``(Q, h4, w4)`` mask logits.
            mask_box (np.ndarray): ``(Q, 4)`` normalised cxcywh boxes.
            meta (Mapping): ``batch_input_shape``, ``img_shape`` and
                ``ori_shape``.
            rescale (bool): Output at ``ori_shape``, else at ``img_shape``.
            topk (Sequence[np.ndarray], optional): In-graph instance top-k.

        Returns:
            dict: Among ``instances`` (see :meth:`instances`),
            ``panoptic_seg`` (see :meth:`panoptic`) and ``sem_seg`` /
            ``seg_logits`` (see :meth:`semantic`).
        """
        out_shape = (meta['ori_shape'] if rescale else meta['img_shape'])[:2]
        results = dict()
        if self.cfg['semantic_on']:
            results.update(self.semantic(mask_cls, mask_pred, meta,
                                         out_shape))
        if self.cfg['panoptic_on']:
            results['panoptic_seg'] = self.panoptic(mask_cls, mask_pred, meta,
                                                    out_shape)
        if self.cfg['instance_on']:
            results['instances'] = self.instances(mask_cls, mask_pred,
                                                  mask_box, meta, out_shape,
                                                  topk)
        return results
