# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
"""Mask DINO post-processing: instance, panoptic and semantic inference."""
from typing import List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from mmdet.evaluation.functional import INSTANCE_OFFSET
from mmdet.models.seg_heads.panoptic_fusion_heads import MaskFormerFusionHead
from mmdet.registry import MODELS
from mmdet.structures.bbox import bbox_cxcywh_to_xyxy
from mmdet.structures.mask import mask2bbox
from mmdet.utils import OptConfigType, OptMultiConfig
from mmengine.config import ConfigDict
from mmengine.structures import InstanceData, PixelData
from torch import Tensor

# Defaults of the ``test_cfg`` keys read by :class:`MaskDINOFusionHead`.
TEST_CFG_DEFAULTS = dict(
    panoptic_on=True,
    instance_on=False,
    semantic_on=False,
    object_mask_thr=0.25,
    iou_thr=0.8,
    max_per_image=100,
    pano_temperature=0.06,
    pano_transform_eval=True,
    focus_on_box=False,
    box_from_mask=False,
    sem_seg_postprocess_before_inference=False)
# Queries per step of the semantic map: bounds its full-resolution masks
# while keeping the matrix product efficient.
SEMANTIC_CHUNK = 128


def _is_range(index: Tensor, length: int) -> bool:
    """Whether ``index`` is ``0 .. length - 1`` in order (an identity
    selection)."""
    return len(index) == length and torch.equal(
        index, torch.arange(length, device=index.device))


@MODELS.register_module()
class MaskDINOFusionHead(MaskFormerFusionHead):
    """Post-processing of Mask DINO predictions.

    The official ``MaskDINO.instance_inference``, ``panoptic_inference`` and
    ``semantic_inference`` (``maskdino/maskdino.py``), on mmdet's data
    structures.

    It differs from :class:`MaskFormerFusionHead`, whose classifier is a
    softmax with a background logit, in the following ways:

    - class scores are sigmoids (focal training); panoptic ranking and the
      focal semantic map sharpen them with ``softmax(sigmoid / T)``;
    - stuff segments of one class are merged into one segment id, and a pixel
      joins a segment only where the query's mask probability is >= 0.5;
    - instance boxes are the decoder's predicted boxes, not ``mask2bbox``,
      and instance scores are rescored with the mean mask probability;
    - it produces the semantic map (focal or softmax cross-entropy path);
    - it upsamples the 1/4-resolution mask logits itself: bilinear to the
      padded input, then crop to ``img_shape`` and bilinear resize to the
      output size, as two separate steps.

    Thing classes are the contiguous ids ``0 .. num_things_classes - 1``,
    stuff classes the following ``num_stuff_classes`` ids.

    ``test_cfg`` keys (defaults in ``TEST_CFG_DEFAULTS``): ``panoptic_on``,
    ``instance_on``, ``semantic_on``, ``object_mask_thr``, ``iou_thr``,
    ``max_per_image``, ``pano_temperature``, ``pano_transform_eval``,
    ``focus_on_box`` (instance scores without mask rescoring),
    ``box_from_mask`` (instance boxes around the binary masks instead of the
    predicted boxes, for analysis: the official code has no such option) and
    ``sem_seg_postprocess_before_inference``. Mask logits are cropped and
    resized before inference when that key, ``instance_on`` or
    ``panoptic_on`` is set; otherwise the semantic map is computed at the
    padded size and cropped and resized afterwards.

    Args:
        num_things_classes (int): Thing classes (filled in by
            :class:`MaskDINO` from its ``panoptic_head``).
        num_stuff_classes (int): Stuff classes (likewise).
        semantic_ce (bool, optional): The class head has ``C + 1`` outputs
            (softmax, "no object" last) and the semantic map uses their
            softmax without the last one. Filled in by :class:`MaskDINO`
            from ``criterion.loss_cls``. Only a fusion head built on its own
            (without a detector) reads ``test_cfg.semantic_ce`` instead
            (default False); within a detector that key may only repeat the
            class loss's value, else it is an error.
        test_cfg (dict, optional): See above.
    """

    def __init__(self,
                 num_things_classes: int = 80,
                 num_stuff_classes: int = 53,
                 semantic_ce: Optional[bool] = None,
                 test_cfg: OptConfigType = None,
                 loss_panoptic: OptConfigType = None,
                 init_cfg: OptMultiConfig = None,
                 **kwargs) -> None:
        super().__init__(
            num_things_classes=num_things_classes,
            num_stuff_classes=num_stuff_classes,
            test_cfg=ConfigDict(test_cfg or {}),
            loss_panoptic=loss_panoptic,
            init_cfg=init_cfg,
            **kwargs)
        self.test_cfg = ConfigDict(self.test_cfg)
        cfg_semantic_ce = self.test_cfg.pop('semantic_ce', None)
        if semantic_ce is None:
            semantic_ce = bool(cfg_semantic_ce)
        elif cfg_semantic_ce is not None and cfg_semantic_ce != semantic_ce:
            raise ValueError(
                f'test_cfg.semantic_ce={cfg_semantic_ce} contradicts the '
                f'class loss (semantic_ce={semantic_ce}): remove it from '
                'test_cfg, it follows from criterion.loss_cls.use_sigmoid')
        self.semantic_ce = semantic_ce

    def _cfg(self, key: str):
        """Value of a ``test_cfg`` key, falling back to its default."""
        return self.test_cfg.get(key, TEST_CFG_DEFAULTS[key])

    def _sharpened_scores(self, mask_cls: Tensor) -> Tensor:
        """Sigmoid class scores, sharpened by a temperature softmax if
        ``pano_transform_eval``.

        Args:
            mask_cls (Tensor): Class logits, shape (Q, C).

        Returns:
            Tensor: Scores, shape (Q, C).
        """
        scores = mask_cls.sigmoid()
        if self._cfg('pano_transform_eval'):
            scores = F.softmax(scores / self._cfg('pano_temperature'), dim=-1)
        return scores

    @staticmethod
    def crop_is_output(img_shape: Sequence[int],
                       out_shape: Sequence[int]) -> bool:
        """Whether the unpadded input already has the output size, so that
        the resize after the crop is the identity."""
        return tuple(img_shape[:2]) == tuple(out_shape[:2])

    @staticmethod
    def crop_and_resize(maps: Tensor, img_shape: Sequence[int],
                        out_shape: Sequence[int]) -> Tensor:
        """Crop padded maps to ``img_shape`` and resize them bilinearly.

        Args:
            maps (Tensor): Maps at the padded size, shape (N, H_pad, W_pad).
            img_shape (Sequence[int]): Unpadded ``(h_img, w_img)``.
            out_shape (Sequence[int]): Output ``(H0, W0)``.

        Returns:
            Tensor: Shape (N, H0, W0).
        """
        maps = maps[:, :img_shape[0], :img_shape[1]]
        if MaskDINOFusionHead.crop_is_output(img_shape, out_shape):
            return maps  # bilinear resizing to the same size is the identity
        return F.interpolate(
            maps[None],
            size=tuple(out_shape[:2]),
            mode='bilinear',
            align_corners=False)[0]

    def semantic_inference(self, mask_cls: Tensor,
                           mask_pred: Tensor) -> Tensor:
        """Per-class score map ``sum_q p(c | q) * sigmoid(mask_q)``.

        ``p`` is ``softmax(mask_cls)`` without the last (no-object) column
        when ``semantic_ce``, else the sharpened sigmoid scores.

        Args:
            mask_cls (Tensor): Class logits, shape (Q, K).
            mask_pred (Tensor): Mask logits, shape (Q, h, w).

        Returns:
            Tensor: Scores, shape (C, h, w).
        """
        return torch.einsum('qc,qhw->chw',
                            self._semantic_class_probs(mask_cls),
                            mask_pred.sigmoid())

    def _semantic_class_probs(self, mask_cls: Tensor) -> Tensor:
        """``p(c | q)`` of :meth:`semantic_inference`, shape (Q, C)."""
        if self.semantic_ce:
            return F.softmax(mask_cls, dim=-1)[:, :-1]
        return self._sharpened_scores(mask_cls)

    @staticmethod
    def _to_sem_results(seg_logits: Tensor) -> PixelData:
        """Wrap a (C, h, w) score map with its (1, h, w) argmax labels."""
        return PixelData(
            sem_seg=seg_logits.argmax(dim=0, keepdim=True),
            seg_logits=seg_logits)

    def panoptic_queries(self, mask_cls: Tensor) -> Tensor:
        """Queries that take part in the panoptic fusion: best class not a
        trailing no-object column and max sigmoid score above
        ``object_mask_thr``.

        Args:
            mask_cls (Tensor): Class logits, shape (Q, K).

        Returns:
            Tensor: Sorted query indices, shape (n,).
        """
        sigmoid_scores, sigmoid_labels = mask_cls.sigmoid().max(-1)
        keep = sigmoid_labels.ne(self.num_classes) & (
            sigmoid_scores > self._cfg('object_mask_thr'))
        return keep.nonzero()[:, 0]

    @staticmethod
    def winning_query(scores: Tensor, logits: Tensor,
                      rows: Tensor) -> Tuple[Tensor, Tensor]:
        """Per pixel, the first ``k`` with the largest ``scores[k] *
        sigmoid(logits[rows[k]])``, and per ``k`` the area where that
        probability is >= 0.5.

        The winner is ``(scores.view(-1, 1, 1) * probs).argmax(0)`` with
        ``probs = logits[rows].sigmoid()``, computed as a running maximum
        one plane at a time in reused buffers: an argmax across the planes
        of the full product was several times slower on CPU, and the
        probabilities of all kept queries at the output size (1.3 GB for
        300 queries at 800 x 1333) are never held.

        Args:
            scores (Tensor): Shape (n,), n >= 1.
            logits (Tensor): Mask logits, shape (N, h, w).
            rows (Tensor): Row of ``logits`` of each score, shape (n,).

        Returns:
            tuple: Indices into the n scores, shape (h, w), int64, and the
            areas of ``probs >= 0.5``, shape (n,), int64.
        """
        prob = logits.new_empty(logits.shape[1:])
        value = torch.empty_like(prob)
        best = torch.empty_like(prob)
        foreground = torch.empty_like(prob, dtype=torch.bool)
        better = torch.empty_like(foreground)
        winner = torch.zeros_like(prob, dtype=torch.long)
        areas = []
        for k, row in enumerate(rows.tolist()):
            torch.sigmoid(logits[row], out=prob)
            areas.append(torch.ge(prob, 0.5, out=foreground).count_nonzero())
            if k == 0:
                torch.mul(prob, scores[0], out=best)
                continue
            torch.mul(prob, scores[k], out=value)
            winner.masked_fill_(torch.gt(value, best, out=better), k)
            torch.maximum(best, value, out=best)
        return winner, torch.stack(areas)

    def panoptic_inference(
            self,
            mask_cls: Tensor,
            mask_pred: Tensor,
            mask_queries: Optional[Tensor] = None
    ) -> Tuple[Tensor, List[dict]]:
        """The official Mask DINO panoptic fusion.

        The queries of :meth:`panoptic_queries` are kept
        and ranked by their (sharpened) score times mask probability. In query
        order, a kept query's segment is the pixels it wins with probability
        >= 0.5; it is skipped if that is less than ``iou_thr`` of its own
        probability >= 0.5 area. A stuff class that already has a segment
        paints into it instead of opening a new one.

        Args:
            mask_cls (Tensor): Class logits, shape (Q, K).
            mask_pred (Tensor): Mask logits, shape (Q, h, w), or (n, h, w)
                for the queries ``mask_queries`` only; not modified.
            mask_queries (Tensor, optional): Sorted query of each row of
                ``mask_pred`` (it must hold every kept query); None when it
                has all Q.

        Returns:
            tuple: ``panoptic_seg`` (h, w) int32 segment ids (0 = void) and
            ``segments_info``, a list of ``dict(id, isthing, category_id)``.
        """
        keep = self.panoptic_queries(mask_cls)
        rows = keep if mask_queries is None else \
            torch.searchsorted(mask_queries, keep)
        scores, labels = self._sharpened_scores(mask_cls[keep]).max(-1)
        cur_classes = labels.tolist()

        panoptic_seg = torch.zeros(
            mask_pred.shape[-2:], dtype=torch.int32, device=mask_pred.device)
        segments_info = []
        if len(cur_classes) == 0:
            return panoptic_seg, segments_info

        num_kept = len(cur_classes)
        winner, original_area = self.winning_query(scores, mask_pred, rows)
        # Per kept query k: pixels it wins, its foreground (prob >= 0.5) and
        # the pixels it wins inside its foreground, counted in a few passes
        # instead of full-image tests per query; the segments of different
        # queries are disjoint, so they are painted at once at the end.
        won_foreground = mask_pred.gather(
            0, rows[winner][None])[0].sigmoid_() >= 0.5
        wins_area = torch.bincount(winner.flatten(), minlength=num_kept)
        segment_area = torch.bincount(
            winner[won_foreground], minlength=num_kept)
        segment_of_query = [0] * num_kept
        iou_thr = self._cfg('iou_thr')
        stuff_segment_ids = {}
        for k, (pred_class, mask_area, area, segment) in enumerate(
                zip(cur_classes, wins_area.tolist(), original_area.tolist(),
                    segment_area.tolist())):
            if mask_area == 0 or area == 0 or segment == 0:
                continue
            if mask_area / area < iou_thr:
                continue
            isthing = pred_class < self.num_things_classes
            if not isthing and pred_class in stuff_segment_ids:
                segment_of_query[k] = stuff_segment_ids[pred_class]
                continue
            segment_id = len(segments_info) + 1
            if not isthing:
                stuff_segment_ids[pred_class] = segment_id
            segment_of_query[k] = segment_id
            segments_info.append(
                dict(id=segment_id, isthing=isthing, category_id=pred_class))
        lut = torch.tensor(
            segment_of_query, dtype=torch.int32, device=winner.device)
        panoptic_seg = torch.where(won_foreground, lut[winner], panoptic_seg)
        return panoptic_seg, segments_info

    def encode_panoptic(self, panoptic_seg: Tensor,
                        segments_info: List[dict]) -> Tensor:
        """Convert segment ids to mmdet's panoptic encoding.

        Things become ``category + segment_id * INSTANCE_OFFSET``, stuff
        ``category`` and void ``num_classes`` (as ``CocoPanopticMetric``
        decodes them).

        Args:
            panoptic_seg (Tensor): Segment ids (0 = void), shape (h, w).
            segments_info (List[dict]): Segments with ids ``1 .. n``.

        Returns:
            Tensor: Encoded map, shape (h, w), int32.
        """
        lut = torch.full((len(segments_info) + 1, ),
                         self.num_classes,
                         dtype=torch.long,
                         device=panoptic_seg.device)
        for seg in segments_info:
            code = seg['category_id']
            if seg['isthing']:
                code += seg['id'] * INSTANCE_OFFSET
            lut[seg['id']] = code
        return lut[panoptic_seg.long()].int()

    def panoptic_postprocess(
            self,
            mask_cls: Tensor,
            mask_pred: Tensor,
            mask_queries: Optional[Tensor] = None) -> PixelData:
        """Panoptic segmentation in mmdet's encoding.

        Args:
            mask_cls (Tensor): Class logits, shape (Q, K).
            mask_pred (Tensor): Mask logits, shape (Q, h, w), or (n, h, w),
                see :meth:`panoptic_inference`.
            mask_queries (Tensor, optional): Query of each row of
                ``mask_pred``; None when it has all Q.

        Returns:
            :obj:`PixelData`: ``sem_seg`` (1, h, w) int32, see
            :meth:`encode_panoptic`.
        """
        panoptic_seg, segments_info = self.panoptic_inference(
            mask_cls, mask_pred, mask_queries)
        return PixelData(
            sem_seg=self.encode_panoptic(panoptic_seg, segments_info)[None])

    def instance_topk(self, mask_cls: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        """Sorted top-``max_per_image`` (query, class) pairs of all Q x C.

        Scores are sigmoids of the first ``num_classes`` logits. This is the
        data-independent part of :meth:`instance_postprocess`.

        Args:
            mask_cls (Tensor): Class logits, shape (Q, K).

        Returns:
            tuple: ``scores`` (k,), ``labels`` (k,) and ``query_indices``
            (k,), best first.
        """
        cls_scores = mask_cls[:, :self.num_classes].sigmoid()
        num_top = min(
            self._cfg('max_per_image'), mask_cls.shape[0] * self.num_classes)
        scores, flat_indices = cls_scores.flatten().topk(num_top, sorted=True)
        labels = flat_indices % self.num_classes
        query_indices = flat_indices // self.num_classes
        return scores, labels, query_indices

    def instance_postprocess(
            self,
            mask_cls: Tensor,
            mask_pred: Tensor,
            mask_box: Tensor,
            mask_queries: Optional[Tensor] = None) -> InstanceData:
        """Top-k (query, class) pairs with predicted boxes and binary masks.

        Scores are sigmoids of the first ``num_classes`` logits, ranked over
        all Q x C pairs with a sorted top-k; pairs of stuff classes are then
        dropped. Unless ``focus_on_box``, a score is multiplied by the mean
        mask probability inside the mask (logit > 0).

        Args:
            mask_cls (Tensor): Class logits, shape (Q, K).
            mask_pred (Tensor): Mask logits, shape (Q, h, w), or (n, h, w)
                for the queries ``mask_queries`` only.
            mask_box (Tensor): Boxes xyxy in output pixels, shape (Q, 4).
            mask_queries (Tensor, optional): Sorted query of each row of
                ``mask_pred`` (it must hold every query of a top-k thing
                pair, see :meth:`needed_queries`); None when it has all Q.

        Returns:
            :obj:`InstanceData`: ``bboxes`` (N, 4), ``labels`` (N,),
            ``scores`` (N,), ``masks`` (N, h, w) bool and ``query_indices``
            (N,), the query of each detection.
        """
        scores, labels, query_indices = self.instance_topk(mask_cls)
        is_thing = labels < self.num_things_classes
        scores = scores[is_thing]
        labels = labels[is_thing]
        query_indices = query_indices[is_thing]

        rows = query_indices if mask_queries is None else \
            torch.searchsorted(mask_queries, query_indices)
        # Only the masks of the detections are binarised and scored (the
        # official code selects them first too), each query once.
        unique_rows, inverse = rows.unique(return_inverse=True)
        binary, quality = self.binary_masks(mask_pred, unique_rows,
                                            not self._cfg('focus_on_box'))
        if quality is not None:
            scores = scores * quality[inverse]
        if not _is_range(inverse, len(binary)):
            binary = binary[inverse]

        results = InstanceData()
        results.bboxes = mask2bbox(binary) if self._cfg(
            'box_from_mask') else mask_box[query_indices]
        results.labels = labels
        results.scores = scores
        results.masks = binary
        results.query_indices = query_indices
        return results

    @staticmethod
    def binary_masks(logits: Tensor, rows: Tensor,
                     with_quality: bool) -> Tuple[Tensor, Optional[Tensor]]:
        """Binary masks ``logits[rows] > 0`` and, if ``with_quality``, the
        mean mask probability inside each of them.

        One mask at a time, the probabilities and 0/1 weights in two reused
        buffers: a selected copy of the logits and full-size temporaries of
        all masks (430 MB each for 100 masks at 800 x 1333) are page-faulted
        anew per image.

        Args:
            logits (Tensor): Mask logits, shape (N, h, w); not modified.
            rows (Tensor): Selected rows, shape (n,).
            with_quality (bool): Compute the mean probabilities.

        Returns:
            tuple: Binary masks, shape (n, h, w), bool, and the mean
            probabilities, shape (n,) (None without ``with_quality``).
        """
        binary = logits.new_empty((len(rows), *logits.shape[1:]),
                                  dtype=torch.bool)
        probs = logits.new_empty(logits.shape[1:])
        # float 0/1 weights: summing floats is far faster than bools
        weights = torch.empty_like(probs)
        quality = []
        for j, row in enumerate(rows.tolist()):
            torch.gt(logits[row], 0, out=binary[j])
            if with_quality:
                torch.sigmoid(logits[row], out=probs)
                weight = weights.copy_(binary[j])
                quality.append(
                    probs.mul_(weight).sum() / (weight.sum() + 1e-6))
        if not with_quality:
            return binary, None
        return binary, torch.stack(quality) if quality else \
            logits.new_zeros(0)

    def needed_queries(self, mask_cls: Tensor) -> Tensor:
        """Sorted queries whose full-resolution masks the instance and
        panoptic results read: the queries of the top-k thing pairs and the
        kept panoptic queries.

        Only these masks are upsampled and kept: the results are the same
        (bilinear resizing treats every mask separately) for a fraction of
        the time and memory; the official code resizes all Q masks first.

        Args:
            mask_cls (Tensor): Class logits, shape (Q, K).

        Returns:
            Tensor: Query indices, shape (n,).
        """
        queries = [mask_cls.new_zeros(0, dtype=torch.long)]
        if self._cfg('instance_on'):
            _, labels, query_indices = self.instance_topk(mask_cls)
            queries.append(query_indices[labels < self.num_things_classes])
        if self._cfg('panoptic_on'):
            queries.append(self.panoptic_queries(mask_cls))
        return torch.cat(queries).unique()

    def resize_masks(self,
                     masks: Tensor,
                     input_shape: Sequence[int],
                     img_shape: Sequence[int],
                     out_shape: Sequence[int],
                     crop: bool,
                     out: Optional[Tensor] = None) -> Tensor:
        """Mask logits at 1/4 resolution to the padded input, then, if
        ``crop``, cropped to ``img_shape`` and resized to ``out_shape``.

        Args:
            masks (Tensor): Shape (n, h4, w4).
            input_shape (Sequence[int]): Padded ``(H_pad, W_pad)``.
            img_shape (Sequence[int]): Unpadded ``(h_img, w_img)``.
            out_shape (Sequence[int]): Output ``(H0, W0)``.
            crop (bool): Crop and resize to the output size.
            out (Tensor, optional): Contiguous buffer of shape
                (n, H_pad, W_pad) that receives the upsampled masks (the
                same bilinear kernel as ``F.interpolate``).

        Returns:
            Tensor: Shape (n, H0, W0) if ``crop`` else (n, H_pad, W_pad).
        """
        if len(masks) == 0:
            return masks.new_zeros((0, *(out_shape if crop else input_shape)))
        if out is None:
            masks = F.interpolate(
                masks[None],
                size=input_shape,
                mode='bilinear',
                align_corners=False)[0]
        else:
            masks = torch.ops.aten.upsample_bilinear2d.out(
                masks[None],
                list(input_shape),
                False,
                None,
                None,
                out=out[None])[0]
        return self.crop_and_resize(masks, img_shape,
                                    out_shape) if crop else masks

    def semantic_postprocess(
            self,
            mask_cls: Tensor,
            mask_pred: Tensor,
            input_shape: Sequence[int],
            img_shape: Sequence[int],
            out_shape: Sequence[int],
            keep: Optional[Tensor] = None
    ) -> Tuple[PixelData, Optional[Tensor]]:
        """Semantic map at the output size from 1/4-resolution mask logits.

        :meth:`semantic_inference` accumulated over chunks of
        ``SEMANTIC_CHUNK`` queries, so that at most one chunk of
        full-resolution masks is alive (the official code holds all Q). The
        map is computed at the output size when :attr:`resize_first` and
        the output size is not the unpadded input size, else at the padded
        size and then cropped (and resized).

        Args:
            mask_cls (Tensor): Class logits, shape (Q, K).
            mask_pred (Tensor): Mask logits, shape (Q, h4, w4).
            input_shape, img_shape, out_shape (Sequence[int]): See
                :meth:`resize_masks`.
            keep (Tensor, optional): Sorted queries whose resized mask logits
                are returned too (for instance and panoptic results; needs
                :attr:`resize_first`).

        Returns:
            tuple: :obj:`PixelData` with ``sem_seg`` (1, H0, W0) and
            ``seg_logits`` (C, H0, W0), and the mask logits of ``keep``
            (n, H0, W0) (None without ``keep``).
        """
        assert keep is None or self.resize_first
        # Cropping commutes with the per-pixel product, so when the output
        # is the unpadded input itself the map is computed on the padded
        # masks and cropped once: no copy of every mask to the cropped size.
        resize_first = self.resize_first and not self.crop_is_output(
            img_shape, out_shape)
        class_probs = self._semantic_class_probs(mask_cls)
        # One buffer for every chunk's upsampled masks: a fresh tensor of
        # this size costs a page fault per page on each allocation.
        upsampled = mask_pred.new_empty((min(len(mask_pred),
                                             SEMANTIC_CHUNK), *input_shape))
        kept = None if keep is None else mask_pred.new_empty(
            (len(keep), *out_shape[:2]))
        seg_logits = None
        for start in range(0, len(mask_pred), SEMANTIC_CHUNK):
            rows = slice(start, start + SEMANTIC_CHUNK)
            chunk = mask_pred[rows]
            masks = self.resize_masks(chunk, input_shape, img_shape, out_shape,
                                      resize_first, upsampled[:len(chunk)])
            if keep is not None:
                # without resize_first the crop is the output: a view
                self._copy_kept(
                    masks if resize_first else self.crop_and_resize(
                        masks, img_shape, out_shape), keep, start, kept)
            size = masks.shape[-2:]
            probs = masks.sigmoid_().flatten(1)  # (n, h * w), in place
            # pixel-major (h * w, C): the argmax over classes then reads
            # contiguous rows, several times faster than across planes
            if seg_logits is None:
                seg_logits = probs.t() @ class_probs[rows]
            else:
                seg_logits.addmm_(probs.t(), class_probs[rows])
            del masks, probs
        seg_logits = seg_logits.t().view(-1, *size)  # (C, h, w) view
        if not resize_first:
            seg_logits = self.crop_and_resize(seg_logits, img_shape, out_shape)
        return self._to_sem_results(seg_logits), kept

    @staticmethod
    def _copy_kept(masks: Tensor, keep: Tensor, start: int,
                   kept: Tensor) -> None:
        """Copy the rows of ``keep`` that lie in a chunk of queries into
        their rows of ``kept``.

        Written in place: collecting the chunks' selections and
        concatenating them copies every kept mask twice into fresh memory.

        Args:
            masks (Tensor): Output-size mask logits of queries ``start ..
                start + c - 1``, shape (c, H0, W0), possibly a cropped view.
            keep (Tensor): Sorted kept queries, shape (n,).
            start (int): Query of the chunk's first row.
            kept (Tensor): Kept mask logits, shape (n, H0, W0).
        """
        first, end = torch.searchsorted(
            keep, keep.new_tensor([start, start + len(masks)])).tolist()
        torch.index_select(
            masks, 0, keep[first:end] - start, out=kept[first:end])

    @property
    def resize_first(self) -> bool:
        """Whether mask logits are cropped and resized to the output size
        before inference (``sem_seg_postprocess_before_inference``,
        ``instance_on`` or ``panoptic_on``)."""
        return bool(
            self._cfg('instance_on') or self._cfg('panoptic_on')
            or self._cfg('sem_seg_postprocess_before_inference'))

    @staticmethod
    def rescale_boxes(mask_box: Tensor, batch_input_shape: Sequence[int],
                      img_shape: Sequence[int],
                      out_shape: Sequence[int]) -> Tensor:
        """Normalised cxcywh boxes (relative to the padded input) to xyxy
        pixels of the output size, without clipping.

        The scale is ``W_pad / w_img * W0`` (and likewise for y), computed in
        Python floats as the official code does.

        Args:
            mask_box (Tensor): Boxes, shape (Q, 4).
            batch_input_shape (Sequence[int]): Padded ``(H_pad, W_pad)``.
            img_shape (Sequence[int]): Unpadded ``(h_img, w_img)``.
            out_shape (Sequence[int]): Output ``(H0, W0)``.

        Returns:
            Tensor: Boxes, shape (Q, 4).
        """
        scale_h = batch_input_shape[0] / img_shape[0] * out_shape[0]
        scale_w = batch_input_shape[1] / img_shape[1] * out_shape[1]
        scale = mask_box.new_tensor([scale_w, scale_h, scale_w, scale_h])
        return bbox_cxcywh_to_xyxy(mask_box) * scale

    def predict(self,
                mask_cls: Tensor,
                mask_pred: Tensor,
                mask_box: Tensor,
                batch_img_metas: Sequence[Union[dict, object]],
                rescale: bool = True,
                **kwargs) -> List[dict]:
        """Post-process a batch of decoder outputs.

        Args:
            mask_cls (Tensor): Class logits, shape (bs, Q, K).
            mask_pred (Tensor): Mask logits at 1/4 of the padded input,
                shape (bs, Q, h4, w4).
            mask_box (Tensor): Normalised cxcywh boxes relative to the padded
                input, shape (bs, Q, 4).
            batch_img_metas (Sequence[dict | DetDataSample]): Per-image metas
                (or data samples, whose ``metainfo`` is used) with
                ``batch_input_shape``, ``img_shape`` and ``ori_shape``.
            rescale (bool): Output at ``ori_shape`` if True, else at
                ``img_shape``.

        Returns:
            List[dict]: Per image, the keys enabled in ``test_cfg``:
            ``ins_results`` (:obj:`InstanceData`, see
            :meth:`instance_postprocess`), ``pan_results`` (:obj:`PixelData`,
            see :meth:`panoptic_postprocess`) and ``sem_results``
            (:obj:`PixelData`: ``sem_seg`` (1, H0, W0) labels and
            ``seg_logits`` (C, H0, W0), see :meth:`semantic_inference`), all at
            the output size.
        """
        metas = [getattr(m, 'metainfo', m) for m in batch_img_metas]
        input_shape = tuple(metas[0]['batch_input_shape'][:2])
        results = []
        for cls_i, masks_i, boxes_i, meta in zip(mask_cls, mask_pred, mask_box,
                                                 metas):
            img_shape = meta['img_shape'][:2]
            out_shape = meta['ori_shape'][:2] if rescale else img_shape
            result = dict()
            queries = self.needed_queries(cls_i)
            if self._cfg('semantic_on'):
                result['sem_results'], needed_masks = \
                    self.semantic_postprocess(
                        cls_i, masks_i, input_shape, img_shape, out_shape,
                        queries if self.resize_first else None)
            else:
                needed_masks = self.resize_masks(masks_i[queries], input_shape,
                                                 img_shape, out_shape, True)
            if self._cfg('panoptic_on'):
                result['pan_results'] = self.panoptic_postprocess(
                    cls_i, needed_masks, queries)
            if self._cfg('instance_on'):
                boxes_i = self.rescale_boxes(boxes_i,
                                             meta['batch_input_shape'],
                                             img_shape, out_shape)
                result['ins_results'] = self.instance_postprocess(
                    cls_i, needed_masks, boxes_i, queries)
            results.append(result)
        return results
