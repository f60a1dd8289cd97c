# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
"""ONNX export of Mask DINO and NumPy / ONNX Runtime inference.

Needs the ``onnx`` and ``onnxruntime`` packages (``requirements/tests.txt``);
:mod:`mmmaskdino` itself does not import this package.
"""
from .export import (METADATA_KEY, OUTPUT_NAMES, TOPK_OUTPUT_NAMES,
                     MaskDINOOnnxModel, build_detector, export_onnx)
from .onnx_runtime import OnnxMaskDINO, results_to_data_sample
from .postprocess import NumpyPostProcessor, resize_bilinear

__all__ = [
    'METADATA_KEY', 'OUTPUT_NAMES', 'TOPK_OUTPUT_NAMES', 'MaskDINOOnnxModel',
    'build_detector', 'export_onnx', 'OnnxMaskDINO', 'results_to_data_sample',
    'NumpyPostProcessor', 'resize_bilinear'
]
