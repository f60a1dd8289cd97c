# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
"""Run Mask DINO on an image or a folder of images and save drawn predictions.

    python demo/image_demo.py demo.jpg configs/maskdino/CONFIG.py \
        --weights CKPT.pth --task instance --pred-score-thr 0.3 --device cpu
    python demo/image_demo.py images/ maskdino_r50_4xb4-lsj-50e_coco

MODEL is a config file or a model name from configs/maskdino/metafile.yml
(its weights are then downloaded unless --weights is given). Drawn images are
written to OUT_DIR/vis/<name>.png, predictions to OUT_DIR/preds/.

Instance scores are sigmoid class probability x mask quality (the mean mask
probability inside the predicted mask), so they run lower than softmax
scores; 0.3 is a sensible display threshold.
"""
import time
from argparse import ArgumentParser, Namespace

from mmmaskdino.apis import (DEFAULT_SCORE_THR, TASK_FLAGS,
                             inference_on_folder, init_maskdino)
from mmmaskdino.utils.cpu_allocator import (add_retain_malloc_arg,
                                            retain_freed_memory)


def parse_args() -> Namespace:
    """Command-line options."""
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('inputs', help='an image file or a folder of images')
    parser.add_argument('model', help='config file or metafile model name')
    parser.add_argument('--weights', help='checkpoint file or URL')
    parser.add_argument(
        '--task',
        choices=sorted(TASK_FLAGS),
        default=None,
        help='which output to draw (default: what the config enables)')
    parser.add_argument('--out-dir', default='outputs', help='output folder')
    parser.add_argument('--device', default='cpu', help='e.g. cpu, cuda:0')
    parser.add_argument(
        '--pred-score-thr',
        type=float,
        default=DEFAULT_SCORE_THR,
        help='score threshold for drawn instances')
    parser.add_argument('--batch-size', type=int, default=1)
    parser.add_argument(
        '--palette',
        default='none',
        help="colours: 'none' (from checkpoint/config), 'random', 'coco', ...")
    add_retain_malloc_arg(parser)
    parser.add_argument(
        '--no-save-pred',
        action='store_true',
        help='do not save the predictions (json / segmentation PNGs)')
    return parser.parse_args()


def main() -> None:
    """Build the inferencer and run it over the inputs."""
    args = parse_args()
    if args.device == 'cpu' and args.retain_malloc:
        retain_freed_memory()
    inferencer = init_maskdino(
        args.model,
        args.weights,
        device=args.device,
        task=args.task,
        palette=args.palette)
    start = time.perf_counter()
    results = inference_on_folder(
        inferencer,
        args.inputs,
        args.out_dir,
        batch_size=args.batch_size,
        pred_score_thr=args.pred_score_thr,
        save_pred=not args.no_save_pred)
    seconds = time.perf_counter() - start
    print(f'\n{len(results)} images in {seconds:.1f} s: '
          f'{len(results) / seconds:.2f} images/s (batch size '
          f'{args.batch_size}; inference, drawing and saving); drawn '
          f'predictions in {args.out_dir}/vis')


if __name__ == '__main__':
    main()
