# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
"""Run Mask DINO on every frame of a video and write a video with drawings.

    python demo/video_demo.py in.mp4 configs/maskdino/CONFIG.py \
        --weights CKPT.pth --out out.mp4 --task instance --device cpu

MODEL is a config file or a model name from configs/maskdino/metafile.yml.
Instance scores are sigmoid class probability x mask quality; 0.3 is a
sensible display threshold.
"""
from argparse import ArgumentParser, Namespace

from mmmaskdino.apis import (DEFAULT_SCORE_THR, TASK_FLAGS, inference_on_video,
                             init_maskdino)


def parse_args() -> Namespace:
    """Command-line options."""
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('video', help='input video file')
    parser.add_argument('model', help='config file or metafile model name')
    parser.add_argument('--weights', help='checkpoint file or URL')
    parser.add_argument('--out', required=True, help='output video file')
    parser.add_argument(
        '--task',
        choices=sorted(TASK_FLAGS),
        default=None,
        help='which output to draw (default: what the config enables)')
    parser.add_argument('--device', default='cpu', help='e.g. cpu, cuda:0')
    parser.add_argument(
        '--pred-score-thr',
        type=float,
        default=DEFAULT_SCORE_THR,
        help='score threshold for drawn instances')
    parser.add_argument(
        '--fourcc',
        default='mp4v',
        help="output codec, e.g. 'mp4v' (.mp4) or 'MJPG' (.avi)")
    return parser.parse_args()


def main() -> None:
    """Build the inferencer and run it over the frames."""
    args = parse_args()
    inferencer = init_maskdino(
        args.model, args.weights, device=args.device, task=args.task)
    frames = inference_on_video(
        inferencer,
        args.video,
        args.out,
        pred_score_thr=args.pred_score_thr,
        fourcc=args.fourcc)
    print(f'\n{frames} frames written to {args.out}')


if __name__ == '__main__':
    main()
