# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
"""Export Mask DINO to ONNX.

The exported graph is the whole network on a normalised, padded image:
backbone -> pixel decoder -> two-stage query selection (top-k) ->
mask-enhanced anchors -> decoder loop -> final class logits, mask logits and
boxes, optionally followed by the instance top-k of
:meth:`MaskDINOFusionHead.instance_topk`. It is traced with the TorchScript
exporter (``torch.onnx.export(..., dynamo=False)``); on CPU tensors mmcv's
``MultiScaleDeformableAttention`` runs its pure-PyTorch sampling path, which
exports through ``GridSample`` (opset >= 16).
"""
import json
import warnings
from typing import Dict, Optional, Sequence, Tuple, Union

import onnx
import torch
from mmdet.registry import MODELS
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmengine.runner import load_checkpoint
from torch import Tensor, nn

from mmmaskdino.apis.inference import TASK_FLAGS

OUTPUT_NAMES = ('cls_logits', 'mask_logits', 'boxes')
TOPK_OUTPUT_NAMES = ('topk_scores', 'topk_labels', 'topk_queries')
METADATA_KEY = 'mmmaskdino'
MIN_OPSET = 16  # GridSample


class MaskDINOOnnxModel(nn.Module):
    """The exportable network of a :class:`MaskDINO` detector.

    Args:
        detector (nn.Module): A ``MaskDINO`` in eval mode.
        with_topk (bool): Also return the instance top-k (scores, labels and
            query indices of the best ``max_per_image`` (query, class)
            pairs, before stuff filtering and mask rescoring).
    """

    def __init__(self, detector: nn.Module, with_topk: bool = False) -> None:
        super().__init__()
        self.detector = detector
        self.with_topk = with_topk

    def forward(self, inputs: Tensor) -> Tuple[Tensor, ...]:
        """Run the network on ``(1, 3, H, W)`` normalised padded images.

        Returns:
            tuple: ``cls_logits (1, Q, K)``, ``mask_logits (1, Q, H/4, W/4)``,
            ``boxes (1, Q, 4)`` (normalised cxcywh of the padded input) and,
            with ``with_topk``, ``topk_scores``, ``topk_labels`` and
            ``topk_queries`` (each ``(k,)``) of the first image.
        """
        cls_logits, mask_logits, boxes = self.detector._forward(inputs)
        if not self.with_topk:
            return cls_logits, mask_logits, boxes
        topk = self.detector.panoptic_fusion_head.instance_topk(cls_logits[0])
        return (cls_logits, mask_logits, boxes, *topk)


def build_detector(config: Union[str, Config],
                   checkpoint: Optional[str] = None,
                   task: Optional[str] = None) -> nn.Module:
    """Build a ``MaskDINO`` in eval mode on the CPU.

    Args:
        config (str | Config): Config path or object.
        checkpoint (str, optional): Checkpoint path or URL (official
            detectron2 checkpoints are converted on load). Without one the
            model's own ``init_weights`` runs under seed 0 (for benchmarks:
            every call builds the same weights; set the backbone's
            ``init_cfg`` to None to avoid downloading pretrained weights).
        task (str, optional): ``'instance'``, ``'panoptic'`` or
            ``'semantic'``: sets the ``test_cfg`` flags of that task only.

    Returns:
        nn.Module: The detector; its ``cfg`` attribute holds the config used.
    """
    cfg = Config.fromfile(config) if isinstance(config, str) else config
    cfg = cfg.copy()
    if task is not None:
        cfg.model.test_cfg.update(TASK_FLAGS[task])
    with DefaultScope.overwrite_default_scope(cfg.get('default_scope',
                                                      'mmdet')):
        if checkpoint is None:
            torch.manual_seed(0)
        model = MODELS.build(cfg.model)
    if checkpoint is None:
        model.init_weights()
    else:
        load_checkpoint(model, checkpoint, map_location='cpu')
    model.cfg = cfg
    return model.eval()


def export_metadata(detector: nn.Module, img_size: Sequence[int],
                    with_topk: bool) -> Dict[str, object]:
    """What ``onnx_infer`` needs to know about an exported graph."""
    head = detector.panoptic_fusion_head
    return dict(
        img_size=list(img_size),
        with_topk=with_topk,
        num_things_classes=head.num_things_classes,
        num_stuff_classes=head.num_stuff_classes,
        test_cfg=dict(head.test_cfg))


def export_onnx(detector: nn.Module,
                out_file: str,
                img_size: Sequence[int],
                opset: int = 17,
                with_topk: Optional[bool] = None) -> Dict[str, object]:
    """Export ``detector`` to ``out_file``.

    Args:
        detector (nn.Module): ``MaskDINO`` in eval mode (see
            :func:`build_detector`).
        out_file (str): The ``.onnx`` file to write.
        img_size (Sequence[int]): ``(H, W)`` of the padded input, multiples
            of 32 (the size divisor). The graph accepts this size only: the
            spatial shapes of the feature levels are traced as constants.
        opset (int): ONNX opset, at least 16.
        with_topk (bool, optional): Append the instance top-k outputs.
            Defaults to ``test_cfg.instance_on``.

    Returns:
        dict: The metadata stored in the file under ``'mmmaskdino'``.
    """
    if opset < MIN_OPSET:
        raise ValueError(f'opset {opset} < {MIN_OPSET}: GridSample (the '
                         'deformable attention sampling) needs opset >= 16')
    height, width = img_size
    if height % 32 or width % 32:
        raise ValueError(f'img_size {tuple(img_size)} must be multiples of 32')
    head_cfg = detector.panoptic_fusion_head.test_cfg
    if with_topk is None:
        with_topk = bool(head_cfg.get('instance_on', False))
    wrapper = MaskDINOOnnxModel(detector, with_topk=with_topk).eval()
    output_names = list(OUTPUT_NAMES) + (
        list(TOPK_OUTPUT_NAMES) if with_topk else [])
    dummy = torch.zeros(1, 3, height, width)
    with torch.no_grad(), warnings.catch_warnings():
        # Shapes read in Python become constants of the fixed-size graph.
        warnings.filterwarnings('ignore', category=torch.jit.TracerWarning)
        warnings.filterwarnings(
            'ignore', category=DeprecationWarning, module='torch.onnx')
        torch.onnx.export(
            wrapper, (dummy, ),
            out_file,
            input_names=['input'],
            output_names=output_names,
            opset_version=opset,
            do_constant_folding=True,
            dynamo=False)
    metadata = export_metadata(detector, img_size, with_topk)
    model = onnx.load(out_file)
    entry = model.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(metadata)
    onnx.save(model, out_file)
    return metadata
