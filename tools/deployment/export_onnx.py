# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
"""Export a Mask DINO model to ONNX.

    python tools/deployment/export_onnx.py CONFIG CHECKPOINT OUT.onnx \
        [--task instance|panoptic|semantic] [--img-size H W] [--opset 17] \
        [--verify] [--cfg-options KEY=VALUE ...]

CHECKPOINT ``none`` exports randomly initialised weights (for benchmarks).
The graph maps a ``(1, 3, H, W)`` normalised, zero-padded image to
``cls_logits``, ``mask_logits`` and ``boxes``; post-processing is the fusion
head's (see docs/deployment.md).
"""
import argparse
import math
import os.path as osp
import time
from typing import Dict, Optional, Sequence, Tuple

import numpy as np
import onnxruntime as ort
import torch
from mmengine.config import Config, DictAction

import mmmaskdino  # noqa: F401  (registers the modules)
from mmmaskdino.apis.inference import TASK_FLAGS
from mmmaskdino.deployment import export_onnx, init_export_model


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Export Mask DINO to ONNX')
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help="checkpoint file, or 'none'")
    parser.add_argument('out', help='output .onnx file')
    parser.add_argument(
        '--task',
        choices=sorted(TASK_FLAGS),
        help='post-processing task stored in the file (default: the '
        "config's test_cfg)")
    parser.add_argument(
        '--img-size',
        type=int,
        nargs=2,
        metavar=('H', 'W'),
        help='padded input size, multiples of 32 (default: the padded size '
        "of a landscape image after the config's test Resize, e.g. "
        '800 1344 for COCO)')
    parser.add_argument('--opset', type=int, default=17, help='ONNX opset')
    parser.add_argument(
        '--verify',
        action='store_true',
        help='compare ONNX Runtime with PyTorch on a random input')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings, key=value')
    return parser.parse_args(argv)


def default_img_size(cfg: Config) -> Tuple[int, int]:
    """Padded ``(H, W)`` of a landscape image after the test ``Resize``."""
    resize = [
        t for t in cfg.test_dataloader.dataset.pipeline
        if t['type'] == 'Resize'
    ]
    if not resize:
        raise ValueError('no Resize in the test pipeline: pass --img-size')
    scale = resize[0]['scale']
    scale = (scale, scale) if isinstance(scale, int) else scale
    divisor = cfg.model.data_preprocessor.get('pad_size_divisor', 32)
    short, long = min(scale), max(scale)
    return (math.ceil(short / divisor) * divisor,
            math.ceil(long / divisor) * divisor)


def verify(model: torch.nn.Module, onnx_file: str,
           img_size: Sequence[int]) -> Dict[str, float]:
    """Max abs difference of each output, ONNX Runtime vs PyTorch, on a
    random input."""
    inputs = torch.randn(
        1, 3, *img_size, generator=torch.Generator().manual_seed(0))
    session = ort.InferenceSession(
        onnx_file, providers=['CPUExecutionProvider'])
    with torch.no_grad():
        expected = model._forward(inputs)
    actual = session.run(None, {'input': inputs.numpy()})
    return {
        out.name: float(np.abs(e.numpy() - a).max())
        for out, e, a in zip(session.get_outputs(), expected, actual)
    }


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = parse_args(argv)
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    checkpoint = None if args.checkpoint.lower() == 'none' else \
        args.checkpoint
    model = init_export_model(cfg, checkpoint, args.task)
    img_size = tuple(args.img_size or default_img_size(cfg))
    start = time.perf_counter()
    export_onnx(model, args.out, img_size, opset=args.opset)
    seconds = time.perf_counter() - start
    size_mb = osp.getsize(args.out) / 2**20
    print(f'exported {args.out} ({size_mb:.1f} MiB) in {seconds:.1f} s: '
          f'input (1, 3, {img_size[0]}, {img_size[1]})'
          f', opset {args.opset}')
    if args.verify:
        diffs = verify(model, args.out, img_size)
        print('max |ONNX Runtime - PyTorch|: ' +
              ', '.join(f'{name} {diff:.2e}' for name, diff in diffs.items()))


if __name__ == '__main__':
    main()
