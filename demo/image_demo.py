# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
"""Run Mask DINO on an image or a folder of images and save drawn predictions.

    python demo/image_demo.py demo.jpg configs/maskdino/CONFIG.py \
        --weights CKPT.pth --task instance --pred-score-thr 0.3 --device cpu

Instance scores are sigmoid class probability x mask quality (the mean mask
probability inside the predicted mask), so they run lower than softmax
scores; 0.3 is a sensible display threshold.
"""
from argparse import ArgumentParser, Namespace

from mmdet.apis import DetInferencer
from mmengine.config import Config

import mmmaskdino  # noqa: F401  (registers Mask DINO)

TASK_FLAGS = {
    'instance': dict(instance_on=True, panoptic_on=False, semantic_on=False),
    'panoptic': dict(instance_on=False, panoptic_on=True, semantic_on=False),
    'semantic': dict(instance_on=False, panoptic_on=False, semantic_on=True),
}


def parse_args() -> Namespace:
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('inputs', help='an image file or a folder of images')
    parser.add_argument('model', help='config file')
    parser.add_argument('--weights', help='checkpoint file or URL')
    parser.add_argument(
        '--task', choices=sorted(TASK_FLAGS), default=None,
        help='which output to draw (default: what the config enables)')
    parser.add_argument('--out-dir', default='outputs', help='output folder')
    parser.add_argument('--device', default='cpu', help='e.g. cpu, cuda:0')
    parser.add_argument(
        '--pred-score-thr', type=float, default=0.3,
        help='score threshold for drawn instances')
    parser.add_argument('--batch-size', type=int, default=1)
    parser.add_argument(
        '--no-save-pred', action='store_true',
        help='do not save the predictions as json')
    return parser.parse_args()


def build_inferencer(config: str, weights: str, device: str,
                     task: str = None) -> DetInferencer:
    """A DetInferencer for a Mask DINO config, restricted to one task."""
    cfg = Config.fromfile(config)
    if task is not None:
        cfg.model.test_cfg.update(TASK_FLAGS[task])
    return DetInferencer(model=cfg, weights=weights, device=device)


def main() -> None:
    args = parse_args()
    inferencer = build_inferencer(args.model, args.weights, args.device,
                                  args.task)
    inferencer(
        args.inputs,
        batch_size=args.batch_size,
        pred_score_thr=args.pred_score_thr,
        out_dir=args.out_dir,
        no_save_pred=args.no_save_pred)
    print(f'results have been saved at {args.out_dir}')


if __name__ == '__main__':
    main()
