# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
from .maskdino_head import MaskDINOHead

__all__ = ['MaskDINOHead']
