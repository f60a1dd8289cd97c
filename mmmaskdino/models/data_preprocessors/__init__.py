# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
from .maskdino_data_preprocessor import MaskDINODataPreprocessor

__all__ = ['MaskDINODataPreprocessor']
