# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
"""SSD-style colour augmentation of the official semantic recipe."""
import random
from typing import Optional

import cv2
import numpy as np
from mmcv.transforms import BaseTransform
from mmcv.transforms.utils import cache_randomness
from mmdet.registry import TRANSFORMS


@TRANSFORMS.register_module()
class ColorAugSSD(BaseTransform):
    """PointRend's ``ColorAugSSDTransform``, used by the official ADE20K and
    Cityscapes semantic configs (``INPUT.COLOR_AUG_SSD``).

    On a BGR uint8 image (MMDetection's loading order; the official code
    reverses its RGB image to BGR first): a brightness step
    ``+ U(-delta, delta)``, then in random order contrast, saturation and hue
    (``contrast, saturation, hue`` or ``saturation, hue, contrast``), each
    applied with probability 0.5. Every step ends in ``uint8`` (clipped to
    0..255, truncated). Saturation scales S and hue shifts H on OpenCV's
    HSV (H in 0..179, shifted modulo 180). MMDetection's
    ``PhotoMetricDistortion`` differs: a hue scale of 0..360, no uint8
    rounding between steps, and a random channel swap. Official:
    ``projects/PointRend/point_rend/color_augmentation.py``.

    Required keys: ``img`` (uint8). Modified keys: ``img``.

    Args:
        brightness_delta (int): Brightness shift bound.
        contrast_low (float), contrast_high (float): Contrast factor range.
        saturation_low (float), saturation_high (float): Saturation range.
        hue_delta (int): Hue shift bound (inclusive), on the 0..179 scale.
    """

    def __init__(self,
                 brightness_delta: int = 32,
                 contrast_low: float = 0.5,
                 contrast_high: float = 1.5,
                 saturation_low: float = 0.5,
                 saturation_high: float = 1.5,
                 hue_delta: int = 18) -> None:
        self.brightness_delta = brightness_delta
        self.contrast_range = (contrast_low, contrast_high)
        self.saturation_range = (saturation_low, saturation_high)
        self.hue_delta = hue_delta

    @cache_randomness
    def _sample_params(self) -> dict:
        """The decisions, drawn in the official order: brightness coin
        (and value), order coin, then each step's coin (and value).

        Returns:
            dict: ``brightness``, ``contrast``, ``saturation`` (float or
            None = skipped), ``hue`` (int or None) and ``contrast_first``.
        """

        def maybe(draw) -> Optional[float]:
            return draw() if random.randrange(2) else None

        params = dict(
            brightness=maybe(lambda: random.uniform(-self.brightness_delta,
                                                    self.brightness_delta)))
        params['contrast_first'] = bool(random.randrange(2))
        contrast = ('contrast', lambda: random.uniform(*self.contrast_range))
        others = [
            ('saturation', lambda: random.uniform(*self.saturation_range)),
            ('hue', lambda: random.randint(-self.hue_delta, self.hue_delta))
        ]
        order = [contrast, *others
                 ] if params['contrast_first'] else [*others, contrast]
        for name, draw in order:
            params[name] = maybe(draw)
        return params

    @staticmethod
    def _convert(img: np.ndarray,
                 alpha: float = 1.0,
                 beta: float = 0.0) -> np.ndarray:
        """``uint8(clip(float32(img) * alpha + beta, 0, 255))``."""
        return np.clip(img.astype(np.float32) * alpha + beta, 0,
                       255).astype(np.uint8)

    def _saturation(self, img: np.ndarray, alpha: float) -> np.ndarray:
        hsv = cv2.cvtColor(img, cv2.COLOR_BGR2HSV)
        hsv[:, :, 1] = self._convert(hsv[:, :, 1], alpha=alpha)
        return cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)

    @staticmethod
    def _hue(img: np.ndarray, delta: int) -> np.ndarray:
        hsv = cv2.cvtColor(img, cv2.COLOR_BGR2HSV)
        hsv[:, :, 0] = (hsv[:, :, 0].astype(int) + delta) % 180
        return cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)

    def transform(self, results: dict) -> dict:
        """Apply the sampled colour steps to ``results['img']``."""
        img = results['img']
        if img.dtype != np.uint8:
            raise TypeError('ColorAugSSD works on uint8 images (load them '
                            f'without to_float32), got {img.dtype}')
        params = self._sample_params()
        steps = dict(
            contrast=lambda x, v: self._convert(x, alpha=v),
            saturation=self._saturation,
            hue=self._hue)
        order = (['contrast', 'saturation', 'hue'] if params['contrast_first']
                 else ['saturation', 'hue', 'contrast'])
        if params['brightness'] is not None:
            img = self._convert(img, beta=params['brightness'])
        for name in order:
            if params[name] is not None:
                img = steps[name](img, params[name])
        results['img'] = img
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(brightness_delta='
                f'{self.brightness_delta}, contrast_range='
                f'{self.contrast_range}, saturation_range='
                f'{self.saturation_range}, hue_delta={self.hue_delta})')
