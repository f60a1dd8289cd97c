# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
"""Resizing as the official Mask DINO training mappers resize.

detectron2's ``ResizeTransform`` resizes uint8 images with Pillow (bilinear,
antialiased when shrinking) and label maps with a nearest kernel that depends
on their dtype: Pillow's for the uint8 panoptic PNG, ``torch``'s legacy
nearest (``floor(i * in / out)``, OpenCV's kernel too) for the ADE20K label
map, which the official semantic mapper turns into float64 first.
MMDetection's ``Resize`` uses one backend for both, so :class:`PillowResize`
adds ``seg_backend``; :class:`ResizeScale` (detectron2's large-scale
jittering) and :class:`PillowResizeShortestEdge` build on it.
"""
from typing import Optional, Tuple

import mmcv
import numpy as np
from mmcv.transforms.utils import cache_randomness
from mmdet.datasets.transforms import Resize, ResizeShortestEdge
from mmdet.registry import TRANSFORMS


@TRANSFORMS.register_module()
class PillowResize(Resize):
    """MMDetection's ``Resize`` with uint8 images resized by Pillow.

    Args:
        seg_backend (str): Backend of the nearest-neighbour resize of
            ``gt_seg_map``: ``'cv2'`` (``floor(i * in / out)``, the official
            semantic mapper's kernel) or ``'pillow'`` (pixel-centre
            sampling, the official panoptic mapper's kernel on its uint8 PNG).
        **kwargs: ``Resize`` arguments (``backend`` is always ``'pillow'``).
    """

    def __init__(self, seg_backend: str = 'cv2', **kwargs) -> None:
        kwargs['backend'] = 'pillow'
        super().__init__(**kwargs)
        self.seg_backend = seg_backend

    def _resize_seg(self, results: dict) -> None:
        """Resize ``gt_seg_map`` to ``results['scale']`` with
        ``seg_backend``."""
        if results.get('gt_seg_map', None) is not None:
            results['gt_seg_map'] = mmcv.imresize(
                results['gt_seg_map'],
                results['img_shape'][::-1],
                interpolation='nearest',
                backend=self.seg_backend)


@TRANSFORMS.register_module()
class ResizeScale(PillowResize):
    """Large-scale jittering: detectron2's ``ResizeScale``.

    A scale ``s ~ U[min_scale, max_scale)`` gives the factor
    ``f = min(s * H_t / H, s * W_t / W)`` for the target ``(H_t, W_t)``
    (no rounding of ``s * H_t``); the image becomes
    ``(round(H f), round(W f))`` with NumPy's rounding (half to even), and
    coordinates scale by the ratio of the integer sizes. Official:
    ``detectron2/data/transforms/augmentation_impl.py``, ``ResizeScale``.

    Args:
        min_scale (float): Lower bound of ``s``.
        max_scale (float): Upper bound of ``s``.
        target_size (tuple[int, int]): ``(H_t, W_t)``.
        seg_backend (str): See :class:`PillowResize`.
    """

    def __init__(self,
                 min_scale: float,
                 max_scale: float,
                 target_size: Tuple[int, int],
                 seg_backend: str = 'pillow') -> None:
        super().__init__(
            seg_backend=seg_backend, scale=target_size[::-1], keep_ratio=False)
        self.min_scale = min_scale
        self.max_scale = max_scale
        self.target_size = target_size

    @cache_randomness
    def _sample_scale(self) -> float:
        """The jitter ``s``."""
        return np.random.uniform(self.min_scale, self.max_scale)

    def output_size(self, height: int, width: int,
                    scale: float) -> Tuple[int, int]:
        """``(H', W')`` of an ``(height, width)`` image at jitter ``scale``."""
        target_h, target_w = self.target_size
        factor = min(scale * target_h / height, scale * target_w / width)
        return (int(np.round(height * factor)), int(np.round(width * factor)))

    def transform(self, results: dict) -> dict:
        """Resize image, boxes, masks and ``gt_seg_map`` by a random jitter."""
        h, w = results['img'].shape[:2]
        new_h, new_w = self.output_size(h, w, self._sample_scale())
        self.scale = (new_w, new_h)  # read by Resize.transform
        return super().transform(results)

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(min_scale={self.min_scale}, '
                f'max_scale={self.max_scale}, '
                f'target_size={self.target_size}, '
                f'seg_backend={self.seg_backend})')


@TRANSFORMS.register_module()
class PillowResizeShortestEdge(ResizeShortestEdge):
    """MMDetection's ``ResizeShortestEdge`` (detectron2's rounding) through
    :class:`PillowResize`, so that ``RandomChoiceResize`` can pick its scale
    (``resize_type='PillowResizeShortestEdge'``).

    Args:
        scale (int): Target short edge.
        max_size (int, optional): Bound of the long edge.
        seg_backend (str): See :class:`PillowResize`.
    """

    def __init__(self,
                 scale: int,
                 max_size: Optional[int] = None,
                 seg_backend: str = 'cv2') -> None:
        super().__init__(
            scale,
            max_size=max_size,
            resize_type='PillowResize',
            seg_backend=seg_backend)
