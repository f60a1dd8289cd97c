# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
"""CPU latency of an exported Mask DINO: ONNX Runtime vs PyTorch.

    python tools/deployment/benchmark_onnx.py CONFIG CHECKPOINT MODEL.onnx \
        [--runs 5] [--threads N]

Both run the network only (no pre- or post-processing) on the same random
input of the graph's size, after one warm-up run; CHECKPOINT may be
``none`` (PyTorch default initialisation, as for the export). Prints the
median and the spread of the timed runs and the largest output difference.
"""
import argparse
import json
import statistics
import time
from typing import Callable, List, Optional, Sequence

import numpy as np
import onnxruntime as ort
import torch
from mmengine.config import Config, DictAction

import mmmaskdino  # noqa: F401  (registers the modules)
from mmmaskdino.deployment import METADATA_KEY, OUTPUT_NAMES, init_export_model


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help="checkpoint file, or 'none'")
    parser.add_argument('model', help='.onnx file exported from them')
    parser.add_argument('--runs', type=int, default=5, help='timed runs')
    parser.add_argument(
        '--threads',
        type=int,
        help='threads of both runtimes (default: their own choice)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings, key=value (as for the export)')
    return parser.parse_args(argv)


def time_runs(fn: Callable[[], object], runs: int) -> List[float]:
    """Seconds of ``runs`` calls of ``fn`` after one warm-up call."""
    fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = parse_args(argv)
    options = ort.SessionOptions()
    if args.threads:
        options.intra_op_num_threads = args.threads
        torch.set_num_threads(args.threads)
    session = ort.InferenceSession(
        args.model, options, providers=['CPUExecutionProvider'])
    metadata = json.loads(
        session.get_modelmeta().custom_metadata_map[METADATA_KEY])
    checkpoint = None if args.checkpoint.lower() == 'none' else \
        args.checkpoint
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    model = init_export_model(cfg, checkpoint)
    inputs = torch.randn(
        1,
        3,
        *metadata['img_size'],
        generator=torch.Generator().manual_seed(0))
    names = list(OUTPUT_NAMES)
    with torch.no_grad():
        expected = model._forward(inputs)
        torch_times = time_runs(lambda: model._forward(inputs), args.runs)
    actual = session.run(names, {'input': inputs.numpy()})
    ort_times = time_runs(
        lambda: session.run(names, {'input': inputs.numpy()}), args.runs)
    diff = max(
        float(np.abs(e.numpy() - a).max()) for e, a in zip(expected, actual))
    print(f'input {tuple(inputs.shape)}, {args.runs} runs, torch threads '
          f'{torch.get_num_threads()}')
    for name, times in (('PyTorch', torch_times), ('ONNX Runtime', ort_times)):
        print(f'{name}: median {statistics.median(times):.2f} s '
              f'(min {min(times):.2f}, max {max(times):.2f})')
    print(f'max |ONNX Runtime - PyTorch| over the outputs: {diff:.2e}')


if __name__ == '__main__':
    main()
