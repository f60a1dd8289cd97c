# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
"""Convergence study: Mask DINO vs MMDetection's Mask2Former and DINO.

::

    python tools/analysis_tools/convergence.py [--iters 800] [--evals 4]
        [--work-dir work_dirs/convergence] [--only NAME ...] [--skip-train]

The three models are trained on the bundled shapes data with the same
backbone (ResNet-18 from scratch), hidden size 64, 2 encoder layers,
3 decoder layers, 30 queries, 8 heads, 1024 sampled mask points (the two mask
models), image size 128, batch 4, optimizer (AdamW 2e-4, weight decay 0.05,
gradient clipping 0.01, the Mask DINO tiny schedule shortened to ``--iters``),
data pipeline and seed. They are evaluated on the val split every
``iters / evals`` iterations.

Mask DINO is ``configs/maskdino/maskdino_r18-tiny_1xb4-2k_shapes.py``. The
peers are generated here from MMDetection's own configs
(``mmdet::mask2former/mask2former_r50_8xb2-lsj-50e_coco.py`` and
``mmdet::dino/dino-4scale_r50_8xb2-12e_coco.py``) by shrinking the model to
those sizes and copying data, schedule and optimizer from the Mask DINO
config; every generated config is written to ``WORK_DIR/NAME/config.py``.
Remaining differences: losses, loss weights and matching costs are each
model's own; Mask2Former uses 3 feature levels (the others 4) and softmax
classification; DINO predicts boxes only (no segm AP) and keeps hidden size
256 (the only one mmdet 3.3's DINO decoder supports). On a small shared CPU
run it with ``OMP_NUM_THREADS=1``.

Writes ``WORK_DIR/convergence.json`` (AP per model and evaluation point),
``WORK_DIR/convergence.md`` (the table) and ``WORK_DIR/convergence.png``
(segm AP and bbox AP against iterations).
"""
import argparse
import copy
import json
from pathlib import Path
from typing import Callable, Dict

from mmengine.config import Config, ConfigDict
from mmengine.hub import get_config

from mmmaskdino.utils.study_utils import (REPO_ROOT, collect_metrics,
                                          train_in_subprocess)

MASKDINO_CONFIG = 'configs/maskdino/maskdino_r18-tiny_1xb4-2k_shapes.py'
MASK2FORMER_CONFIG = 'mmdet::mask2former/mask2former_r50_8xb2-lsj-50e_coco.py'
DINO_CONFIG = 'mmdet::dino/dino-4scale_r50_8xb2-12e_coco.py'

# Sizes shared by the three models (those of the Mask DINO tiny config).
DIMS, FFN, HEADS = 64, 256, 8
ENCODER_LAYERS, DECODER_LAYERS, QUERIES, POINTS = 2, 3, 30, 1024
R18_CHANNELS = [64, 128, 256, 512]
METRICS = ('coco/segm_mAP', 'coco/bbox_mAP')


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Convergence study')
    parser.add_argument(
        '--iters', type=int, default=800, help='training iterations per model')
    parser.add_argument(
        '--evals',
        type=int,
        default=4,
        help='evaluations on the val split per model')
    parser.add_argument('--work-dir', default='work_dirs/convergence')
    parser.add_argument(
        '--only',
        nargs='+',
        choices=list(BUILDERS),
        help='train only these models')
    parser.add_argument(
        '--skip-train',
        action='store_true',
        help='only collect the results of earlier runs')
    return parser.parse_args()


def _r18_backbone(backbone: ConfigDict, out_indices: tuple) -> None:
    """ResNet-18 trained from scratch with plain BN, as in Mask DINO tiny."""
    backbone.update(
        depth=18,
        out_indices=out_indices,
        frozen_stages=-1,
        norm_cfg=dict(type='BN', requires_grad=True),
        norm_eval=False,
        init_cfg=None)


def _shrink_ffn(layer_cfg: ConfigDict) -> None:
    """Hidden size and feed-forward width of a transformer layer config."""
    layer_cfg.ffn_cfg.update(embed_dims=DIMS, feedforward_channels=FFN)


def build_maskdino(ref: Config) -> Config:
    """The Mask DINO tiny config itself."""
    return copy.deepcopy(ref)


def build_mask2former(ref: Config) -> Config:
    """MMDetection's Mask2Former (instance) shrunk to the shared sizes."""
    cfg = get_config(MASK2FORMER_CONFIG)
    model = cfg.model
    classes = ref.model.panoptic_head.num_things_classes
    _r18_backbone(model.backbone, (0, 1, 2, 3))
    model.data_preprocessor.batch_augments[0].size = (128, 128)
    head = model.panoptic_head
    head.update(
        in_channels=R18_CHANNELS,
        feat_channels=DIMS,
        out_channels=DIMS,
        num_things_classes=classes,
        num_stuff_classes=0,
        num_queries=QUERIES)
    head.loss_cls.class_weight = [1.0] * classes + [0.1]
    head.positional_encoding.num_feats = DIMS // 2
    pixel = head.pixel_decoder
    pixel.positional_encoding.num_feats = DIMS // 2
    pixel.encoder.num_layers = ENCODER_LAYERS
    pixel.encoder.layer_cfg.self_attn_cfg.update(
        embed_dims=DIMS, num_heads=HEADS)
    _shrink_ffn(pixel.encoder.layer_cfg)
    decoder = head.transformer_decoder
    decoder.num_layers = DECODER_LAYERS
    decoder.layer_cfg.self_attn_cfg.update(embed_dims=DIMS, num_heads=HEADS)
    decoder.layer_cfg.cross_attn_cfg.update(embed_dims=DIMS, num_heads=HEADS)
    _shrink_ffn(decoder.layer_cfg)
    model.panoptic_fusion_head.update(
        num_things_classes=classes, num_stuff_classes=0)
    model.train_cfg.num_points = POINTS
    return cfg


def build_dino(ref: Config) -> Config:
    """MMDetection's DINO (4 scales) shrunk to the shared sizes.

    The hidden size stays 256: mmdet 3.3's ``DinoTransformerDecoder`` feeds
    a fixed 512-d sine embedding (4 x 128) to ``ref_point_head``, which is
    ``MLP(2 * embed_dims, ...)``, so it only runs with ``embed_dims=256``.
    """
    cfg = get_config(DINO_CONFIG)
    model = cfg.model
    model.num_queries = QUERIES
    _r18_backbone(model.backbone, (1, 2, 3))
    model.neck.in_channels = R18_CHANNELS[1:]
    model.encoder.num_layers = ENCODER_LAYERS
    model.encoder.layer_cfg.self_attn_cfg.num_heads = HEADS
    model.encoder.layer_cfg.ffn_cfg.feedforward_channels = FFN
    model.decoder.num_layers = DECODER_LAYERS
    model.decoder.layer_cfg.ffn_cfg.feedforward_channels = FFN
    model.bbox_head.num_classes = ref.model.panoptic_head.num_things_classes
    model.dn_cfg.group_cfg.num_dn_queries = (
        ref.model.panoptic_head.predictor.denoising.dn_num)
    model.test_cfg.max_per_img = ref.model.test_cfg.max_per_image
    cfg.val_evaluator = copy.deepcopy(ref.val_evaluator)
    cfg.val_evaluator.metric = ['bbox']
    cfg.test_evaluator = cfg.val_evaluator
    return cfg


BUILDERS: Dict[str, Callable[[Config], Config]] = {
    'maskdino': build_maskdino,
    'mask2former': build_mask2former,
    'dino': build_dino,
}


def study_config(name: str, iters: int, evals: int) -> Config:
    """The config of one model of the study, with the shared schedule."""
    ref = Config.fromfile(str(REPO_ROOT / MASKDINO_CONFIG))
    cfg = BUILDERS[name](ref)
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
    cfg.randomness = dict(seed=0)
    cfg.data_root = ref.data_root
    return cfg


def markdown_table(results: Dict[str, Dict[int, Dict[str, float]]]) -> str:
    """Segm / bbox AP per model (rows) and iteration (columns)."""
    steps = sorted({s for points in results.values() for s in points})
    lines = [
        '| model | AP | ' + ' | '.join(f'iter {s}' for s in steps) + ' |',
        '| --- | --- |' + ' --- |' * len(steps)
    ]
    for name, points in results.items():
        for key in METRICS:
            cells = [points.get(s, {}).get(key) for s in steps]
            if all(c is None for c in cells):
                continue
            text = ['–' if c is None else f'{100 * c:.1f}' for c in cells]
            lines.append(f'| {name} | {key.split("/")[1][:4]} | ' +
                         ' | '.join(text) + ' |')
    return '\n'.join(lines)


def plot(results: Dict[str, Dict[int, Dict[str, float]]], out: Path) -> None:
    """Segm AP and bbox AP against iterations, one line per model."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key in zip(axes, METRICS):
        for name, points in results.items():
            steps = [s for s in sorted(points) if key in points[s]]
            if steps:
                ax.plot(
                    steps, [100 * points[s][key] for s in steps],
                    marker='o',
                    label=name)
        ax.set_xlabel('iteration')
        ax.set_ylabel(key.split('/')[1].replace('_mAP', ' AP'))
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle('Bundled shapes val split, ResNet-18 from scratch, '
                 'batch 4, 128 px')
    fig.tight_layout()
    fig.savefig(str(out), dpi=100)
    plt.close(fig)


def main() -> None:
    args = parse_args()
    root = Path(args.work_dir)
    names = args.only or list(BUILDERS)
    if not args.skip_train:
        for name in names:
            train_in_subprocess(
                study_config(name, args.iters, args.evals), root / name)
    results = {
        name: collect_metrics(root / name, METRICS)
        for name in BUILDERS
    }
    results = {name: points for name, points in results.items() if points}
    root.mkdir(parents=True, exist_ok=True)
    with open(root / 'convergence.json', 'w') as f:
        json.dump(
            {
                n: {
                    str(s): v
                    for s, v in p.items()
                }
                for n, p in results.items()
            },
            f,
            indent=2)
    table = markdown_table(results)
    (root / 'convergence.md').write_text(table + '\n')
    plot(results, root / 'convergence.png')
    print(table)


if __name__ == '__main__':
    main()
