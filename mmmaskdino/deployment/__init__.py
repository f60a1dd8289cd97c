# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
"""ONNX export of Mask DINO and ONNX Runtime inference.

Needs the ``onnx`` and ``onnxruntime`` packages (``requirements/tests.txt``);
:mod:`mmmaskdino` itself does not import this package.
"""
from .export import METADATA_KEY, OUTPUT_NAMES, export_onnx, init_export_model
from .onnx_runtime import OnnxMaskDINO

__all__ = [
    'METADATA_KEY', 'OUTPUT_NAMES', 'export_onnx', 'init_export_model',
    'OnnxMaskDINO'
]
