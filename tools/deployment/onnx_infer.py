# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
"""Run an exported Mask DINO with ONNX Runtime and draw the results.

    python tools/deployment/onnx_infer.py MODEL.onnx CONFIG IMAGE_OR_FOLDER \
        [--out-dir outputs] [--score-thr 0.3] [--threads N]

ONNX Runtime runs the network; the pipeline, data preprocessor and
post-processing are the PyTorch model's (``mmmaskdino.deployment``), and the
drawing is MMDetection's ``DetLocalVisualizer``, as in the PyTorch demo
(``mmmaskdino.apis``). Writes ``OUT_DIR/vis/<stem>.png`` per image and prints
the latency of each image and the images per second of the folder.
"""
import argparse
import os
import os.path as osp
import time
from typing import Optional, Sequence

import mmcv
from mmdet.utils.misc import get_file_list
from mmengine.config import Config
from mmengine.registry import VISUALIZERS

import mmmaskdino  # noqa: F401  (registers the modules)
from mmmaskdino.apis.inference import (DEFAULT_SCORE_THR,
                                       dataset_meta_from_config,
                                       drawable_prediction)
from mmmaskdino.deployment import OnnxMaskDINO


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Mask DINO inference with ONNX Runtime')
    parser.add_argument('model', help='.onnx file from export_onnx.py')
    parser.add_argument('config', help='the config it was exported from')
    parser.add_argument('inputs', help='an image file or a folder of images')
    parser.add_argument('--out-dir', default='outputs', help='output folder')
    parser.add_argument(
        '--score-thr',
        type=float,
        default=DEFAULT_SCORE_THR,
        help='instances scoring below it are not drawn')
    parser.add_argument(
        '--threads', type=int, help='ONNX Runtime intra-op threads')
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = parse_args(argv)
    cfg = Config.fromfile(args.config)
    model = OnnxMaskDINO(args.model, cfg, num_threads=args.threads)
    visualizer = VISUALIZERS.build(
        dict(cfg.visualizer, name='onnx_infer', save_dir=None))
    meta = dataset_meta_from_config(cfg)
    meta.setdefault('palette', 'random')
    visualizer.dataset_meta = meta
    num_classes = len(meta['classes'])
    files, _ = get_file_list(args.inputs)
    vis_dir = osp.join(args.out_dir, 'vis')
    os.makedirs(vis_dir, exist_ok=True)
    total = 0.0
    for path in files:
        start = time.perf_counter()
        (result, ) = model(path)
        seconds = time.perf_counter() - start
        total += seconds
        sample = drawable_prediction(result, num_classes)
        visualizer.add_datasample(
            'onnx',
            mmcv.imread(path, channel_order='rgb'),
            sample,
            draw_gt=False,
            pred_score_thr=args.score_thr)
        out_file = osp.join(vis_dir,
                            osp.splitext(osp.basename(path))[0] + '.png')
        mmcv.imwrite(mmcv.rgb2bgr(visualizer.get_image()), out_file)
        print(f'{path}: {seconds * 1000:.0f} ms -> {out_file}')
    if files:
        print(
            f'{len(files)} images in {total:.2f} s: '
            f'{len(files) / total:.2f} images/s (inference, without drawing)')


if __name__ == '__main__':
    main()
