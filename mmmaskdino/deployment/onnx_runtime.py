# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
"""Run an exported Mask DINO with ONNX Runtime.

ONNX Runtime replaces the network only. Everything around it is the PyTorch
model's own code, built from the config: the test pipeline (with
``mmdet.InferencerLoader``, as :class:`~mmdet.apis.DetInferencer`), the data
preprocessor, mmdet's ``BatchFixedSizePad`` to the graph's fixed input size,
and :meth:`MaskDINOFusionHead.predict` on the graph's outputs. A fix to the
post-processing therefore fixes both runtimes.
"""
import copy
import json
from typing import List, Optional, Sequence, Union

import mmcv
import numpy as np
import onnxruntime as ort
import torch
from mmdet.models.data_preprocessors import BatchFixedSizePad
from mmdet.registry import MODELS, TRANSFORMS
from mmdet.structures import DetDataSample
from mmengine.config import Config
from mmengine.dataset import Compose
from mmengine.registry import init_default_scope

from mmmaskdino.models.detectors.maskdino import MaskDINO, fusion_head_config
from .export import METADATA_KEY, OUTPUT_NAMES

DROPPED_TRANSFORMS = ('LoadAnnotations', )


class OnnxMaskDINO:
    """An exported Mask DINO on ONNX Runtime (CPU provider).

    Args:
        onnx_file (str): File written by ``tools/deployment/export_onnx.py``.
        config (str | Config): The config it was exported from (test
            pipeline, data preprocessor, fusion head); the ``test_cfg``
            stored in the file at export is used.
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
        self.img_size = tuple(self.metadata['img_size'])
        cfg = Config.fromfile(config) if isinstance(config, str) else config
        init_default_scope(cfg.get('default_scope', 'mmdet'))
        self.pipeline, self.pack = self._build_pipeline(cfg)
        self.data_preprocessor = MODELS.build(cfg.model.data_preprocessor)
        self.pad = BatchFixedSizePad(
            size=self.img_size, img_pad_value=self.data_preprocessor.pad_value)
        head_cfg = fusion_head_config(cfg.model.panoptic_head,
                                      cfg.model.panoptic_fusion_head)
        head_cfg.test_cfg = self.metadata['test_cfg']
        self.fusion_head = MODELS.build(head_cfg)
        num_logits = self.fusion_head.num_classes + int(
            self.fusion_head.semantic_ce)
        if num_logits != self.metadata['num_logits']:
            raise ValueError(
                f'{onnx_file} outputs {self.metadata["num_logits"]} class '
                f'logits, but its config gives {num_logits} (classes and '
                'class loss): pass the config the graph was exported from')

    def _build_pipeline(self, cfg: Config) -> tuple:
        """The config's test pipeline before ``PackDetInputs`` (loading
        through ``mmdet.InferencerLoader``, no annotations) and the packer.

        Also notes the backend of the pipeline's ``Resize`` for
        :meth:`_fit_to_graph`.
        """
        transforms, pack = [], None
        self.resize_backend = 'cv2'
        for transform in copy.deepcopy(cfg.test_dataloader.dataset.pipeline):
            kind = transform['type'].split('.')[-1]
            if kind in DROPPED_TRANSFORMS:
                continue
            if kind == 'PackDetInputs':
                pack = transform
                continue
            if kind == 'LoadImageFromFile':
                transform['type'] = 'mmdet.InferencerLoader'
            if 'Resize' in kind:
                self.resize_backend = transform.get('backend', 'cv2')
            transforms.append(transform)
        if pack is None:
            raise ValueError('the test pipeline of the config has no '
                             'PackDetInputs')
        return Compose(transforms), TRANSFORMS.build(pack)

    def _fit_to_graph(self, results: dict) -> dict:
        """Shrink (keeping the aspect ratio) an image larger than the
        graph's input; other images are returned as they are."""
        height, width = self.img_size
        h, w = results['img'].shape[:2]
        if h <= height and w <= width:
            return results
        scale = min(height / h, width / w)
        results['img'] = mmcv.imrescale(
            results['img'], scale, backend=self.resize_backend)
        results['img_shape'] = results['img'].shape[:2]
        if 'scale_factor' in results:
            results['scale_factor'] = tuple(f * scale
                                            for f in results['scale_factor'])
        return results

    def preprocess(self, images: Sequence[Union[str, np.ndarray]]) -> dict:
        """Image paths or BGR arrays -> the graph's input and data samples.

        Returns:
            dict: ``inputs`` ``(n, 3, H, W)`` float tensor at the graph size
            and ``data_samples`` (``img_shape``, ``ori_shape``,
            ``batch_input_shape``, ...), as the data preprocessor gives them
            to the PyTorch model, padded to the graph size.
        """
        packed = [
            self.pack(self._fit_to_graph(self.pipeline(image)))
            for image in images
        ]
        data = self.data_preprocessor(
            dict(
                inputs=[p['inputs'] for p in packed],
                data_samples=[p['data_samples'] for p in packed]))
        inputs, data_samples = self.pad(data['inputs'], data['data_samples'])
        return dict(inputs=inputs, data_samples=data_samples)

    def forward(self, inputs: torch.Tensor) -> List[torch.Tensor]:
        """Run the graph image by image (its batch size is 1).

        Args:
            inputs (Tensor): ``(n, 3, H, W)`` at the graph size.

        Returns:
            list[Tensor]: ``cls_logits (n, Q, K)``, ``mask_logits
            (n, Q, H/4, W/4)``, ``boxes (n, Q, 4)``.
        """
        outputs = [
            self.session.run(
                list(OUTPUT_NAMES), {'input': image[None].numpy()})
            for image in inputs
        ]
        return [
            torch.from_numpy(np.concatenate(parts)) for parts in zip(*outputs)
        ]

    def __call__(self,
                 images: Union[str, np.ndarray, Sequence],
                 rescale: bool = True) -> List[DetDataSample]:
        """Pre-process, run and post-process images.

        Args:
            images (str | np.ndarray | Sequence): One image (path or BGR
                array) or several.
            rescale (bool): Results at the original image size.

        Returns:
            list[DetDataSample]: One per image, with the ``pred_*`` fields of
            the exported task, exactly as the PyTorch model returns them.
        """
        if isinstance(images, (str, np.ndarray)):
            images = [images]
        data = self.preprocess(images)
        with torch.no_grad():
            results = self.fusion_head.predict(
                *self.forward(data['inputs']),
                data['data_samples'],
                rescale=rescale)
        return MaskDINO.add_pred_to_datasample(data['data_samples'], results)
