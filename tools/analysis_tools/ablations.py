# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
"""Ablations of Mask DINO's components on the bundled data.

::

    python tools/analysis_tools/ablations.py [--iters 400] [--seeds 0 1]
        [--work-dir work_dirs/ablations] [--only NAME ...] [--skip-train]
        [--data-root DIR]

The paper's Tables 9, 11, 13 and 15 at the scale of the bundled shapes data:
Mask DINO as shipped
(``configs/maskdino/maskdino_r18-tiny_1xb4-2.2k_shapes.py``) and, one at a
time, with a component removed (or, for the mask-enhanced anchors, which that
config leaves off, added). Every variant trains for the
same ``--iters`` iterations (the shipped schedule shortened, as in
``convergence.py``) with each seed and is evaluated once on the val split.

``--only`` trains the named variants; the report covers every variant with
results in ``WORK_DIR``. Writes ``WORK_DIR/ablations.json`` (AP per variant and
seed),
``WORK_DIR/ablations.md`` (mean and spread of segm and bbox AP, and whether
the change moves AP the way the paper reports) and ``WORK_DIR/ablations.png``.
"""
import argparse
import json
import statistics
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

from mmengine.config import Config

from mmmaskdino.utils.study_utils import (REPO_ROOT, collect_metrics,
                                          train_in_subprocess)
from mmmaskdino.utils.tool_utils import redirect_data_root

BASE_CONFIG = 'configs/maskdino/maskdino_r18-tiny_1xb4-2.2k_shapes.py'
METRICS = ('coco/segm_mAP', 'coco/bbox_mAP')
BOX_COSTS = ('NormalizedBBoxL1Cost', 'NormalizedGIoUCost')
MASK_COSTS = ('FastCrossEntropyLossCost', 'DiceCost')


def _keep_costs(cfg: Config, dropped: Sequence[str]) -> None:
    """Matching without the ``dropped`` cost types."""
    assigner = cfg.model.panoptic_head.criterion.assigner
    assigner.match_costs = [
        c for c in assigner.match_costs if c['type'] not in dropped
    ]


def box_only_dn(cfg: Config) -> None:
    """Denoising without the mask terms (the paper's mask denoising off)."""
    cfg.model.panoptic_head.criterion.dn_mask_losses = False


def mask_enhanced_anchors(cfg: Config) -> None:
    """Anchors from the query-selection masks (``mask2box``)."""
    cfg.model.panoptic_head.predictor.initialize_box_type = 'mask2box'


def mask_only_matching(cfg: Config) -> None:
    """Hungarian matching on class and mask costs only."""
    _keep_costs(cfg, BOX_COSTS)


def box_only_matching(cfg: Config) -> None:
    """Hungarian matching on class and box costs only."""
    _keep_costs(cfg, MASK_COSTS)


def learned_queries(cfg: Config) -> None:
    """No unified query selection: learned content queries and anchors."""
    cfg.model.panoptic_head.predictor.update(
        two_stage=False, initialize_box_type='no')


def detection_only(cfg: Config) -> None:
    """Box training only: no mask losses and no mask costs."""
    criterion = cfg.model.panoptic_head.criterion
    criterion.loss_mask.loss_weight = 0.0
    criterion.loss_dice.loss_weight = 0.0
    _keep_costs(cfg, MASK_COSTS)


def segmentation_only(cfg: Config) -> None:
    """Mask training only: no box losses and no box costs."""
    criterion = cfg.model.panoptic_head.criterion
    criterion.loss_bbox.loss_weight = 0.0
    criterion.loss_iou.loss_weight = 0.0
    _keep_costs(cfg, BOX_COSTS)


# name -> (config change, paper's expected sign of the AP change vs shipped,
# the AP that sign is about)
VARIANTS: Dict[str, tuple] = {
    'shipped': (None, 0, None),
    'box-only denoising': (box_only_dn, -1, 'coco/segm_mAP'),
    'mask-enhanced anchors on': (mask_enhanced_anchors, +1, 'coco/bbox_mAP'),
    'mask-only matching': (mask_only_matching, -1, 'coco/bbox_mAP'),
    'box-only matching': (box_only_matching, -1, 'coco/segm_mAP'),
    'learned queries': (learned_queries, -1, 'coco/segm_mAP'),
    'detection only': (detection_only, -1, 'coco/bbox_mAP'),
    'segmentation only': (segmentation_only, -1, 'coco/segm_mAP'),
}


def slug(name: str) -> str:
    """Folder name of a variant."""
    return name.replace(' ', '_')


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Ablations of Mask DINO')
    parser.add_argument(
        '--iters', type=int, default=400, help='training iterations per run')
    parser.add_argument(
        '--seeds', type=int, nargs='+', default=[0, 1], help='random seeds')
    parser.add_argument('--work-dir', default='work_dirs/ablations')
    parser.add_argument(
        '--data-root', help='the shapes data elsewhere than data/shapes/')
    parser.add_argument(
        '--only', nargs='+', choices=list(VARIANTS), help='these variants')
    parser.add_argument(
        '--skip-train',
        action='store_true',
        help='only collect the results of earlier runs')
    return parser.parse_args(argv)


def variant_config(name: str,
                   iters: int,
                   seed: int,
                   data_root: Optional[str] = None) -> Config:
    """The shipped config with the change of ``name``, ``iters`` iterations
    (the shipped multi-step schedule scaled to them), one validation at the
    end, and ``seed``."""
    cfg = Config.fromfile(str(REPO_ROOT / BASE_CONFIG))
    if data_root is not None:
        redirect_data_root(cfg, data_root)
    change: Optional[Callable[[Config], None]] = VARIANTS[name][0]
    if change is not None:
        change(cfg)
    cfg.param_scheduler.update(end=iters, milestones=[int(iters * 0.85)])
    cfg.train_cfg.update(max_iters=iters, val_interval=iters)
    cfg.default_hooks.checkpoint.update(interval=iters)
    cfg.default_hooks.logger.update(interval=50)
    cfg.randomness = dict(seed=seed)
    return cfg


def summarise(results: Dict[str, List[dict]]) -> List[dict]:
    """Mean and spread (max - min) of each metric per variant, whether the
    variant moves AP the way the paper reports, and whether the change of
    the mean exceeds the seed noise (half the spread of the variant plus
    half that of the shipped config)."""
    rows = []
    shipped = results.get('shipped')
    for name, runs in results.items():
        row = dict(variant=name, seeds=len(runs))
        for key in METRICS:
            values = [r[key] for r in runs if r.get(key) is not None]
            row[key] = (statistics.mean(values),
                        max(values) - min(values)) if values else None
        sign, key = VARIANTS[name][1:]
        if sign and shipped and row.get(key) is not None:
            base = statistics.mean(r[key] for r in shipped)
            row['paper_direction'] = (row[key][0] - base) * sign > 0
        if name != 'shipped' and shipped:
            row['beyond_noise'] = {}
            for metric in METRICS:
                values = [r[metric] for r in shipped]
                if row.get(metric) is None or None in values:
                    continue
                change = row[metric][0] - statistics.mean(values)
                noise = (row[metric][1] + max(values) - min(values)) / 2
                row['beyond_noise'][metric] = abs(change) > noise
        rows.append(row)
    return rows


def markdown_table(rows: List[dict]) -> str:
    """The table of :func:`summarise`."""
    lines = [
        '| variant | seeds | segm AP | bbox AP | paper\'s direction '
        '| change beyond seed noise (segm, bbox) |',
        '| --- | --- | --- | --- | --- | --- |'
    ]
    for row in rows:
        cells = []
        for key in METRICS:
            value = row.get(key)
            cells.append('–' if value is None else
                         f'{100 * value[0]:.1f} ± {100 * value[1] / 2:.1f}')
        sign, key = VARIANTS[row['variant']][1:]
        if 'paper_direction' in row:
            arrow = 'down' if sign < 0 else 'up'
            verdict = (f'{"yes" if row["paper_direction"] else "no"} '
                       f'({key.split("/")[1][:4]} AP should go {arrow})')
        else:
            verdict = '–'
        if row.get('beyond_noise'):
            noise = ', '.join('yes' if row['beyond_noise'].get(m) else 'no'
                              for m in METRICS)
        else:
            noise = '–'
        lines.append(f'| {row["variant"]} | {row["seeds"]} | ' +
                     ' | '.join(cells) + f' | {verdict} | {noise} |')
    return '\n'.join(lines)


def plot(rows: List[dict], out: Path) -> None:
    """Bars of mean segm and bbox AP per variant, with the spread."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True)
    names = [row['variant'] for row in rows]
    for ax, key in zip(axes, METRICS):
        means = [100 * row[key][0] if row.get(key) else 0 for row in rows]
        spreads = [
            100 * row[key][1] / 2 if row.get(key) else 0 for row in rows
        ]
        ax.barh(names, means, xerr=spreads, capsize=3)
        ax.set_xlabel(key.split('/')[1].replace('_mAP', ' AP'))
        ax.invert_yaxis()
        ax.grid(axis='x', alpha=0.3)
    fig.suptitle('Ablations on the bundled shapes val split (mean of the '
                 'seeds, bars: half the spread)')
    fig.tight_layout()
    fig.savefig(str(out), dpi=100)
    plt.close(fig)


def main(argv: Optional[Sequence[str]] = None) -> List[dict]:
    args = parse_args(argv)
    root = Path(args.work_dir)
    trained = args.only or list(VARIANTS)
    results: Dict[str, List[dict]] = {}
    for name in VARIANTS:
        runs = []
        for seed in args.seeds:
            work_dir = root / slug(name) / f'seed{seed}'
            timing = work_dir / 'seconds.json'
            if name in trained and not args.skip_train:
                seconds = train_in_subprocess(
                    variant_config(name, args.iters, seed, args.data_root),
                    work_dir)
                timing.write_text(json.dumps(seconds))
            points = collect_metrics(work_dir, METRICS)
            if points:
                seconds = json.loads(
                    timing.read_text()) if timing.exists() else None
                runs.append(
                    dict(seed=seed, seconds=seconds, **points[max(points)]))
        if runs:
            results[name] = runs
    if 'shipped' not in results:
        print('no results of the shipped config: the table cannot compare')
    root.mkdir(parents=True, exist_ok=True)
    with open(root / 'ablations.json', 'w') as f:
        json.dump(dict(iters=args.iters, results=results), f, indent=1)
    rows = summarise(results)
    table = markdown_table(rows)
    (root / 'ablations.md').write_text(table + '\n')
    plot(rows, root / 'ablations.png')
    print(table)
    return rows


if __name__ == '__main__':
    main()
