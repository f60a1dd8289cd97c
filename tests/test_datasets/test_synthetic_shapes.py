# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
"""The synthetic shapes generator: determinism, variety and consistency."""
import json
from itertools import combinations
from pathlib import Path

import numpy as np
import pytest
from mmengine import Config
from PIL import Image
from pycocotools import mask as mask_utils

from mmmaskdino.datasets import synthetic_shapes as shapes

REPO_ROOT = Path(__file__).resolve().parents[2]
METAINFO_CFG = REPO_ROOT / 'configs/_base_/datasets/shapes_metainfo.py'


def _load(root: Path, kind: str, split: str) -> dict:
    with open(root / 'annotations' / f'{kind}_{split}.json') as f:
        return json.load(f)


def _png(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path))


def _pan_ids(root: Path, split: str, file_name: str) -> np.ndarray:
    rgb = _png(root / 'annotations' / f'panoptic_{split}' / file_name)
    rgb = rgb.astype(np.int64)
    return rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]


def _split_arrays(root: Path, split: str) -> list:
    return [
        _png(p) for sub in (f'images/{split}', f'semantic/{split}',
                            f'annotations/panoptic_{split}')
        for p in sorted((root / sub).glob('*.png'))
    ]


def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    for name, seed in (('a', 5), ('b', 5), ('c', 6)):
        shapes.generate_split(str(tmp_path / name), 'val', 4, seed)
    for kind in ('instances', 'panoptic'):
        a, b, c = (_load(tmp_path / n, kind, 'val') for n in 'abc')
        assert a == b
        assert a != c
    arrays_a, arrays_b, arrays_c = (
        _split_arrays(tmp_path / n, 'val') for n in 'abc')
    assert len(arrays_a) == 12
    assert all(np.array_equal(x, y) for x, y in zip(arrays_a, arrays_b))
    assert not all(x.shape == y.shape and np.array_equal(x, y)
                   for x, y in zip(arrays_a, arrays_c))


def test_summary_and_stamp(shapes_root):
    with open(shapes_root / 'generation.json') as f:
        stamp = json.load(f)
    assert stamp['seed'] == 0
    assert stamp['summary']['train']['images'] == 8
    assert stamp['summary']['val'] == dict(
        images=12,
        instances=len(_load(shapes_root, 'instances', 'val')['annotations']),
        crowd=1,
        empty_images=1)


def test_sizes_and_aspect_ratios_vary(shapes_root):
    sizes = [(im['width'], im['height']) for split in ('train', 'val')
             for im in _load(shapes_root, 'instances', split)['images']]
    assert len(set(sizes)) >= 15
    assert all(96 <= s <= 192 for size in sizes for s in size)
    ratios = [w / h for w, h in sizes]
    assert min(ratios) < 0.8 and max(ratios) > 1.25
    for im in _load(shapes_root, 'instances', 'val')['images']:
        img = _png(shapes_root / 'images' / 'val' / im['file_name'])
        assert img.shape == (im['height'], im['width'], 3)


def test_objects_overlap_crowds_and_empty_scenes(shapes_root):
    data = _load(shapes_root, 'instances', 'train')
    anns = [a for a in data['annotations'] if not a['iscrowd']]
    by_image = {}
    for ann in anns:
        by_image.setdefault(ann['image_id'], []).append(ann['bbox'])
    touching = sum(1 for boxes in by_image.values()
                   for a, b in combinations(boxes, 2)
                   if min(a[0] + a[2], b[0] + b[2]) >= max(a[0], b[0])
                   and min(a[1] + a[3], b[1] + b[3]) >= max(a[1], b[1]))
    assert touching >= 5
    assert len(by_image) == len(data['images']) - 1
    assert sum(a['iscrowd'] for a in data['annotations']) == 1
    assert min(a['area'] for a in anns) >= shapes.MIN_VISIBLE_PIXELS
    assert min(min(a['bbox'][2:]) for a in anns) >= 10
    per_image = [len(v) for v in by_image.values()]
    assert min(per_image) >= 2 and max(per_image) <= 6


def test_rle_masks_match_panoptic_and_semantic(shapes_root):
    instances = _load(shapes_root, 'instances', 'val')
    panoptic = _load(shapes_root, 'panoptic', 'val')
    cat_ids = [c['id'] for c in panoptic['categories']]
    anns_by_image = {}
    for ann in instances['annotations']:
        anns_by_image.setdefault(ann['image_id'], []).append(ann)
    checked = 0
    for pan in panoptic['annotations']:
        ids = _pan_ids(shapes_root, 'val', pan['file_name'])
        segments = {s['id']: s for s in pan['segments_info']}
        assert set(np.unique(ids)) == set(segments)  # no void pixels
        semantic = _png(shapes_root / 'semantic' / 'val' / pan['file_name'])
        for seg_id, seg in segments.items():
            mask = ids == seg_id
            assert mask.sum() == seg['area']
            assert np.all(semantic[mask] == cat_ids.index(seg['category_id']))
        for ann in anns_by_image.get(pan['image_id'], []):
            mask = mask_utils.decode(ann['segmentation']).astype(bool)
            (seg_id, ) = np.unique(ids[mask])
            seg = segments[seg_id]
            assert (ids == seg_id).sum() == mask.sum() == ann['area']
            assert (seg['category_id'], seg['iscrowd'],
                    seg['bbox']) == (ann['category_id'], ann['iscrowd'],
                                     ann['bbox'])
            checked += 1
    assert checked == len(instances['annotations']) > 20


def test_categories_match_config_metainfo(shapes_root):
    meta = Config.fromfile(str(METAINFO_CFG))
    panoptic = _load(shapes_root, 'panoptic', 'val')
    instances = _load(shapes_root, 'instances', 'val')
    names = tuple(c['name'] for c in panoptic['categories'])
    assert names == meta.shapes_metainfo['classes'] == shapes.CLASSES
    assert [c['isthing'] for c in panoptic['categories']] == [1] * 5 + [0] * 3
    assert tuple(c['name'] for c in instances['categories']) == \
        meta.shapes_thing_metainfo['classes'] == meta.thing_classes
    assert [tuple(c['color']) for c in panoptic['categories']
            ] == [tuple(c) for c in meta.shapes_metainfo['palette']]
    ids = [c['id'] for c in panoptic['categories']]
    assert ids != list(range(1, len(ids) + 1))  # non-contiguous like COCO


@pytest.mark.parametrize('num_images', [0, 1, 3])
def test_tiny_splits(tmp_path, num_images):
    summary = shapes.generate_split(str(tmp_path), 'val', num_images, 1)
    assert summary['images'] == num_images
    assert summary['empty_images'] == min(num_images, 1)
    assert summary['crowd'] == (1 if num_images >= 2 else 0)
    pngs = list((tmp_path / 'semantic' / 'val').glob('*.png'))
    assert len(pngs) == num_images
