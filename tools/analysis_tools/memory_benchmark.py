# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
"""Peak memory of one training step of a config, and the knobs that lower it.

::

    python tools/analysis_tools/memory_benchmark.py CONFIG [--with-cp]
        [--num-points N] [--steps 2] [--json] [--cfg-options k=v ...]

One batch of the config's train dataloader is run through
``model.train_step`` once to warm up (optimizer states, allocator caches),
then ``--steps`` more times; the largest peak of those steps is reported.

* CUDA: ``torch.cuda.max_memory_allocated`` (reset before every step).
* CPU: the step's peak resident set size above the resident size before the
  step (Linux ``VmHWM`` after resetting it through ``/proc/self/clear_refs``).
  So that freed tensors really leave the resident set, the script runs
  itself with ``MALLOC_MMAP_THRESHOLD_=65536`` (every glibc allocation of
  64 KiB or more is an ``mmap`` returned to the system on free).

Knobs: ``--with-cp`` checkpoints the activations of the backbone
(``model.backbone.with_cp``) and of every pixel-decoder encoder layer
(``model.panoptic_head.pixel_decoder.num_cp``); ``--num-points`` sets the
points sampled per mask in the matcher and the mask losses
(``model.panoptic_head.criterion.num_points``).
"""
import argparse
import json
import os
import sys
import time
from typing import Dict, Optional

import torch
from mmengine.config import Config, DictAction

MMAP_THRESHOLD = '65536'


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Peak memory of a training step')
    parser.add_argument('config', help='train config file path')
    parser.add_argument(
        '--with-cp',
        action='store_true',
        help='activation checkpointing in the backbone and the encoder')
    parser.add_argument(
        '--num-points', type=int, help='points sampled per mask')
    parser.add_argument(
        '--steps', type=int, default=2, help='measured training steps')
    parser.add_argument(
        '--json', action='store_true', help='print one JSON line only')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings, e.g. "train_dataloader.batch_size=2"')
    return parser.parse_args()


def apply_knobs(cfg: Config, with_cp: bool, num_points: Optional[int]) -> None:
    """Set the memory knobs of a Mask DINO config in place."""
    head = cfg.model.panoptic_head
    if with_cp:
        cfg.model.backbone.with_cp = True
        encoder = head.pixel_decoder
        encoder.num_cp = encoder.get('num_encoder_layers', 6)
    if num_points is not None:
        head.criterion.num_points = num_points


def _status_kib(field: str) -> int:
    """A ``kB`` field of ``/proc/self/status``."""
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(field + ':'):
                return int(line.split()[1])
    raise RuntimeError(f'{field} not found in /proc/self/status')


def _reset_cpu_peak() -> None:
    """Reset ``VmHWM`` to the current resident size."""
    with open('/proc/self/clear_refs', 'w') as f:
        f.write('5')


def measure_step(model: torch.nn.Module, data_batch: dict, optim_wrapper,
                 device: str) -> float:
    """Peak memory (MiB) of one ``train_step`` above the memory before it."""
    if device == 'cuda':
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        model.train_step(data_batch, optim_wrapper)
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated() - base) / 2**20
    _reset_cpu_peak()
    base = _status_kib('VmRSS')
    model.train_step(data_batch, optim_wrapper)
    return (_status_kib('VmHWM') - base) / 1024


def run_benchmark(cfg: Config, steps: int) -> Dict[str, float]:
    """Build model, optimizer and one batch of ``cfg`` and measure.

    Returns:
        dict: ``peak_step_mib`` (largest peak of the measured steps),
        ``step_time_s`` (mean wall time of a measured step), ``device``.
    """
    from mmdet.registry import MODELS
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import init_default_scope
    from mmengine.runner import Runner

    import mmmaskdino  # noqa: F401  (registers the Mask DINO modules)
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    torch.manual_seed(0)
    device = 'cuda' if torch.cuda.is_available() else 'cpu'
    model = MODELS.build(cfg.model).to(device)
    model.init_weights()
    model.train()
    optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    loader_cfg = cfg.train_dataloader.copy()
    loader_cfg.update(num_workers=0, persistent_workers=False)
    data_batch = next(iter(Runner.build_dataloader(loader_cfg, seed=0)))
    model.train_step(data_batch, optim_wrapper)  # warm-up
    peaks, start = [], time.perf_counter()
    for _ in range(steps):
        peaks.append(measure_step(model, data_batch, optim_wrapper, device))
    return dict(
        peak_step_mib=round(max(peaks), 1),
        step_time_s=round((time.perf_counter() - start) / steps, 3),
        device=device)


def main() -> None:
    args = parse_args()
    if (not torch.cuda.is_available() and sys.platform.startswith('linux')
            and os.environ.get('MALLOC_MMAP_THRESHOLD_') != MMAP_THRESHOLD):
        env = dict(os.environ, MALLOC_MMAP_THRESHOLD_=MMAP_THRESHOLD)
        os.execve(sys.executable, [sys.executable, *sys.argv], env)
    cfg = Config.fromfile(args.config)
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    apply_knobs(cfg, args.with_cp, args.num_points)
    result = run_benchmark(cfg, args.steps)
    result.update(
        with_cp=args.with_cp,
        num_points=cfg.model.panoptic_head.criterion.get('num_points'))
    if args.json:
        print(json.dumps(result))
    else:
        unit = 'max_memory_allocated' if result['device'] == 'cuda' \
            else 'peak RSS above the pre-step RSS'
        print(f'{args.config}: peak of a training step '
              f'{result["peak_step_mib"]} MiB ({unit}), '
              f'{result["step_time_s"]} s/step on {result["device"]}, '
              f'with_cp={args.with_cp}, num_points={result["num_points"]}')


if __name__ == '__main__':
    main()
