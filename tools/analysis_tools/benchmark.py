# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
"""Inference latency or training speed, peak memory and FLOPs of configs.

::

    python tools/analysis_tools/benchmark.py CONFIG [CONFIG ...]
        [--checkpoint CKPT [CKPT ...]] --task inference|train
        [--img-size H W] [--batch-size N] [--warmup 3] [--iters 10]
        [--amp] [--device cpu|cuda] [--no-flops] [--profile]
        [--out RESULT.json] [--cfg-options k=v ...]

CONFIG is an mmmaskdino config or a stock MMDetection one
(``mmdet::mask2former/mask2former_r50_8xb2-lsj-50e_coco.py``,
``mmdet::dino/dino-4scale_r50_8xb2-12e_coco.py``, or a path), so Mask DINO
and MMDetection's specialists are timed in one run on one machine.

Every config runs on the same synthetic batch of ``--batch-size`` images of
``--img-size`` (random pixels; for ``train`` five rectangles per image with
boxes, masks and labels): ``--warmup`` iterations, then ``--iters`` timed
ones. ``--data test`` (inference) instead runs the config's own test
dataloader (its resize pipeline; warm-up repeats the first batch),
``--iters 0`` timing the whole test set: the paper's FPS protocol with
``--batch-size 1`` (data loading untimed).

* ``inference``: ``model.test_step`` (data preprocessor, network and
  post-processing) in eval mode; latency is per image (iteration time /
  batch size).
* ``train``: ``model.train_step`` (forward, losses, backward, optimizer
  step) with the config's optimizer; latency is seconds per iteration.

Reported: median / p90 / mean latency, images per second, peak memory (CPU:
peak resident set size of the process during the timed iterations, Linux
``VmHWM``; CUDA: ``torch.cuda.max_memory_allocated``), parameters and the
FLOPs of one forward of one image through ``model._forward``
(``mmengine.analysis``; operators it cannot count, such as mmcv's
multi-scale deformable attention, add nothing), plus the machine, package
versions, load average and command line. The table is printed and
everything is saved as JSON. ``--profile`` runs one more iteration under
``torch.profiler`` and writes its operator table (sorted by self time) next
to the JSON (``RESULT.<config name>.profile.txt``).

Without ``--checkpoint`` the weights are randomly initialised (pretrained
backbone weights are not downloaded). On CUDA, ``cudnn.benchmark`` is on and
mmcv's CUDA deformable attention is used; ``--amp`` runs inference under
``torch.autocast`` (float16 on CUDA, bfloat16 on CPU) and training with
mmengine's AMP optimizer wrapper.
"""
import argparse
import contextlib
import copy
import functools
import itertools
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch
from mmengine.config import Config, DictAction

sys.path.insert(0, str(Path(__file__).resolve().parent))
from memory_benchmark import _reset_cpu_peak, _status_kib  # noqa: E402

RESULT_FIELDS = ('config', 'task', 'device', 'batch_size', 'img_size', 'data',
                 'amp', 'warmup', 'iters', 'latency_median_s', 'latency_p90_s',
                 'latency_mean_s', 'images_per_s', 'peak_cpu_rss_mib',
                 'peak_cuda_mib', 'flops', 'params')
NUM_GT = 5


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    # imported here: ab_benchmark.py imports this module before choosing
    # which checkout's mmmaskdino to import
    from mmmaskdino.utils.cpu_allocator import add_retain_malloc_arg
    parser = argparse.ArgumentParser(
        description='Latency, memory and FLOPs of detector configs')
    parser.add_argument(
        'configs',
        nargs='+',
        metavar='CONFIG',
        help='config files or mmdet::... configs')
    parser.add_argument(
        '--checkpoint', nargs='+', help='one checkpoint per config')
    parser.add_argument(
        '--task', choices=['inference', 'train'], default='inference')
    parser.add_argument(
        '--img-size',
        type=int,
        nargs=2,
        default=[800, 1333],
        metavar=('H', 'W'),
        help='input size')
    parser.add_argument('--batch-size', type=int, default=1)
    parser.add_argument(
        '--data',
        choices=['synthetic', 'test'],
        default='synthetic',
        help='synthetic batch, or (inference only) the '
        "config's test set")
    parser.add_argument(
        '--warmup', type=int, default=3, help='untimed iterations first')
    parser.add_argument(
        '--iters',
        type=int,
        default=10,
        help='timed iterations (0 with --data test: the '
        'whole test set)')
    parser.add_argument(
        '--amp',
        action='store_true',
        help='mixed precision (float16 CUDA / bfloat16 CPU)')
    parser.add_argument(
        '--device',
        choices=['cpu', 'cuda'],
        help='default: cuda when available')
    parser.add_argument(
        '--no-flops', action='store_true', help='skip the FLOPs count')
    parser.add_argument(
        '--profile',
        action='store_true',
        help='write a torch profiler table of one iteration')
    parser.add_argument(
        '--out',
        help='JSON file for the results '
        '(default work_dirs/benchmark/<task>.json)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override settings of every config')
    add_retain_malloc_arg(parser)
    parser.add_argument(
        '--metafile-row',
        action='store_true',
        help='also print, per config, the "inference time (ms/im)" entry of '
        'configs/maskdino/metafile.yml with the measured peak memory; with '
        '--data test --iters 0 --batch-size 1 this is the paper\'s FPS '
        'protocol')
    args = parser.parse_args(argv)
    if args.checkpoint and len(args.checkpoint) != len(args.configs):
        parser.error('--checkpoint needs one checkpoint per config')
    if args.data == 'test' and args.task == 'train':
        parser.error('--data test is for --task inference')
    if args.iters == 0 and args.data == 'synthetic':
        parser.error('--iters 0 needs --data test')
    return args


def load_config(name: str) -> Config:
    """A config from a path, or from an installed package (``mmdet::...``)."""
    if '::' in name and not os.path.isfile(name):
        from mmengine.hub import get_config
        return get_config(name)
    return Config.fromfile(name)


def machine_info() -> Dict[str, object]:
    """CPU / GPU, core count, load average and package versions."""
    import mmcv
    import mmdet
    import mmengine
    cpu = platform.processor() or platform.machine()
    if os.path.isfile('/proc/cpuinfo'):
        with open('/proc/cpuinfo') as f:
            names = [
                ln.split(':', 1)[1].strip() for ln in f
                if ln.startswith('model name')
            ]
        cpu = names[0] if names else cpu
    return dict(
        cpu=cpu,
        cpu_count=os.cpu_count(),
        torch_threads=torch.get_num_threads(),
        gpu=torch.cuda.get_device_name()
        if torch.cuda.is_available() else None,
        load_average=[round(x, 2) for x in os.getloadavg()],
        python=platform.python_version(),
        torch=torch.__version__,
        mmengine=mmengine.__version__,
        mmcv=mmcv.__version__,
        mmdet=mmdet.__version__,
        command=' '.join([Path(sys.executable).name] + sys.argv))


def synthetic_batch(batch_size: int,
                    img_size: Tuple[int, int],
                    with_gt: bool,
                    seed: int = 0,
                    num_gt: int = NUM_GT) -> dict:
    """A dataloader-style batch: uint8 images and ``DetDataSample``s.

    With ``with_gt`` every image gets ``num_gt`` rectangles as ground truth
    (boxes in pixels, bitmap masks, labels ``0 .. num_gt - 1`` modulo 2).
    """
    from mmdet.structures import DetDataSample
    from mmdet.structures.mask import BitmapMasks
    from mmengine.structures import InstanceData
    rng = np.random.default_rng(seed)
    h, w = img_size
    inputs, samples = [], []
    for _ in range(batch_size):
        inputs.append(
            torch.from_numpy(rng.integers(0, 256, (3, h, w), dtype=np.uint8)))
        sample = DetDataSample(
            metainfo=dict(
                img_shape=(h, w),
                ori_shape=(h, w),
                scale_factor=(1.0, 1.0),
                img_id=0))
        if with_gt:
            x0 = rng.uniform(0, 0.6, num_gt) * w
            y0 = rng.uniform(0, 0.6, num_gt) * h
            x1 = x0 + rng.uniform(0.1, 0.4, num_gt) * w
            y1 = y0 + rng.uniform(0.1, 0.4, num_gt) * h
            boxes = np.stack([x0, y0, x1, y1], 1).round().astype(np.float32)
            masks = np.zeros((num_gt, h, w), np.uint8)
            for m, (a, b, c, d) in zip(masks, boxes.astype(int)):
                m[b:d, a:c] = 1
            sample.gt_instances = InstanceData(
                bboxes=torch.from_numpy(boxes),
                labels=torch.arange(num_gt) % 2,
                masks=BitmapMasks(masks, h, w))
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


def _without_pretrained(cfg: Config) -> None:
    """Drop ``Pretrained`` initialisation anywhere in the model config."""

    def walk(node) -> None:
        if isinstance(node, dict):
            init = node.get('init_cfg')
            if isinstance(init, dict) and init.get('type') == 'Pretrained':
                node['init_cfg'] = None
            for value in node.values():
                walk(value)
        elif isinstance(node, (list, tuple)):
            for value in node:
                walk(value)

    walk(cfg.model)


def build_model(cfg: Config, checkpoint: Optional[str],
                device: str) -> torch.nn.Module:
    """Build the detector of ``cfg`` on ``device`` with its weights."""
    from mmdet.registry import MODELS
    from mmengine.runner import load_checkpoint
    _without_pretrained(cfg)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    if checkpoint:
        load_checkpoint(model, checkpoint, map_location='cpu')
    return model.to(device)


def count_flops(model: torch.nn.Module, batch: dict) -> Tuple[int, int]:
    """FLOPs and parameters of one ``_forward`` of the first image."""
    from mmengine.analysis import get_model_complexity_info
    one = dict(
        inputs=batch['inputs'][:1], data_samples=batch['data_samples'][:1])
    model.eval()
    with torch.no_grad():
        data = model.data_preprocessor(one, False)
        forward = model.forward
        model.forward = functools.partial(
            forward, data_samples=data['data_samples'], mode='tensor')
        try:
            info = get_model_complexity_info(
                model,
                inputs=(data['inputs'], ),
                show_table=False,
                show_arch=False)
        finally:
            model.forward = forward
    return int(info['flops']), int(info['params'])


def _sync(device: str) -> None:
    if device == 'cuda':
        torch.cuda.synchronize()


def time_iterations(
        step: Callable[[dict], None], batches: Iterator[dict], device: str,
        warmup: int,
        iters: int) -> Tuple[List[float], List[int], float, Optional[float]]:
    """Run ``step`` on ``warmup`` batches, then time it on ``iters`` more.

    ``iters=0`` times every remaining batch. Loading a batch is not timed.

    Returns:
        tuple: seconds and images of every timed batch, peak CPU RSS (MiB)
        and peak CUDA memory allocated (MiB, None on the CPU) during the
        timed runs.
    """
    for batch in itertools.islice(batches, warmup):
        step(batch)
    _sync(device)
    if device == 'cuda':
        torch.cuda.reset_peak_memory_stats()
    _reset_cpu_peak()
    times, sizes = [], []
    for batch in itertools.islice(batches, iters or None):
        start = time.perf_counter()
        step(batch)
        _sync(device)
        times.append(time.perf_counter() - start)
        sizes.append(len(batch['inputs']))
    rss = _status_kib('VmHWM') / 1024
    cuda = (
        torch.cuda.max_memory_allocated() /
        2**20 if device == 'cuda' else None)
    return times, sizes, rss, cuda


def profile_table(step: Callable[[dict], None],
                  batch: dict,
                  device: str,
                  rows: int = 30) -> str:
    """Operator table of ``step(batch)`` (torch profiler, self time)."""
    from torch.profiler import ProfilerActivity, profile
    activities = [ProfilerActivity.CPU]
    if device == 'cuda':
        activities.append(ProfilerActivity.CUDA)
    with profile(activities=activities) as prof:
        step(batch)
        _sync(device)
    sort_by = 'self_cuda_time_total' if device == 'cuda' \
        else 'self_cpu_time_total'
    return prof.key_averages().table(sort_by=sort_by, row_limit=rows)


def dataset_batches(cfg: Config, batch_size: int) -> Iterator[dict]:
    """Batches of the config's test dataloader, in order."""
    from mmengine.runner import Runner
    loader_cfg = copy.deepcopy(cfg.test_dataloader)
    loader_cfg.update(batch_size=batch_size, persistent_workers=False)
    return iter(Runner.build_dataloader(loader_cfg, seed=0))


def benchmark_config(cfg: Config,
                     checkpoint: Optional[str],
                     task: str,
                     img_size: Tuple[int, int],
                     batch_size: int,
                     warmup: int,
                     iters: int,
                     amp: bool,
                     device: str,
                     flops: bool = True,
                     profile_file: Optional[Path] = None,
                     data: str = 'synthetic') -> Dict[str, object]:
    """Measure one config; returns the ``RESULT_FIELDS`` except ``config``.

    ``data='test'`` times inference on the config's test set instead of the
    synthetic batch (``img_size`` is then unused). With ``profile_file`` the
    profiler table of one more iteration is written there.
    """
    from mmengine.registry import init_default_scope
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    if amp and task == 'train':
        from mmmaskdino.utils.tool_utils import enable_amp
        enable_amp(cfg)
    model = build_model(cfg, checkpoint, device)
    if data == 'test':
        # warm up on the first batch, then time the whole test set
        rest = dataset_batches(cfg, batch_size)
        first = next(rest)
        batches = itertools.chain(
            itertools.repeat(first, warmup), [first], rest)
    else:
        first = synthetic_batch(batch_size, img_size, with_gt=task == 'train')
        batches = itertools.repeat(first)
    n_flops, n_params = count_flops(model, first) if flops else (0, 0)
    if task == 'train':
        from mmengine.optim import build_optim_wrapper
        optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
        model.train()

        def step(batch: dict) -> None:
            model.train_step(batch, optim_wrapper)
    else:
        model.eval()
        dtype = torch.float16 if device == 'cuda' else torch.bfloat16
        autocast = (
            functools.partial(torch.autocast, device, dtype=dtype)
            if amp else contextlib.nullcontext)

        def step(batch: dict) -> None:
            with torch.no_grad(), autocast():
                model.test_step(batch)

    times, sizes, rss, cuda = time_iterations(step, batches, device, warmup,
                                              iters)
    if profile_file is not None:
        profile_file.write_text(profile_table(step, first, device))
    latencies = times if task == 'train' else [
        t / n for t, n in zip(times, sizes)
    ]
    return dict(
        task=task,
        device=device,
        batch_size=batch_size,
        img_size=list(img_size) if data == 'synthetic' else None,
        data=data,
        amp=amp,
        warmup=warmup,
        iters=len(times),
        latency_median_s=statistics.median(latencies),
        latency_p90_s=float(np.percentile(latencies, 90)),
        latency_mean_s=statistics.fmean(latencies),
        images_per_s=sum(sizes) / sum(times),
        peak_cpu_rss_mib=round(rss, 1),
        peak_cuda_mib=None if cuda is None else round(cuda, 1),
        flops=n_flops,
        params=n_params)


def _short_names(configs: List[str]) -> List[str]:
    """File names of the configs, with their folder where names repeat."""
    names = [Path(c.split('::')[-1]).name for c in configs]
    return [
        name if names.count(name) == 1 else '/'.join(
            Path(c.split('::')[-1]).parts[-2:])
        for name, c in zip(names, configs)
    ]


def format_table(results: List[Dict[str, object]]) -> str:
    """One markdown row per config."""
    unit = 's/iter' if results and results[0]['task'] == 'train' \
        else 's/img'
    lines = [
        f'| config | median {unit} | p90 {unit} | img/s | peak RSS MiB | '
        'peak CUDA MiB | GFLOPs | params M |',
        '| --- | --- | --- | --- | --- | --- | --- | --- |'
    ]
    names = _short_names([str(r['config']) for r in results])
    for name, r in zip(names, results):
        cuda = '–' if r['peak_cuda_mib'] is None else r['peak_cuda_mib']
        lines.append(
            f"| {name} | {r['latency_median_s']:.3f} "
            f"| {r['latency_p90_s']:.3f} | {r['images_per_s']:.2f} | "
            f"{r['peak_cpu_rss_mib']} | {cuda} | {r['flops'] / 1e9:.1f} | "
            f"{r['params'] / 1e6:.1f} |")
    return '\n'.join(lines)


def metafile_row(result: Dict[str, object], machine: Dict[str, object]) -> str:
    """The metafile ``inference time (ms/im)`` entry of one result (YAML),
    with its peak memory as a comment."""
    ms = result['latency_median_s'] * 1000
    hardware = machine['gpu'] or f"{machine['cpu_count']}-core " \
        f"{machine['cpu']} ({machine['torch_threads']} threads)"
    memory = result['peak_cuda_mib'] or result['peak_cpu_rss_mib']
    kind = 'CUDA max allocated' if result['peak_cuda_mib'] else 'peak RSS'
    size = 'test set' if result['data'] == 'test' else \
        '({}, {})'.format(*result['img_size'])
    mode = ('FP16' if result['device'] == 'cuda' else 'BF16') \
        if result['amp'] else 'FP32'
    return '\n'.join([
        f"# {result['config']}: peak memory {memory / 1024:.2f} GiB "
        f'({kind})',
        f'- value: {ms:.1f}',
        f'  hardware: {hardware}',
        f"  backend: PyTorch {machine['torch'].split('+')[0]}",
        f"  batch size: {result['batch_size']}",
        f'  mode: {mode}',
        f'  resolution: {size}',
    ])


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, object]:
    """Benchmark every config, print the table, save and return the JSON."""
    args = parse_args(argv)
    import mmmaskdino  # noqa: F401  (registers the Mask DINO modules)
    device = args.device or ('cuda' if torch.cuda.is_available() else 'cpu')
    if device == 'cuda':
        torch.backends.cudnn.benchmark = True
    elif args.retain_malloc:
        from mmmaskdino.utils.cpu_allocator import retain_freed_memory
        retain_freed_memory()
    checkpoints = args.checkpoint or [None] * len(args.configs)
    out = Path(args.out or f'work_dirs/benchmark/{args.task}.json')
    out.parent.mkdir(parents=True, exist_ok=True)
    results = []
    for name, checkpoint in zip(args.configs, checkpoints):
        cfg = load_config(name)
        if args.cfg_options:
            cfg.merge_from_dict(args.cfg_options)
        stem = Path(name.split('::')[-1]).stem
        profile_file = (
            out.with_suffix(f'.{stem}.profile.txt') if args.profile else None)
        result = dict(config=name)
        result.update(
            benchmark_config(
                cfg,
                checkpoint,
                args.task,
                tuple(args.img_size),
                args.batch_size,
                args.warmup,
                args.iters,
                args.amp,
                device,
                flops=not args.no_flops,
                profile_file=profile_file,
                data=args.data))
        results.append(result)
    report = dict(machine=machine_info(), results=results)
    out.write_text(json.dumps(report, indent=2))
    print(format_table(results))
    if args.metafile_row:
        for result in results:
            print(metafile_row(result, report['machine']))
    print(f'machine: {report["machine"]}')
    print(f'saved to {out}')
    return report


if __name__ == '__main__':
    main()
