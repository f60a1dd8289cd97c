# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
"""Importing the subpackages registers the Mask DINO modules."""
from . import (data_preprocessors, dense_heads, detectors, layers, losses,
               necks, seg_heads, task_modules)

__all__ = [
    'data_preprocessors', 'dense_heads', 'detectors', 'layers', 'losses',
    'necks', 'seg_heads', 'task_modules'
]
