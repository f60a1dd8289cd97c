# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
from .maskdino_encoder import MaskDINOEncoder

__all__ = ['MaskDINOEncoder']
