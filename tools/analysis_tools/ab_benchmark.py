# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
"""A/B speed and memory of two code versions of mmmaskdino, interleaved.

::

    python tools/analysis_tools/ab_benchmark.py [--compare-to REV]
        [--baseline-root DIR] [--cases instance panoptic train]
        [--pairs 5] [--threads 1] [--out RESULT.json]
        [--config NAME] [--img-size H W] [--batch-size N]

Version A is this working tree, version B the git revision ``REV`` (checked
out with ``git worktree`` under ``work_dirs/ab_benchmark/<REV>``) or any
other checkout (``--baseline-root``). Each (version, case) runs in its own
worker process, which imports the package from its version's tree, builds
the case's R50 config of that tree with the same random weights (version A
draws them with seed 0 and hands its state dict to B, which must load it
strictly) and replaces the backbone by fixed random feature maps, so that
both time the same head on the same input. After one untimed warm-up the
parent alternates one step of A and one of B (A first in even pairs, B
first in odd ones), so both see the same machine load; the ratio B / A is
computed per pair. Each step's peak memory is its worker's peak resident
set size (``VmHWM``, reset before the step) above the size before it (the
"step peak"), and the process's peak resident size itself (with
``--malloc retain`` freed memory stays resident, so only the latter
compares). With the default allocator each worker returns its free heap
memory to the system (``malloc_trim``) after the warm-up and after every
step, outside the timing.

Cases (the sizes of the official COCO recipe):

* ``instance``: ``model.test_step`` (data preprocessor, pixel decoder,
  decoder, instance post-processing) of one 800 x 1333 image (padded to
  800 x 1344), 80 classes, ``maskdino_r50_4xb4-lsj-50e_coco.py``;
* ``panoptic``: the same for ``maskdino_r50_4xb4-lsj-50e_coco-panoptic.py``
  (133 classes; panoptic, instance and semantic results, as shipped);
* ``train``: data preprocessor, ``model.loss`` and the backward pass of a
  batch of 2 images of 1024 x 1024 with 15 ground-truth boxes and masks
  each (300 queries, 100 denoising queries, 12544 points, as configured).

Each step's check value (sum of the instance scores, of the panoptic ids or
of the losses) is printed per version: with the same weights and input
they should agree, up to float rounding. The table and all figures,
machine, load averages and command are printed and saved as JSON.
``--config`` (a file name in ``configs/maskdino`` of both trees),
``--img-size`` and ``--batch-size`` override the case's settings;
``--malloc retain`` runs both workers with freed memory kept for reuse, as
``tools/train.py`` and ``tools/test.py`` do on CPU.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmark import machine_info, synthetic_batch  # noqa: E402
from memory_benchmark import _reset_cpu_peak, _status_kib  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
BASELINE_REV = '17d87c6'
# Config file names per case; older revisions used the ``8xb2`` names.
CASES = dict(
    instance=dict(
        configs=('maskdino_r50_4xb4-lsj-50e_coco.py',
                 'maskdino_r50_8xb2-lsj-50e_coco.py'),
        img_size=(800, 1333),
        batch_size=1,
        train=False,
        test_cfg=dict(instance_on=True, panoptic_on=False, semantic_on=False)),
    panoptic=dict(
        configs=('maskdino_r50_4xb4-lsj-50e_coco-panoptic.py',
                 'maskdino_r50_8xb2-lsj-50e_coco-panoptic.py'),
        img_size=(800, 1333),
        batch_size=1,
        train=False,
        test_cfg=None),
    train=dict(
        configs=('maskdino_r50_4xb4-lsj-50e_coco.py',
                 'maskdino_r50_8xb2-lsj-50e_coco.py'),
        img_size=(1024, 1024),
        batch_size=2,
        train=True,
        test_cfg=None))
NUM_TRAIN_GT = 15
PAD_DIVISOR = 32


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Interleaved A/B benchmark of two mmmaskdino versions')
    parser.add_argument(
        '--compare-to',
        default=BASELINE_REV,
        help='git revision of version B (default: %(default)s)')
    parser.add_argument(
        '--baseline-root',
        help='checkout of version B (instead of --compare-to)')
    parser.add_argument(
        '--cases', nargs='+', default=list(CASES), choices=list(CASES))
    parser.add_argument('--pairs', type=int, default=5)
    parser.add_argument(
        '--threads', type=int, default=1, help='torch threads per worker')
    parser.add_argument('--out', default='work_dirs/ab_benchmark/result.json')
    parser.add_argument(
        '--malloc',
        choices=['default', 'retain'],
        default='default',
        help='allocator setting of both workers: glibc\'s default, or '
        'freed memory kept for reuse as the tools do on CPU '
        '(mmmaskdino.utils.cpu_allocator)')
    parser.add_argument('--config', help='config file name for every case')
    parser.add_argument('--img-size', type=int, nargs=2, metavar=('H', 'W'))
    parser.add_argument('--batch-size', type=int)
    parser.add_argument(
        '--worker', action='store_true', help=argparse.SUPPRESS)
    parser.add_argument('--root', help=argparse.SUPPRESS)
    parser.add_argument('--case', help=argparse.SUPPRESS)
    parser.add_argument('--weights', help=argparse.SUPPRESS)
    return parser.parse_args(argv)


# ----------------------------------------------------------------- worker


def case_settings(args: argparse.Namespace) -> dict:
    """Settings of ``args.case`` with the command-line overrides."""
    case = dict(CASES[args.case])
    if args.config:
        case['configs'] = (args.config, )
    if args.img_size:
        case['img_size'] = tuple(args.img_size)
    if args.batch_size:
        case['batch_size'] = args.batch_size
    return case


class FixedFeatures(torch.nn.Module):
    """Stand-in backbone that returns the same feature maps for any input."""

    def __init__(self, feats: List[torch.Tensor]) -> None:
        super().__init__()
        self.feats = feats

    def forward(self, inputs: torch.Tensor) -> tuple:
        """Return the fixed maps, (bs, C_i, H / s_i, W / s_i) each."""
        assert inputs.shape[0] == self.feats[0].shape[0]
        return tuple(self.feats)


def backbone_features(backbone: torch.nn.Module,
                      batch_size: int,
                      img_size: Sequence[int],
                      seed: int = 0) -> List[torch.Tensor]:
    """Seeded random non-negative maps of the shapes that ``backbone``
    returns for the padded input of ``img_size``."""
    h, w = (-(-s // PAD_DIVISOR) * PAD_DIVISOR for s in img_size)
    backbone.eval()
    with torch.no_grad():
        shapes = [f.shape for f in backbone(torch.zeros(1, 3, h, w))]
    generator = torch.Generator().manual_seed(seed)
    return [
        torch.randn(batch_size, *shape[1:], generator=generator).relu_()
        for shape in shapes
    ]


def _import_version(root: Path):
    """Import ``mmmaskdino`` from ``root`` (not from the installed tree)."""
    sys.path.insert(0, str(root))
    import mmmaskdino
    found = Path(mmmaskdino.__file__).resolve()
    if root.resolve() not in found.parents:
        raise RuntimeError(f'mmmaskdino imported from {found}, not {root}')
    return mmmaskdino


def _build_case(root: Path, case: dict, weights: Path):
    """Model with the shared weights and fixed features, plus the batch."""
    from mmdet.registry import MODELS
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    folder = root / 'configs' / 'maskdino'
    name = next(c for c in case['configs'] if (folder / c).is_file())
    cfg = Config.fromfile(str(folder / name))
    cfg.model.backbone.init_cfg = None
    if case['test_cfg']:
        cfg.model.test_cfg.update(case['test_cfg'])
    init_default_scope('mmdet')
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    if weights.is_file():
        model.load_state_dict(
            torch.load(weights, map_location='cpu', weights_only=True))
    else:
        model.init_weights()
        torch.save(model.state_dict(), weights)
    model.backbone = FixedFeatures(
        backbone_features(model.backbone, case['batch_size'],
                          case['img_size']))
    batch = synthetic_batch(
        case['batch_size'],
        case['img_size'],
        with_gt=case['train'],
        num_gt=NUM_TRAIN_GT)
    return name, model.train(case['train']), batch


def _step_fn(model, batch: dict, train: bool):
    """One step; returns its check value."""
    if train:

        def step() -> float:
            data = model.data_preprocessor(batch, True)
            losses = model(**data, mode='loss')
            loss, _ = model.parse_losses(losses)
            loss.backward()
            model.zero_grad(set_to_none=True)
            return float(loss.detach())
    else:

        def step() -> float:
            with torch.no_grad():
                sample = model.test_step(batch)[0]
            if 'pred_panoptic_seg' in sample:
                return float(sample.pred_panoptic_seg.sem_seg.double().sum())
            return float(sample.pred_instances.scores.sum())

    return step


def worker(args: argparse.Namespace) -> None:
    """Serve ``step`` requests on stdin; one JSON line per step."""
    torch.set_num_threads(args.threads)
    # from this tree: the baseline may not have the helpers
    sys.path.insert(0, str(REPO / 'mmmaskdino' / 'utils'))
    from cpu_allocator import release_freed_memory, retain_freed_memory
    sys.path.pop(0)
    if args.malloc == 'retain':
        assert retain_freed_memory(), 'glibc mallopt failed'
    root = Path(args.root)
    _import_version(root)
    case = case_settings(args)
    name, model, batch = _build_case(root, case, Path(args.weights))
    step = _step_fn(model, batch, case['train'])
    # Same random stream in both versions (denoising noise, point sampling)
    torch.manual_seed(1)
    step()  # warm-up
    release = release_freed_memory if args.malloc == 'default' else None
    if release:
        # An idle worker keeps only its live tensors: freed heap blocks of
        # its last step would stay resident while the other version's worker
        # steps (two 1024 x 1024 training workers then exceed 23 GiB).
        release()
    print(json.dumps(dict(ready=True, config=name)), flush=True)
    for line in sys.stdin:
        if line.strip() != 'step':
            break
        _reset_cpu_peak()
        base = _status_kib('VmRSS')
        start = time.perf_counter()
        check = step()
        seconds = time.perf_counter() - start
        hwm = _status_kib('VmHWM') / 1024
        if release:
            release()
        print(
            json.dumps(
                dict(
                    seconds=seconds,
                    peak_mib=hwm - base / 1024,
                    process_peak_mib=hwm,
                    check=check)),
            flush=True)


# ----------------------------------------------------------------- parent


def baseline_checkout(rev: str) -> Path:
    """A detached ``git worktree`` of ``rev`` under ``work_dirs``."""
    path = REPO / 'work_dirs' / 'ab_benchmark' / rev
    if not path.is_dir():
        path.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(['git', 'worktree', 'add', '--detach',
                        str(path), rev],
                       cwd=REPO,
                       check=True)
    return path


class Worker:
    """A worker process of one version and case."""

    def __init__(self, root: Path, case: str, weights: Path,
                 args: argparse.Namespace) -> None:
        env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
        overrides = []
        for flag in ('malloc', 'config', 'img_size', 'batch_size'):
            value = getattr(args, flag)
            if value:
                overrides += [f"--{flag.replace('_', '-')}"] + [
                    str(v)
                    for v in (value if isinstance(value, list) else [value])
                ]
        self.proc = subprocess.Popen(
            [
                sys.executable,
                str(Path(__file__).resolve()), '--worker', '--root',
                str(root), '--case', case, '--weights',
                str(weights), '--threads',
                str(args.threads)
            ] + overrides,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
            cwd=root)
        self.info = self._read()

    def _read(self) -> dict:
        for line in self.proc.stdout:
            if line.startswith('{'):
                return json.loads(line)
        raise RuntimeError(f'worker exited with {self.proc.wait()}')

    def step(self) -> dict:
        """Run one timed step in the worker."""
        self.proc.stdin.write('step\n')
        self.proc.stdin.flush()
        return self._read()

    def close(self) -> None:
        """Stop the worker."""
        self.proc.stdin.close()
        self.proc.wait()


def run_case(case: str, roots: Dict[str, Path], args: argparse.Namespace,
             weights: Path) -> Dict[str, object]:
    """Interleave ``args.pairs`` steps of versions A and B of one case."""
    weights.unlink(missing_ok=True)
    workers = {v: Worker(roots[v], case, weights, args) for v in 'AB'}
    steps = dict(A=[], B=[])
    try:
        for i in range(args.pairs):
            for version in ('AB' if i % 2 == 0 else 'BA'):
                steps[version].append(workers[version].step())
    finally:
        for w in workers.values():
            w.close()
    seconds = {v: [s['seconds'] for s in steps[v]] for v in 'AB'}
    peaks = {v: max(s['peak_mib'] for s in steps[v]) for v in 'AB'}
    process_peaks = {
        v: max(s['process_peak_mib'] for s in steps[v])
        for v in 'AB'
    }
    ratios = [a / b for a, b in zip(seconds['A'], seconds['B'])]
    return dict(
        case=case,
        configs={v: workers[v].info['config']
                 for v in 'AB'},
        seconds=seconds,
        median_s={v: statistics.median(seconds[v])
                  for v in 'AB'},
        time_ratio_median=statistics.median(ratios),
        time_ratio_range=[min(ratios), max(ratios)],
        peak_mib=peaks,
        memory_ratio=peaks['A'] / peaks['B'] if peaks['B'] > 0 else None,
        process_peak_mib=process_peaks,
        process_memory_ratio=process_peaks['A'] / process_peaks['B'],
        checks={v: steps[v][-1]['check']
                for v in 'AB'})


def format_table(results: List[Dict[str, object]]) -> str:
    """Markdown table of the cases (A = this tree, B = the baseline)."""
    lines = [
        '| case | A median s | B median s | time A / B (median, range) | '
        'step peak MiB A / B (ratio) | process peak MiB A / B (ratio) | '
        'check A | check B |', '| --- | --- | --- | --- | --- | --- | --- '
        '| --- |'
    ]
    for r in results:
        lo, hi = r['time_ratio_range']
        peak, proc = r['peak_mib'], r['process_peak_mib']
        ratio = '-' if r['memory_ratio'] is None else \
            f"{r['memory_ratio']:.2f}"
        lines.append(
            f"| {r['case']} | {r['median_s']['A']:.2f} | "
            f"{r['median_s']['B']:.2f} | {r['time_ratio_median']:.2f} "
            f"({lo:.2f}-{hi:.2f}) | {peak['A']:.0f} / {peak['B']:.0f} "
            f"({ratio}) | {proc['A']:.0f} / {proc['B']:.0f} "
            f"({r['process_memory_ratio']:.2f}) | "
            f"{r['checks']['A']:.6g} | {r['checks']['B']:.6g} |")
    return '\n'.join(lines)


def main(argv: Optional[Sequence[str]] = None) -> List[Dict[str, object]]:
    args = parse_args(argv)
    if args.worker:
        worker(args)
        return []
    baseline = Path(args.baseline_root) if args.baseline_root else \
        baseline_checkout(args.compare_to)
    roots = dict(A=REPO, B=baseline)
    out = Path(args.out).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    before = machine_info()
    results = []
    for case in args.cases:
        results.append(
            run_case(case, roots, args, out.with_suffix('.weights.pth')))
        print(format_table(results[-1:]).splitlines()[-1], flush=True)
    load_after = [round(x, 2) for x in os.getloadavg()]
    version_b = args.baseline_root or args.compare_to
    print(f'\nA = {REPO}, B = {baseline} ({version_b}); {args.threads} '
          f'thread(s) per worker, malloc {args.malloc}; load average before '
          f"{before['load_average']}, after {load_after}\n")
    print(format_table(results))
    out.write_text(
        json.dumps(
            dict(
                machine=before,
                load_average_after=load_after,
                baseline=str(baseline),
                malloc=args.malloc,
                results=results),
            indent=2))
    print(f'\nsaved {out}')
    return results


if __name__ == '__main__':
    main()
