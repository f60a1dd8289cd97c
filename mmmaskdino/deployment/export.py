# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
"""Export Mask DINO to ONNX.

The exported graph is the network of :meth:`MaskDINO._forward` on a
normalised, padded image: backbone -> pixel decoder -> two-stage query
selection (top-k) -> mask-enhanced anchors -> decoder loop -> final class
logits, mask logits and boxes. Post-processing stays outside the graph: it is
:meth:`MaskDINOFusionHead.predict`, shared with PyTorch inference (see
:class:`mmmaskdino.deployment.OnnxMaskDINO`). The graph is traced with the
TorchScript exporter (``torch.onnx.export(..., dynamo=False)``); on CPU
tensors the deformable attention is a ``Gather`` of neighbour rows reduced
by a ``MatMul`` (``export_deformable_attn`` in
``mmmaskdino/models/layers/gather_deformable_attention.py``). The lowest
opset is 12 (``Einsum``, the mask logits).
"""
import copy
import json
import warnings
from typing import Dict, Optional, Sequence, Union

import onnx
import torch
from mmdet.apis import init_detector
from mmengine.config import Config
from torch import nn

from mmmaskdino.apis.inference import TASK_FLAGS

OUTPUT_NAMES = ('cls_logits', 'mask_logits', 'boxes')
METADATA_KEY = 'mmmaskdino'
MIN_OPSET = 12  # Einsum


def init_export_model(config: Union[str, Config],
                      checkpoint: Optional[str] = None,
                      task: Optional[str] = None) -> nn.Module:
    """mmdet's :func:`~mmdet.apis.init_detector` on the CPU, for one task.

    Args:
        config (str | Config): Config path or object.
        checkpoint (str, optional): Checkpoint path or URL (official
            detectron2 checkpoints are converted on load). Without one, the
            model's own ``init_weights`` runs under seed 0, so that every
            call builds the same weights (for benchmarks).
        task (str, optional): ``'instance'``, ``'panoptic'`` or
            ``'semantic'``: sets the ``test_cfg`` flags of that task only.

    Returns:
        nn.Module: The detector in eval mode.
    """
    cfg = Config.fromfile(config) if isinstance(config, str) else \
        copy.deepcopy(config)
    if task is not None:
        cfg.model.test_cfg.update(TASK_FLAGS[task])
    if checkpoint is None:  # the constructors draw random values too
        torch.manual_seed(0)
    model = init_detector(cfg, checkpoint, device='cpu')
    if checkpoint is None:
        model.init_weights()
    return model.eval()


def export_onnx(detector: nn.Module,
                out_file: str,
                img_size: Sequence[int],
                opset: int = 17) -> Dict[str, object]:
    """Export the network of ``detector`` to ``out_file``.

    Args:
        detector (nn.Module): ``MaskDINO`` in eval mode on the CPU.
        out_file (str): The ``.onnx`` file to write.
        img_size (Sequence[int]): ``(H, W)`` of the padded input, multiples
            of 32 (the size divisor). The graph accepts this size only: the
            spatial shapes of the feature levels are traced as constants.
        opset (int): ONNX opset, at least 12.

    Returns:
        dict: The metadata stored in the file under ``'mmmaskdino'``: the
        input size, the width ``K`` of the class logits and the fusion
        head's ``test_cfg``.
    """
    if opset < MIN_OPSET:
        raise ValueError(f'opset {opset} < {MIN_OPSET}: Einsum (the mask '
                         f'logits) needs opset >= {MIN_OPSET}')
    height, width = img_size
    if height % 32 or width % 32:
        raise ValueError(f'img_size {tuple(img_size)} must be multiples of 32')
    dummy = torch.zeros(1, 3, height, width)
    with torch.no_grad(), warnings.catch_warnings():
        # Shapes read in Python become constants of the fixed-size graph.
        warnings.filterwarnings('ignore', category=torch.jit.TracerWarning)
        warnings.filterwarnings(
            'ignore', category=DeprecationWarning, module='torch.onnx')
        torch.onnx.export(
            detector, (dummy, ),
            out_file,
            input_names=['input'],
            output_names=list(OUTPUT_NAMES),
            opset_version=opset,
            do_constant_folding=True,
            dynamo=False)
    metadata = dict(
        img_size=list(img_size),
        num_logits=detector.panoptic_head.predictor.class_embed.out_features,
        test_cfg=dict(detector.panoptic_fusion_head.test_cfg))
    model = onnx.load(out_file)
    entry = model.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(metadata)
    onnx.save(model, out_file)
    return metadata
