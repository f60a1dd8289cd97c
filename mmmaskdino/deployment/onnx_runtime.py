# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
"""Run an exported Mask DINO with ONNX Runtime; pre- and post-processing in
NumPy.

Pre-processing mirrors the config: its test pipeline (loading and resizing,
NumPy transforms of mmcv/mmdet, without ``LoadAnnotations`` and
``PackDetInputs``), then the data preprocessor's channel flip, normalisation
and zero padding to the exported input size (an image larger than that
after resizing is shrunk to fit first). Post-processing is
:class:`NumpyPostProcessor`.
"""
import copy
import json
from typing import Dict, Optional, Tuple, Union

import mmcv
import numpy as np
import onnxruntime as ort
import torch
from mmdet.structures import DetDataSample
from mmengine.config import Config
from mmengine.dataset import Compose
from mmengine.registry import init_default_scope
from mmengine.structures import InstanceData, PixelData

from .export import METADATA_KEY
from .postprocess import NumpyPostProcessor

DROPPED_TRANSFORMS = ('LoadAnnotations', 'PackDetInputs')


def build_numpy_pipeline(cfg: Config) -> Compose:
    """The config's test pipeline up to (not including) the packing, with
    ``LoadImageFromFile`` replaced by ``mmdet.InferencerLoader`` (accepts
    paths and BGR arrays), as :class:`~mmdet.apis.DetInferencer` does."""
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    pipeline = []
    for transform in copy.deepcopy(cfg.test_dataloader.dataset.pipeline):
        if transform['type'] in DROPPED_TRANSFORMS:
            continue
        if transform['type'] == 'LoadImageFromFile':
            transform['type'] = 'mmdet.InferencerLoader'
        pipeline.append(transform)
    return Compose(pipeline)


class OnnxMaskDINO:
    """An exported Mask DINO on ONNX Runtime (CPU provider).

    Args:
        onnx_file (str): File written by ``tools/deployment/export_onnx.py``.
        config (str | Config): The config it was exported from (test
            pipeline, data preprocessor).
        num_threads (int, optional): ONNX Runtime intra-op threads; default
            lets ONNX Runtime choose.
    """

    def __init__(self,
                 onnx_file: str,
                 config: Union[str, Config],
                 num_threads: Optional[int] = None) -> None:
        options = ort.SessionOptions()
        if num_threads:
            options.intra_op_num_threads = num_threads
        self.session = ort.InferenceSession(
            onnx_file, options, providers=['CPUExecutionProvider'])
        self.metadata = json.loads(
            self.session.get_modelmeta().custom_metadata_map[METADATA_KEY])
        self.output_names = [o.name for o in self.session.get_outputs()]
        cfg = Config.fromfile(config) if isinstance(config, str) else config
        self.pipeline = build_numpy_pipeline(cfg)
        preprocessor = cfg.model.data_preprocessor
        self.mean = np.array(preprocessor['mean'], np.float32)
        self.std = np.array(preprocessor['std'], np.float32)
        self.bgr_to_rgb = preprocessor.get('bgr_to_rgb', False)
        self.postprocessor = NumpyPostProcessor(
            self.metadata['num_things_classes'],
            self.metadata['num_stuff_classes'], self.metadata['test_cfg'])

    def _fit_to_graph(self, img: np.ndarray) -> np.ndarray:
        """Shrink (keeping the aspect ratio) an image larger than the
        graph's input; other images are returned as they are."""
        height, width = self.metadata['img_size']
        h, w = img.shape[:2]
        if h <= height and w <= width:
            return img
        return mmcv.imrescale(img, min(height / h, width / w))

    def preprocess(self, image: Union[str, np.ndarray]
                   ) -> Tuple[np.ndarray, Dict[str, tuple]]:
        """Image path or BGR array -> ``(1, 3, H, W)`` input and its meta.

        Returns:
            tuple: the float32 input and a dict with ``ori_shape``,
            ``img_shape`` (after resizing) and ``batch_input_shape``.
        """
        data = self.pipeline(image)
        img = self._fit_to_graph(data['img']).astype(np.float32)
        if self.bgr_to_rgb:
            img = img[..., ::-1]
        img = ((img - self.mean) / self.std).transpose(2, 0, 1)
        h, w = img.shape[-2:]
        pad_h, pad_w = self.metadata['img_size']
        inputs = np.zeros((1, 3, pad_h, pad_w), np.float32)
        inputs[0, :, :h, :w] = img
        meta = dict(
            ori_shape=tuple(data['ori_shape'][:2]),
            img_shape=(h, w),
            batch_input_shape=(pad_h, pad_w))
        return inputs, meta

    def forward(self, inputs: np.ndarray) -> Dict[str, np.ndarray]:
        """Run the graph; returns its outputs by name."""
        outputs = self.session.run(self.output_names, {'input': inputs})
        return dict(zip(self.output_names, outputs))

    def postprocess(self, outputs: Dict[str, np.ndarray], meta: dict,
                    rescale: bool = True) -> dict:
        """:class:`NumpyPostProcessor` on the first image of ``outputs``."""
        topk = None
        if self.metadata['with_topk']:
            topk = (outputs['topk_scores'], outputs['topk_labels'],
                    outputs['topk_queries'])
        return self.postprocessor(
            outputs['cls_logits'][0],
            outputs['mask_logits'][0],
            outputs['boxes'][0],
            meta,
            rescale=rescale,
            topk=topk)

    def __call__(self, image: Union[str, np.ndarray]) -> Tuple[dict, dict]:
        """Pre-process, run and post-process one image.

        Returns:
            tuple: the results (see :meth:`NumpyPostProcessor.__call__`) and
            the image meta.
        """
        inputs, meta = self.preprocess(image)
        return self.postprocess(self.forward(inputs), meta), meta


def results_to_data_sample(results: dict, meta: dict,
                           score_thr: float = 0.0) -> DetDataSample:
    """Wrap NumPy results into a :class:`DetDataSample` for mmdet's
    ``DetLocalVisualizer`` (instances below ``score_thr`` are dropped)."""
    sample = DetDataSample(metainfo=meta)
    if 'instances' in results:
        instances = results['instances']
        keep = instances['scores'] > score_thr
        sample.pred_instances = InstanceData(**{
            key: torch.from_numpy(np.ascontiguousarray(value[keep]))
            for key, value in instances.items()
        })
    if 'panoptic_seg' in results:
        sample.pred_panoptic_seg = PixelData(
            sem_seg=torch.from_numpy(results['panoptic_seg'][None]))
    if 'sem_seg' in results:
        sample.pred_sem_seg = PixelData(
            sem_seg=torch.from_numpy(results['sem_seg'][None]),
            seg_logits=torch.from_numpy(results['seg_logits']))
    return sample

