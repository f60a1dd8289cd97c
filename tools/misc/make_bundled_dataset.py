# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
"""Generate the bundled synthetic shapes dataset (no downloads).

Usage::

    python tools/misc/make_bundled_dataset.py --out data/shapes \
        [--seed 0] [--num-train 400] [--num-val 60] [--force]

A second run with the same parameters finds the ``generation.json`` stamp
and the files it lists and returns at once.
"""
import argparse
import json
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from mmmaskdino.datasets.synthetic_shapes import (  # noqa: E402
    generate_dataset, generation_params)


def parse_args() -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--out', default='data/shapes', help='output root')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--num-train', type=int, default=400)
    parser.add_argument('--num-val', type=int, default=60)
    parser.add_argument('--force', action='store_true',
                        help='regenerate even if an identical copy exists')
    return parser.parse_args()


def is_up_to_date(out: Path, params: dict) -> bool:
    """Whether ``out`` holds a complete dataset made with ``params``."""
    stamp = out / 'generation.json'
    if not stamp.is_file():
        return False
    with open(stamp) as f:
        meta = json.load(f)
    if {k: meta.get(k) for k in params} != params:
        return False
    for split in ('train', 'val'):
        num = meta['summary'][split]['images']
        dirs = (f'images/{split}', f'annotations/panoptic_{split}',
                f'semantic/{split}')
        if any(len(list((out / d).glob('*.png'))) != num for d in dirs):
            return False
        if not all((out / 'annotations' / f'{kind}_{split}.json').is_file()
                   for kind in ('instances', 'panoptic')):
            return False
    return True


def main() -> None:
    """Generate unless an identical dataset is already there."""
    args = parse_args()
    out = Path(args.out)
    params = generation_params(args.seed, args.num_train, args.num_val)
    if not args.force and is_up_to_date(out, params):
        print(f'{out}: up to date ({params}), nothing to do')
        return
    start = time.perf_counter()
    summary = generate_dataset(str(out), args.seed, args.num_train,
                               args.num_val)
    elapsed = time.perf_counter() - start
    print(f'wrote {out} in {elapsed:.1f} s ({params})')
    for split, counts in summary.items():
        print(f'  {split}: ' + ', '.join(f'{k}={v}' for k, v in counts.items()))


if __name__ == '__main__':
    main()
