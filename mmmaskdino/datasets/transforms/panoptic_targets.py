# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
"""The official panoptic training targets, from the transformed PNG."""
import numpy as np
from mmcv.transforms import BaseTransform
from mmdet.registry import TRANSFORMS
from mmdet.structures.bbox import HorizontalBoxes
from mmdet.structures.mask import BitmapMasks


@TRANSFORMS.register_module()
class PanopticTargets(BaseTransform):
    """One target per non-crowd segment, things and stuff alike.

    After the geometric transforms, the segment ids of the RGB PNG in
    ``gt_seg_map`` (:class:`LoadPanopticPNG`) are read as
    ``R + 256 G + 256^2 B``; every segment of ``segments_info`` that is not a
    crowd becomes a target, in ``segments_info`` order: its class, its mask
    ``ids == segment id`` and the mask's box ``(x_min, y_min, x_max + 1,
    y_max + 1)``. A segment that the crop or the resize removed stays, with
    an empty mask and box ``(0, 0, 0, 0)``; it still takes part in matching
    and in the mask normaliser, as officially. Official:
    ``maskdino/data/dataset_mappers/
    coco_panoptic_new_baseline_dataset_mapper.py``, ``__call__``.

    Crowd segments are the thing segments that MMDetection's
    ``CocoPanopticDataset`` marks ``is_thing=False``; telling them from stuff
    needs the thing classes, which the dataset adds as ``text`` with
    ``return_classes=True``.

    Required keys: ``gt_seg_map`` ``(h, w, 3)``, ``segments_info``, ``text``.
    Added keys: ``gt_masks``, ``gt_bboxes``, ``gt_bboxes_labels``,
    ``gt_ignore_flags``. Removed keys: ``gt_seg_map``.
    """

    def transform(self, results: dict) -> dict:
        """Turn the transformed PNG into instance targets."""
        if 'text' not in results:
            raise KeyError('PanopticTargets needs the thing classes: set '
                           '`return_classes=True` on the CocoPanopticDataset')
        rgb = results.pop('gt_seg_map').astype(np.int64)
        ids = rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]
        num_things = len(results['text'])
        segments = [
            s for s in results['segments_info']
            if s['is_thing'] or s['category'] >= num_things
        ]
        masks = np.stack([ids == s['id'] for s in segments]) if segments \
            else np.zeros((0, *ids.shape), bool)
        results['gt_masks'] = BitmapMasks(masks.astype(np.uint8), *ids.shape)
        results['gt_bboxes'] = HorizontalBoxes(
            np.stack([self._mask_box(m)
                      for m in masks]) if segments else np.zeros((
                          0, 4), np.float32))
        results['gt_bboxes_labels'] = np.array(
            [s['category'] for s in segments], dtype=np.int64)
        results['gt_ignore_flags'] = np.zeros(len(segments), dtype=bool)
        return results

    @staticmethod
    def _mask_box(mask: np.ndarray) -> np.ndarray:
        """``(x_min, y_min, x_max + 1, y_max + 1)`` of a mask, zeros if it
        is empty (detectron2's ``BitMasks.get_bounding_boxes``)."""
        ys, xs = np.nonzero(mask)
        if len(xs) == 0:
            return np.zeros(4, np.float32)
        return np.array(
            [xs.min(), ys.min(),
             xs.max() + 1, ys.max() + 1], dtype=np.float32)
