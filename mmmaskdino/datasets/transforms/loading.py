# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
"""Loading of COCO panoptic PNGs for the official panoptic training targets."""
import mmcv
from mmcv.transforms import BaseTransform
from mmdet.registry import TRANSFORMS
from mmengine.fileio import get


@TRANSFORMS.register_module()
class LoadPanopticPNG(BaseTransform):
    """Load a COCO panoptic PNG as it is, RGB uint8, into ``gt_seg_map``.

    The official panoptic mapper flips, resizes (Pillow nearest), crops and
    pads (with 255) the RGB PNG together with the image and reads the
    segment ids ``R + 256 G + 256^2 B`` only afterwards;
    :class:`PanopticTargets` does that last step. MMDetection's
    ``LoadPanopticAnnotations`` instead builds one bitmap per thing and a
    semantic map at the original size, which the resize then samples with
    another kernel, and drops segments (and whole stuff classes) the crop
    removes. Official: ``maskdino/data/dataset_mappers/
    coco_panoptic_new_baseline_dataset_mapper.py``, ``__call__``.

    Required keys: ``seg_map_path``. Added keys: ``gt_seg_map``
    ``(h, w, 3)`` uint8.
    """

    def __init__(self, backend_args: dict = None) -> None:
        self.backend_args = backend_args

    def transform(self, results: dict) -> dict:
        """Read ``results['seg_map_path']``."""
        img_bytes = get(
            results['seg_map_path'], backend_args=self.backend_args)
        results['gt_seg_map'] = mmcv.imfrombytes(
            img_bytes, flag='color', channel_order='rgb', backend='pillow')
        return results
