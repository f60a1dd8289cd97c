# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
from .maskdino_loss import MaskDINOLoss

__all__ = ['MaskDINOLoss']
