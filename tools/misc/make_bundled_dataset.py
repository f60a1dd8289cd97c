# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
"""Generate the bundled synthetic datasets (no downloads).

Usage::

    python tools/misc/make_bundled_dataset.py --out data/shapes \
        [--seed 0] [--num-train 400] [--num-val 60] [--force] \
        [--formats-out data/bundled] [--formats-train 16] [--formats-val 6]

``--out`` receives the shapes dataset of the ``*_shapes*`` configs;
``--formats-out`` a smaller set of the same kind of scenes in the on-disk
layouts of COCO, COCO panoptic, ADE20K, Cityscapes and the custom templates
(:mod:`mmmaskdino.datasets.bundled_formats`), which the full-size configs read
with ``--data-root`` (README, "Bundled data"). A second run with the same
parameters finds the ``generation.json`` stamps and returns at once.
"""
import argparse
import importlib.util
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Optional

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
        '--formats-out',
        default='data/bundled',
        help='root of the real-format copies ("" to skip them)')
    parser.add_argument('--formats-train', type=int, default=16)
    parser.add_argument('--formats-val', type=int, default=6)
    parser.add_argument(
        '--force',
        action='store_true',
        help='regenerate even if an identical copy exists')
    return parser.parse_args()


def stamp_of(out: Path, params: dict) -> Optional[dict]:
    """The ``generation.json`` of ``out`` if it was made with ``params``."""
    stamp = out / 'generation.json'
    if not stamp.is_file():
        return None
    with open(stamp) as f:
        meta = json.load(f)
    return meta if {k: meta.get(k) for k in params} == params else None


def is_up_to_date(out: Path, params: dict) -> bool:
    """Whether ``out`` holds a complete dataset made with ``params``."""
    meta = stamp_of(out, params)
    if meta is None:
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
    return all(
        (out / 'annotations' / f'instances_train_{part}.json').is_file()
        for part in ('boxes', 'masks'))


def formats_up_to_date(out: Path, params: dict) -> bool:
    """Whether ``out`` holds the real-format copies made with ``params``."""
    meta = stamp_of(out, params)
    return meta is not None and all(
        (out / name).is_file() for name in meta['files'])


def print_summary(out: Path, params: dict, elapsed: float,
                  summary: dict) -> None:
    """One line per split (or per format and split) of what was written."""
    print(f'wrote {out} in {elapsed:.1f} s ({params})')
    for split, counts in summary.items():
        if all(isinstance(v, dict) for v in counts.values()):
            for sub, sub_counts in counts.items():
                print(f'  {split} {sub}: ' +
                      ', '.join(f'{k}={v}' for k, v in sub_counts.items()))
        else:
            print(f'  {split}: ' + ', '.join(f'{k}={v}'
                                             for k, v in counts.items()))


def make_formats(out: Path, params: dict, force: bool) -> None:
    """Write the real-format copies unless identical ones are there."""
    if not force and formats_up_to_date(out, params):
        print(f'{out}: up to date ({params}), nothing to do')
        return
    sys.path.insert(0, str(GENERATOR.parents[2]))
    from mmmaskdino.datasets.bundled_formats import (FORMAT_DIRS,
                                                     generate_formats)
    for name in FORMAT_DIRS.values():
        shutil.rmtree(out / name, ignore_errors=True)
    start = time.perf_counter()
    summary = generate_formats(
        str(out), params['seed'], params['num_train'], params['num_val'])
    files = sorted(
        str(p.relative_to(out)) for name in FORMAT_DIRS.values()
        for p in (out / name).rglob('*') if p.is_file())
    with open(out / 'generation.json', 'w') as f:
        json.dump(dict(params, summary=summary, files=files), f)
    print_summary(out, params, time.perf_counter() - start, summary)


def main() -> None:
    """Generate unless identical datasets are already there."""
    args = parse_args()
    shapes = load_generator()
    out = Path(args.out)
    params = shapes.generation_params(args.seed, args.num_train, args.num_val)
    if not args.force and is_up_to_date(out, params):
        print(f'{out}: up to date ({params}), nothing to do')
    else:
        start = time.perf_counter()
        summary = shapes.generate_dataset(
            str(out), args.seed, args.num_train, args.num_val)
        print_summary(out, params, time.perf_counter() - start, summary)
    if args.formats_out:
        make_formats(
            Path(args.formats_out),
            shapes.generation_params(args.seed, args.formats_train,
                                     args.formats_val), args.force)


if __name__ == '__main__':
    main()
