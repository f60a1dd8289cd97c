# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
from .color_aug_ssd import ColorAugSSD
from .fixed_size_crop import FixedSizeCrop
from .loading import LoadPanopticPNG
from .panoptic_targets import PanopticTargets
from .resize import PillowResize, PillowResizeShortestEdge, ResizeScale

__all__ = [
    'ColorAugSSD', 'FixedSizeCrop', 'LoadPanopticPNG', 'PanopticTargets',
    'PillowResize', 'PillowResizeShortestEdge', 'ResizeScale'
]
