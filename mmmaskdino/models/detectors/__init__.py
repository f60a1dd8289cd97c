# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
from .maskdino import MaskDINO

__all__ = ['MaskDINO']
