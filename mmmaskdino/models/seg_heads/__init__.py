# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
from .maskdino_fusion_head import MaskDINOFusionHead

__all__ = ['MaskDINOFusionHead']
