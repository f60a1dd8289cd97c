# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
"""Generate the bundled synthetic shapes dataset (no downloads).

Usage::

    python tools/misc/make_bundled_dataset.py --out data/shapes \
        [--seed 0] [--num-train 400] [--num-val 60] [--force]

A second run with the same parameters finds the ``generation.json`` stamp
and the files it lists and returns at once.
"""
import argparse
import importlib.util
import json
import sys
import time
from pathlib import Path

GENERATOR = (
    Path(__file__).resolve().parents[2] / 'mmmaskdino' / 'datasets' /
    'synthetic_shapes.py')


def load_generator():
    """Load the generator module by path.

    Importing it through ``mmmaskdino`` would first import MMDetection and
    torch (seconds) that the generator does not need; by path the up-to-date
    check returns in well under a second.
    """
    spec = importlib.util.spec_from_file_location('synthetic_shapes',
                                                  GENERATOR)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their module
    spec.loader.exec_module(module)
    return module


def parse_args() -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--out', default='data/shapes', help='output root')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--num-train', type=int, default=400)
    parser.add_argument('--num-val', type=int, default=60)
    parser.add_argument(
        '--force',
        action='store_true',
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
    return all((out / 'annotations' / f'instances_train_{part}.json').is_file()
               for part in ('boxes', 'masks'))


def main() -> None:
    """Generate unless an identical dataset is already there."""
    args = parse_args()
    shapes = load_generator()
    out = Path(args.out)
    params = shapes.generation_params(args.seed, args.num_train, args.num_val)
    if not args.force and is_up_to_date(out, params):
        print(f'{out}: up to date ({params}), nothing to do')
        return
    start = time.perf_counter()
    summary = shapes.generate_dataset(
        str(out), args.seed, args.num_train, args.num_val)
    elapsed = time.perf_counter() - start
    print(f'wrote {out} in {elapsed:.1f} s ({params})')
    for split, counts in summary.items():
        print(f'  {split}: ' + ', '.join(f'{k}={v}'
                                         for k, v in counts.items()))


if __name__ == '__main__':
    main()
