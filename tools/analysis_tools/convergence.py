# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
"""Convergence study: Mask DINO vs MMDetection's Mask2Former and DINO.

::

    python tools/analysis_tools/convergence.py [--iters 2000] [--evals 4]
        [--hidden 256] [--seeds 0 1] [--jobs 2] [--time-iters 6]
        [--work-dir work_dirs/convergence] [--data-root DIR]
        [--only NAME ...] [--skip-train]

The three models are trained on the bundled shapes data with the same
backbone (ResNet-18 from scratch), hidden size ``--hidden`` (feed-forward
width 4x), 2 encoder layers, 3 decoder layers, 30 queries, 8 heads, 1024
sampled mask points (the two mask models), image size 128, batch 4,
optimizer (that of the Mask DINO tiny config: AdamW, weight decay 0.05,
gradient clipping 0.01, its learning rate divided by 10 at 85 % of
``--iters``), data pipeline and seeds. They are evaluated on the val split
every ``iters / evals`` iterations, once per seed of ``--seeds``; ``--jobs``
runs that many trainings at once (give each ``OMP_NUM_THREADS=1``).

Mask DINO is ``configs/maskdino/maskdino_r18-tiny_1xb4-2.2k_shapes.py`` with
its hidden size set to ``--hidden``. The peers are generated here from
MMDetection's own configs
(``mmdet::mask2former/mask2former_r50_8xb2-lsj-50e_coco.py`` and
``mmdet::dino/dino-4scale_r50_8xb2-12e_coco.py``) by shrinking the model to
those sizes and copying data, schedule and optimizer from the Mask DINO
config; every generated config is written to
``WORK_DIR/NAME/seedS/config.py``. Remaining differences: losses, loss
weights and matching costs are each model's own; Mask2Former uses 3 feature
levels (the others 4) and softmax classification; DINO predicts boxes only
(no segm AP) and always has hidden size 256 (the only one mmdet 3.3's DINO
decoder supports), so ``--hidden 256`` makes the three equal.

After training, ``--time-iters N`` times N training iterations of each
model (``benchmark.py --task train``, one thread, after 2 warm-up
iterations) one after the other, with the load average before and after:
run it when nothing else runs on the machine.

Writes ``WORK_DIR/convergence.json`` (AP per model, seed and evaluation
point; seconds per iteration), ``WORK_DIR/convergence.md`` (mean and half
the spread over the seeds) and ``WORK_DIR/convergence.png`` (segm AP and
bbox AP against iterations, mean line and min-max band).
"""
import argparse
import copy
import json
import os
import statistics
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

from mmengine.config import Config, ConfigDict
from mmengine.hub import get_config

from mmmaskdino.utils.study_utils import (REPO_ROOT, collect_metrics,
                                          train_in_subprocess)
from mmmaskdino.utils.tool_utils import redirect_data_root

MASKDINO_CONFIG = 'configs/maskdino/maskdino_r18-tiny_1xb4-2.2k_shapes.py'
MASK2FORMER_CONFIG = 'mmdet::mask2former/mask2former_r50_8xb2-lsj-50e_coco.py'
DINO_CONFIG = 'mmdet::dino/dino-4scale_r50_8xb2-12e_coco.py'

# Sizes shared by the three models (those of the Mask DINO tiny config).
HEADS, FFN_RATIO, DINO_DIMS = 8, 4, 256
ENCODER_LAYERS, DECODER_LAYERS, QUERIES, POINTS = 2, 3, 30, 1024
R18_CHANNELS = [64, 128, 256, 512]
METRICS = ('coco/segm_mAP', 'coco/bbox_mAP')
# Results of one model: seed -> iteration -> metric -> value.
SeedPoints = Dict[int, Dict[int, Dict[str, float]]]


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Convergence study')
    parser.add_argument(
        '--iters',
        type=int,
        default=2000,
        help='training iterations per model')
    parser.add_argument(
        '--evals',
        type=int,
        default=4,
        help='evaluations on the val split per model')
    parser.add_argument(
        '--hidden',
        type=int,
        default=DINO_DIMS,
        help='hidden size of Mask DINO and Mask2Former (DINO: always 256)')
    parser.add_argument(
        '--seeds', type=int, nargs='+', default=[0, 1], help='random seeds')
    parser.add_argument(
        '--jobs', type=int, default=1, help='trainings run at once')
    parser.add_argument(
        '--time-iters',
        type=int,
        default=0,
        help='time this many training iterations per model afterwards')
    parser.add_argument('--work-dir', default='work_dirs/convergence')
    parser.add_argument(
        '--data-root', help='the shapes data elsewhere than data/shapes/')
    parser.add_argument(
        '--only',
        nargs='+',
        choices=list(BUILDERS),
        help='train only these models')
    parser.add_argument(
        '--skip-train',
        action='store_true',
        help='only collect the results of earlier runs')
    return parser.parse_args(argv)


def _r18_backbone(backbone: ConfigDict, out_indices: tuple) -> None:
    """ResNet-18 trained from scratch with plain BN, as in Mask DINO tiny."""
    backbone.update(
        depth=18,
        out_indices=out_indices,
        frozen_stages=-1,
        norm_cfg=dict(type='BN', requires_grad=True),
        norm_eval=False,
        init_cfg=None)


def _shrink_ffn(layer_cfg: ConfigDict, dims: int) -> None:
    """Hidden size and feed-forward width of a transformer layer config."""
    layer_cfg.ffn_cfg.update(
        embed_dims=dims, feedforward_channels=FFN_RATIO * dims)


def build_maskdino(ref: Config, dims: int) -> Config:
    """The Mask DINO tiny config with hidden size ``dims``."""
    cfg = copy.deepcopy(ref)
    head = cfg.model.panoptic_head
    head.pixel_decoder.update(
        feat_channels=dims, mask_dim=dims, ffn_channels=FFN_RATIO * dims)
    head.predictor.update(
        hidden_dim=dims, mask_dim=dims, ffn_dim=FFN_RATIO * dims)
    return cfg


def build_mask2former(ref: Config, dims: int) -> Config:
    """MMDetection's Mask2Former (instance) shrunk to the shared sizes."""
    cfg = get_config(MASK2FORMER_CONFIG)
    model = cfg.model
    classes = ref.model.panoptic_head.num_things_classes
    _r18_backbone(model.backbone, (0, 1, 2, 3))
    model.data_preprocessor.batch_augments[0].size = (128, 128)
    head = model.panoptic_head
    head.update(
        in_channels=R18_CHANNELS,
        feat_channels=dims,
        out_channels=dims,
        num_things_classes=classes,
        num_stuff_classes=0,
        num_queries=QUERIES)
    head.loss_cls.class_weight = [1.0] * classes + [0.1]
    head.positional_encoding.num_feats = dims // 2
    pixel = head.pixel_decoder
    pixel.positional_encoding.num_feats = dims // 2
    pixel.encoder.num_layers = ENCODER_LAYERS
    pixel.encoder.layer_cfg.self_attn_cfg.update(
        embed_dims=dims, num_heads=HEADS)
    _shrink_ffn(pixel.encoder.layer_cfg, dims)
    decoder = head.transformer_decoder
    decoder.num_layers = DECODER_LAYERS
    decoder.layer_cfg.self_attn_cfg.update(embed_dims=dims, num_heads=HEADS)
    decoder.layer_cfg.cross_attn_cfg.update(embed_dims=dims, num_heads=HEADS)
    _shrink_ffn(decoder.layer_cfg, dims)
    model.panoptic_fusion_head.update(
        num_things_classes=classes, num_stuff_classes=0)
    model.train_cfg.num_points = POINTS
    return cfg


def build_dino(ref: Config, dims: int) -> Config:
    """MMDetection's DINO (4 scales) shrunk to the shared sizes.

    The hidden size stays 256 whatever ``dims``: mmdet 3.3's
    ``DinoTransformerDecoder`` feeds a fixed 512-d sine embedding (4 x 128)
    to ``ref_point_head``, which is ``MLP(2 * embed_dims, ...)``, so it only
    runs with ``embed_dims=256``.
    """
    cfg = get_config(DINO_CONFIG)
    model = cfg.model
    model.num_queries = QUERIES
    _r18_backbone(model.backbone, (1, 2, 3))
    model.neck.in_channels = R18_CHANNELS[1:]
    model.encoder.num_layers = ENCODER_LAYERS
    model.encoder.layer_cfg.self_attn_cfg.num_heads = HEADS
    model.decoder.num_layers = DECODER_LAYERS
    for layer_cfg in (model.encoder.layer_cfg, model.decoder.layer_cfg):
        layer_cfg.ffn_cfg.feedforward_channels = FFN_RATIO * DINO_DIMS
    model.bbox_head.num_classes = ref.model.panoptic_head.num_things_classes
    model.dn_cfg.group_cfg.num_dn_queries = (
        ref.model.panoptic_head.predictor.denoising.dn_num)
    model.test_cfg.max_per_img = ref.model.test_cfg.max_per_image
    cfg.val_evaluator = copy.deepcopy(ref.val_evaluator)
    cfg.val_evaluator.metric = ['bbox']
    cfg.test_evaluator = cfg.val_evaluator
    return cfg


BUILDERS: Dict[str, Callable[[Config, int], Config]] = {
    'maskdino': build_maskdino,
    'mask2former': build_mask2former,
    'dino': build_dino,
}


def study_config(name: str,
                 iters: int,
                 evals: int,
                 hidden: int = DINO_DIMS,
                 seed: int = 0,
                 data_root: Optional[str] = None) -> Config:
    """The config of one model of the study, with the shared schedule."""
    ref = Config.fromfile(str(REPO_ROOT / MASKDINO_CONFIG))
    if data_root is not None:
        redirect_data_root(ref, data_root)
    cfg = BUILDERS[name](ref, hidden)
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader',
                'optim_wrapper'):
        cfg[key] = copy.deepcopy(ref[key])
    if name != 'dino':
        cfg.val_evaluator = copy.deepcopy(ref.val_evaluator)
        cfg.test_evaluator = cfg.val_evaluator
    cfg.param_scheduler = [
        dict(
            type='MultiStepLR',
            begin=0,
            end=iters,
            by_epoch=False,
            milestones=[int(iters * 0.85)],
            gamma=0.1)
    ]
    interval = iters // evals
    cfg.train_cfg = dict(
        type='IterBasedTrainLoop', max_iters=iters, val_interval=interval)
    cfg.val_cfg = dict(type='ValLoop')
    cfg.test_cfg = dict(type='TestLoop')
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=50)
    cfg.default_hooks.checkpoint = dict(
        type='CheckpointHook', interval=iters, by_epoch=False)
    cfg.log_processor = dict(
        type='LogProcessor', window_size=50, by_epoch=False)
    cfg.randomness = dict(seed=seed)
    cfg.data_root = ref.data_root
    return cfg


def summarise(results: Dict[str, SeedPoints]) -> Dict[str, Dict[int, dict]]:
    """Per model, iteration and metric: mean, min and max over the seeds.

    Returns:
        dict: ``{model: {iteration: {metric: (mean, min, max, n)}}}``.
    """
    summary: Dict[str, Dict[int, dict]] = {}
    for name, seeds in results.items():
        steps = sorted({s for points in seeds.values() for s in points})
        summary[name] = {}
        for step in steps:
            cells = {}
            for key in METRICS:
                values = [
                    points[step][key] for points in seeds.values()
                    if key in points.get(step, {})
                ]
                if values:
                    cells[key] = (statistics.mean(values), min(values),
                                  max(values), len(values))
            summary[name][step] = cells
    return summary


def markdown_table(summary: Dict[str, Dict[int, dict]],
                   seconds: Optional[Dict[str, float]] = None) -> str:
    """Segm / bbox AP (mean ± half the spread over the seeds) per model and
    iteration, with the seconds per iteration when timed."""
    seconds = seconds or {}
    steps = sorted({s for points in summary.values() for s in points})
    lines = [
        '| model | AP | seeds | ' + ' | '.join(f'iter {s}' for s in steps) +
        ' | s/iter (alone) |',
        '| --- | --- | --- |' + ' --- |' * (len(steps) + 1)
    ]
    for name, points in summary.items():
        for key in METRICS:
            cells = [points.get(s, {}).get(key) for s in steps]
            if all(c is None for c in cells):
                continue
            seeds = max(c[3] for c in cells if c is not None)
            text = [
                '–' if c is None else
                f'{100 * c[0]:.1f} ± {50 * (c[2] - c[1]):.1f}' for c in cells
            ]
            speed = f'{seconds[name]:.3f}' if name in seconds else '–'
            lines.append(f'| {name} | {key.split("/")[1][:4]} | {seeds} | ' +
                         ' | '.join(text) + f' | {speed} |')
    return '\n'.join(lines)


def plot(summary: Dict[str, Dict[int, dict]], out: Path, hidden: int) -> None:
    """Segm AP and bbox AP against iterations: mean over the seeds and the
    band between the lowest and highest seed, one colour per model."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key in zip(axes, METRICS):
        for name, points in summary.items():
            steps = [s for s in sorted(points) if key in points[s]]
            if not steps:
                continue
            mean, low, high = ([100 * points[s][key][i] for s in steps]
                               for i in range(3))
            line, = ax.plot(steps, mean, marker='o', label=name)
            ax.fill_between(
                steps, low, high, color=line.get_color(), alpha=0.2)
        ax.set_xlabel('iteration')
        ax.set_ylabel(key.split('/')[1].replace('_mAP', ' AP'))
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(f'Bundled shapes val split, ResNet-18 from scratch, hidden '
                 f'{hidden}, batch 4, 128 px (mean and range of the seeds)')
    fig.tight_layout()
    fig.savefig(str(out), dpi=100)
    plt.close(fig)


def time_training(config: Path, iters: int, out: Path) -> dict:
    """Median seconds per training iteration of ``config`` by
    ``benchmark.py`` in a fresh one-thread process, with the load average
    before and after."""
    load_before = os.getloadavg()
    env = dict(os.environ, OMP_NUM_THREADS='1')
    subprocess.run([
        sys.executable,
        str(REPO_ROOT / 'tools' / 'analysis_tools' / 'benchmark.py'),
        str(config), '--task', 'train', '--img-size', '128', '128',
        '--batch-size', '4', '--warmup', '2', '--iters',
        str(iters), '--no-flops', '--out',
        str(out)
    ],
                   cwd=REPO_ROOT,
                   env=env,
                   check=True)
    result = json.loads(out.read_text())['results'][0]
    return dict(
        seconds_per_iter=result['latency_median_s'],
        load_before=load_before,
        load_after=os.getloadavg())


def train_all(runs: List[tuple], root: Path, args: argparse.Namespace) -> None:
    """Train every ``(model, seed)`` of ``runs``, ``args.jobs`` at a time."""

    def train(run: tuple) -> float:
        name, seed = run
        cfg = study_config(name, args.iters, args.evals, args.hidden, seed,
                           args.data_root)
        return train_in_subprocess(cfg, root / name / f'seed{seed}')

    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        list(pool.map(train, runs))


def main(argv: Optional[Sequence[str]] = None) -> dict:
    args = parse_args(argv)
    root = Path(args.work_dir)
    names = args.only or list(BUILDERS)
    if not args.skip_train:
        train_all([(n, s) for n in names for s in args.seeds], root, args)
    results = {
        name: {
            seed: points
            for seed in args.seeds
            if (points := collect_metrics(root / name /
                                          f'seed{seed}', METRICS))
        }
        for name in BUILDERS
    }
    results = {name: seeds for name, seeds in results.items() if seeds}
    timings = {}
    if args.time_iters:
        for name in results:
            seed = min(results[name])
            folder = root / name / f'seed{seed}'
            timings[name] = time_training(folder / 'config.py',
                                          args.time_iters,
                                          folder / 'speed.json')
    summary = summarise(results)
    root.mkdir(parents=True, exist_ok=True)
    report = dict(
        iters=args.iters,
        hidden=args.hidden,
        seeds=args.seeds,
        results={
            n: {
                str(seed): {
                    str(s): v
                    for s, v in p.items()
                }
                for seed, p in seeds.items()
            }
            for n, seeds in results.items()
        },
        timings=timings)
    with open(root / 'convergence.json', 'w') as f:
        json.dump(report, f, indent=2)
    table = markdown_table(summary, {
        n: t['seconds_per_iter']
        for n, t in timings.items()
    })
    (root / 'convergence.md').write_text(table + '\n')
    plot(summary, root / 'convergence.png', args.hidden)
    print(table)
    return report


if __name__ == '__main__':
    main()
