# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
"""Evaluate a checkpoint with MMEngine's Runner.

    python tools/test.py CONFIG CHECKPOINT [--show-dir vis] [--out results.pkl]
    python tools/test.py CONFIG CHECKPOINT --data-root data/bundled/coco/

``--out`` writes MMDetection's ``DumpDetResults`` format (masks as RLE, no
ground truth), which ``mmdet``'s offline tools read. The test data's
annotation files are checked first
(:mod:`mmmaskdino.datasets.annotation_checks`).
    bash tools/dist_test.sh CONFIG CHECKPOINT 8
"""
import argparse

from mmdet.evaluation import DumpDetResults
from mmengine.config import Config

from mmmaskdino.datasets.annotation_checks import check_datasets
from mmmaskdino.utils.tool_utils import (add_common_args, build_runner,
                                         load_runner_config)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Test (and eval) a model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file or URL')
    add_common_args(parser)
    parser.add_argument(
        '--out',
        type=str,
        help='dump predictions to a pickle file for offline evaluation '
        '(DumpDetResults format: RLE masks, no ground truth)')
    parser.add_argument(
        '--show', action='store_true', help='show prediction results')
    parser.add_argument(
        '--show-dir',
        help='directory (relative to the work dir\'s timestamp folder) where '
        'images with drawn predictions are saved')
    parser.add_argument(
        '--wait-time', type=float, default=2, help='the interval of show (s)')
    parser.add_argument(
        '--amp', action='store_true', help='run inference with autocast')
    return parser.parse_args()


def enable_visualization(cfg: Config, args: argparse.Namespace) -> None:
    """Switch on mmdet's ``DetVisualizationHook`` for --show/--show-dir."""
    hooks = cfg.default_hooks
    if 'visualization' not in hooks:
        raise RuntimeError(
            '--show/--show-dir need a `visualization` hook in '
            '`default_hooks` (e.g. dict(type="DetVisualizationHook"))')
    hooks.visualization.draw = True
    if args.show:
        hooks.visualization.show = True
        hooks.visualization.wait_time = args.wait_time
    if args.show_dir:
        hooks.visualization.test_out_dir = args.show_dir


def main() -> None:
    args = parse_args()
    cfg = load_runner_config(args)
    cfg.load_from = args.checkpoint
    if args.show or args.show_dir:
        enable_visualization(cfg, args)
    if args.amp:
        cfg.test_cfg = cfg.get('test_cfg') or dict(type='TestLoop')
        cfg.test_cfg.fp16 = True

    check_datasets(cfg, ['test'])
    runner = build_runner(cfg)

    if args.out is not None:
        if not args.out.endswith(('.pkl', '.pickle')):
            raise ValueError('--out must be a .pkl or .pickle file')
        runner.test_evaluator.metrics.append(
            DumpDetResults(out_file_path=args.out))
    runner.test()


if __name__ == '__main__':
    main()
