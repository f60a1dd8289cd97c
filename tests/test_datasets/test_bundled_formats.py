# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
"""The bundled real-format data: the layouts and encodings of the real
datasets, read by MMDetection's own dataset classes and loaders."""
import json

import numpy as np
import pytest
from mmdet.datasets import ADE20KSegDataset, CocoDataset, CocoPanopticDataset
from mmengine.config import Config
from PIL import Image
from pycocotools import mask as mask_utils

from mmmaskdino.datasets import bundled_formats
from mmmaskdino.datasets.bundled_formats import generate_formats
from tests.conftest import BUNDLED_TRAIN, BUNDLED_VAL, REPO_ROOT


def load(path):
    return json.loads(path.read_text())


def test_coco_instances_polygons_and_crowd_rle(bundled_root):
    data = load(bundled_root / 'coco/annotations/instances_train2017.json')
    assert len(data['images']) == BUNDLED_TRAIN
    assert [c['id'] for c in data['categories']
            ] == list(bundled_formats.COCO_THING_IDS)
    assert max(bundled_formats.COCO_THING_IDS) == 90 and len(
        bundled_formats.COCO_THING_IDS) == 80
    crowd = [a for a in data['annotations'] if a['iscrowd']]
    plain = [a for a in data['annotations'] if not a['iscrowd']]
    assert plain and all(isinstance(a['segmentation'], list) for a in plain)
    assert all(
        len(p) >= 6 and len(p) % 2 == 0 for a in plain
        for p in a['segmentation'])
    assert all(isinstance(a['segmentation']['counts'], list) for a in crowd)
    ids = {a['category_id'] for a in data['annotations']}
    assert ids <= set(
        bundled_formats.COCO_THING_IDS) and not ids <= set(range(1, 6))
    for img in data['images']:
        assert (bundled_root / 'coco/train2017' / img['file_name']).is_file()
        assert img['file_name'].endswith('.jpg')


def test_default_set_has_multi_polygon_objects_and_crowds(tmp_path):
    """``make data``'s set (16 train, 6 val scenes): objects split by
    occlusion are stored as several polygons, crowds as RLE, and some images
    have no object (normal data)."""
    summary = generate_formats(str(tmp_path))
    train = summary['coco']['train']
    assert train['images'] == 16
    assert train['multi_polygon_objects'] > 0 and train['crowd'] > 0
    data = load(tmp_path / 'coco/annotations/instances_train2017.json')
    annotated = {a['image_id'] for a in data['annotations']}
    assert len(annotated) < len(data['images'])


def test_polygons_and_rle_reproduce_the_masks():
    """Polygons through the boundary pixel centres rasterise (pycocotools)
    to the mask within a 1-pixel band; the uncompressed RLE is exact."""
    mask = np.zeros((40, 50), np.uint8)
    mask[5:25, 10:40] = 1
    mask[30:36, 2:8] = 1
    polygons = bundled_formats.mask_to_polygons(mask)
    assert len(polygons) == 2
    rle = mask_utils.merge(mask_utils.frPyObjects(polygons, 40, 50))
    raster = mask_utils.decode(rle)
    iou = (raster & mask).sum() / (raster | mask).sum()
    assert iou > 0.75
    assert mask_utils.area(rle) <= mask.sum()
    exact = mask_utils.frPyObjects(
        bundled_formats.mask_to_uncompressed_rle(mask), 40, 50)
    np.testing.assert_array_equal(mask_utils.decode(exact), mask)


def test_coco_panoptic_categories_and_pngs(bundled_root):
    data = load(bundled_root / 'coco/annotations/panoptic_val2017.json')
    cats = data['categories']
    assert len(cats) == 133 and sum(c['isthing'] for c in cats) == 80
    assert [c['id'] for c in cats
            if not c['isthing']] == list(bundled_formats.COCO_STUFF_IDS)
    assert max(c['id'] for c in cats) == 200
    names = [c['name'] for c in cats]
    assert names == list(CocoPanopticDataset.METAINFO['classes'])
    for ann in data['annotations']:
        rgb = np.asarray(
            Image.open(bundled_root / 'coco/annotations/panoptic_val2017' /
                       ann['file_name']),
            dtype=np.int64)
        ids = set(
            np.unique(rgb[..., 0] + 256 * rgb[..., 1] +
                      65536 * rgb[..., 2]).tolist()) - {0}
        assert ids == {s['id'] for s in ann['segments_info']}
        assert any(s['id'] > 255 for s in ann['segments_info'])


def test_ade20k_and_cityscapes_label_maps(bundled_root):
    ade = bundled_root / 'ADEChallengeData2016'
    maps = sorted((ade / 'annotations/training').glob('*.png'))
    assert len(maps) == BUNDLED_TRAIN
    values = np.unique(
        np.concatenate([np.asarray(Image.open(m)).ravel() for m in maps]))
    assert values.max() <= 150
    assert ADE20KSegDataset.METAINFO['classes'].index('sky') + 1 in values
    assert 0 in values  # crowd regions: "other", ignored
    city = bundled_root / 'cityscapes'
    (label, ) = [
        p for p in (city / 'gtFine/val').rglob('*_gtFine_labelTrainIds.png')
        if p.name.startswith('shapeton_000000')
    ]
    image = city / 'leftImg8bit/val/shapeton' / label.name.replace(
        '_gtFine_labelTrainIds', '_leftImg8bit')
    assert image.is_file()
    assert len(list((city / 'gtFine/val').rglob('*.png'))) == BUNDLED_VAL
    assert set(np.unique(np.asarray(Image.open(label))).tolist()) <= (
        set(range(19)) | {255})


@pytest.mark.parametrize('config, classes', [
    ('maskdino_r50_4xb4-lsj-50e_coco.py', CocoDataset.METAINFO['classes']),
    ('maskdino_r50_4xb4-lsj-50e_coco-panoptic.py',
     CocoPanopticDataset.METAINFO['classes']),
    ('maskdino_r50_4xb4-160k_ade20k-512x512.py',
     ADE20KSegDataset.METAINFO['classes']),
    ('maskdino_r50_4xb4-90k_cityscapes-512x1024.py',
     bundled_formats.CITYSCAPES_CLASSES),
])
def test_configs_carry_the_dataset_classes(config, classes):
    """The full-size configs name their classes (what checkpoints record as
    ``dataset_meta``), equal to the libraries' lists the data is made of."""
    cfg = Config.fromfile(REPO_ROOT / 'configs/maskdino' / config)
    for loader in ('train_dataloader', 'test_dataloader'):
        assert tuple(cfg[loader].dataset.metainfo.classes) == tuple(classes)
