# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
from .denoising import MaskDINODenoising
from .maskdino_decoder import MaskDINODecoder

__all__ = ['MaskDINODenoising', 'MaskDINODecoder']
