# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
"""Inference API: ``init_maskdino`` and batch/video helpers.

Import it explicitly (``from mmmaskdino.apis import init_maskdino``); the
package root does not import it.
"""
from .inference import (DEFAULT_SCORE_THR, TASK_FLAGS, MaskDINOInferencer,
                        dataset_meta_from_config, inference_on_folder,
                        inference_on_video, init_maskdino)
from .model_zoo import get_model_info, list_models, resolve_model

__all__ = [
    'DEFAULT_SCORE_THR', 'TASK_FLAGS', 'MaskDINOInferencer',
    'dataset_meta_from_config', 'get_model_info', 'inference_on_folder',
    'inference_on_video', 'init_maskdino', 'list_models', 'resolve_model'
]
