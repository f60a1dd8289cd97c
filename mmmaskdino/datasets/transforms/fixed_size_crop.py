# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
"""detectron2's ``FixedSizeCrop`` offset: one draw for both axes."""
from typing import Tuple

import numpy as np
from mmcv.transforms.utils import cache_randomness
from mmdet.datasets.transforms import RandomCrop
from mmdet.registry import TRANSFORMS


@TRANSFORMS.register_module()
class FixedSizeCrop(RandomCrop):
    """MMDetection's ``RandomCrop`` (absolute size) with the official offset.

    detectron2's ``FixedSizeCrop`` draws one ``u ~ U[0, 1)`` and crops at
    ``round(u * max_offset)`` on both axes (NumPy rounding), so the two
    offsets are proportional; ``RandomCrop`` draws them independently.
    Padding to the full size is a separate step (MMDetection's ``Pad``, with
    the official pad values). Official:
    ``detectron2/data/transforms/augmentation_impl.py``, ``FixedSizeCrop``.

    Args:
        crop_size (tuple[int, int]): ``(w, h)`` of the crop window.
        **kwargs: Further ``RandomCrop`` arguments (``recompute_bbox``,
            ``allow_negative_crop``, ``bbox_clip_border``).
    """

    def __init__(self, crop_size: Tuple[int, int], **kwargs) -> None:
        super().__init__(crop_size=crop_size, crop_type='absolute', **kwargs)

    @cache_randomness
    def _sample_offset_fraction(self) -> float:
        """The one draw ``u`` of both offsets."""
        return np.random.uniform(0.0, 1.0)

    def _rand_offset(self, margin: Tuple[int, int]) -> Tuple[int, int]:
        """``(offset_h, offset_w) = round(u * (margin_h, margin_w))``; ``u``
        is drawn even when nothing can be cropped, as officially."""
        fraction = self._sample_offset_fraction()
        offset_h, offset_w = np.round(np.multiply(margin, fraction))
        return int(offset_h), int(offset_w)
