# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
"""Bad annotation files are caught before training starts.

Each case corrupts one file of a copy of the bundled real-format data and
runs :func:`check_datasets` on the shipped config (what ``tools/train.py``
and ``tools/test.py`` run before building the Runner); two cases go through
``tools/train.py`` itself and check that it stops before the first
iteration.
"""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from mmengine.config import Config
from PIL import Image

from mmmaskdino.datasets.annotation_checks import (AnnotationError,
                                                   check_datasets)
from mmmaskdino.utils.tool_utils import redirect_data_root
from tests.test_tools.e2e_utils import write_tiny_config

REPO = Path(__file__).resolve().parents[2]
COCO = REPO / 'configs/maskdino/maskdino_r50_4xb4-lsj-50e_coco.py'
PANOPTIC = REPO / 'configs/maskdino/maskdino_r50_4xb4-lsj-50e_coco-panoptic.py'
ADE20K = REPO / 'configs/maskdino/maskdino_r50_4xb4-160k_ade20k-512x512.py'
CUSTOM = REPO / 'configs/maskdino/maskdino_r50_1xb2-lsj-20k_custom-instance.py'


@pytest.fixture
def data(bundled_root, tmp_path) -> Path:
    """A private copy of the bundled real-format data."""
    out = tmp_path / 'data'
    shutil.copytree(bundled_root, out)
    return out


def check(config: Path, root: Path, stages=('train', 'val')) -> None:
    cfg = Config.fromfile(config)
    redirect_data_root(cfg, str(root))
    check_datasets(cfg, stages)


def edit_json(path: Path, edit) -> None:
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


def first_polygon_ann(data: dict) -> dict:
    return next(a for a in data['annotations'] if not a['iscrowd'])


def test_bundled_data_passes(data):
    for config, sub in ((COCO, 'coco'), (PANOPTIC, 'coco'),
                        (ADE20K, 'ADEChallengeData2016'), (CUSTOM, 'custom')):
        check(config, data / sub, ('train', 'val', 'test'))


def run_train(config: Path, data_root: Path, tmp_path: Path):
    tiny = write_tiny_config(config, tmp_path)
    return subprocess.run([
        sys.executable, 'tools/train.py',
        str(tiny), '--work-dir',
        str(tmp_path / 'work'), '--data-root',
        str(data_root)
    ],
                          cwd=REPO,
                          capture_output=True,
                          text=True)


def test_degenerate_polygon_stops_train_py_before_training(data, tmp_path):
    ann_file = data / 'coco/annotations/instances_val2017.json'
    state = {}

    def two_points(d):
        ann = first_polygon_ann(d)
        ann['segmentation'][0] = ann['segmentation'][0][:4]
        state.update(ann)

    edit_json(ann_file, two_points)
    proc = run_train(COCO, data / 'coco', tmp_path)
    assert proc.returncode != 0
    assert 'AnnotationError' in proc.stderr
    assert (f'{ann_file}: annotation {state["id"]} (image '
            f'{state["image_id"]}') in proc.stderr
    assert 'polygon 0 has 4 coordinates' in proc.stderr
    assert 'Iter(train)' not in proc.stdout + proc.stderr


def test_empty_image_list_stops_train_py(data, tmp_path):
    ann_file = data / 'coco/annotations/instances_train2017.json'
    edit_json(ann_file, lambda d: d.update(images=[], annotations=[]))
    proc = run_train(COCO, data / 'coco', tmp_path)
    assert proc.returncode != 0
    assert f'{ann_file}: the `images` list is empty' in proc.stderr
    assert 'need at least one array' not in proc.stderr


@pytest.mark.parametrize('fault, message', [
    (lambda d: d['annotations'][0].update(category_id=12),
     'has category id 12, which is not in `categories`'),
    (lambda d: d['annotations'][0].update(image_id=999999),
     'refers to image id 999999'),
    (lambda d: d['annotations'][1].update(id=d['annotations'][0]['id']),
     'appears twice'),
    (lambda d: d['annotations'][0].update(bbox=[1, 2, 3]),
     '`bbox` must be 4 finite numbers'),
    (lambda d: d['annotations'][0].update(bbox=[1, 2, float('nan'), 3]),
     '`bbox` must be 4 finite numbers'),
    (lambda d: first_polygon_ann(d).update(segmentation=[[1, 2, 3, 4, 5]]),
     'polygon 0 has 5 coordinates'),
    (lambda d: first_polygon_ann(d).update(
        segmentation=dict(counts='ab', size=[3, 4])),
     'RLE size [3, 4] differs from the image size'),
    (lambda d: first_polygon_ann(d).pop('segmentation'),
     'has no `segmentation`, but the config trains or evaluates masks'),
    (lambda d: d['images'][0].update(height=0), 'has height=0'),
    (lambda d: d['images'][1].update(id=d['images'][0]['id']), 'image id'),
])
def test_malformed_instance_json(data, fault, message):
    ann_file = data / 'coco/annotations/instances_train2017.json'
    edit_json(ann_file, fault)
    with pytest.raises(AnnotationError) as err:
        check(COCO, data / 'coco')
    assert str(err.value).startswith(str(ann_file))
    assert message in str(err.value)


def test_not_json_names_the_file(data):
    ann_file = data / 'coco/annotations/instances_val2017.json'
    ann_file.write_text('{"images": [')
    with pytest.raises(AnnotationError, match='not valid json'):
        check(COCO, data / 'coco')


def test_categories_not_matching_config_classes(data):
    """The custom template expects cat and dog; a json of other names is
    refused, a json with an extra category warns."""
    ann_file = data / 'custom/annotations/instances_train.json'

    def rename(d):
        for cat in d['categories']:
            cat['name'] = 'x' + cat['name']

    edit_json(ann_file, rename)
    with pytest.raises(AnnotationError) as err:
        check(CUSTOM, data / 'custom')
    assert "none of the config's 2 classes (cat, dog)" in str(err.value)
    assert 'xcat, xdog' in str(err.value)


def test_missing_image_file(data):
    (data / 'coco/val2017').joinpath(
        next(p.name for p in (data / 'coco/val2017').iterdir())).unlink()
    with pytest.raises(AnnotationError, match=r'1 image file\(s\) not found'):
        check(COCO, data / 'coco')


def test_panoptic_png_segment_missing_from_json(data):
    ann_file = data / 'coco/annotations/panoptic_val2017.json'
    state = {}

    def drop_segment(d):
        ann = d['annotations'][0]
        state.update(
            ann['segments_info'].pop(0),
            image_id=ann['image_id'],
            png=ann['file_name'])

    edit_json(ann_file, drop_segment)
    with pytest.raises(AnnotationError) as err:
        check(PANOPTIC, data / 'coco')
    assert state['png'] in str(err.value)
    assert (f'segment ids {state["id"]} are in the PNG but not in the '
            f'`segments_info` of {ann_file}') in str(err.value)


def test_panoptic_unknown_category(data):
    ann_file = data / 'coco/annotations/panoptic_train2017.json'
    edit_json(
        ann_file, lambda d: d['annotations'][0]['segments_info'][0].update(
            category_id=201))
    with pytest.raises(
            AnnotationError, match='has category id 201, which is not in'):
        check(PANOPTIC, data / 'coco')


def test_panoptic_missing_png(data):
    png_dir = data / 'coco/annotations/panoptic_train2017'
    next(png_dir.iterdir()).unlink()
    with pytest.raises(
            AnnotationError, match=r'1 panoptic PNG file\(s\) not found'):
        check(PANOPTIC, data / 'coco')


def test_ade20k_label_out_of_range(data):
    label_dir = data / 'ADEChallengeData2016/annotations/training'
    path = sorted(label_dir.iterdir())[0]
    labels = np.array(Image.open(path))
    labels[0, :3] = 151
    Image.fromarray(labels).save(path)
    with pytest.raises(AnnotationError) as err:
        check(ADE20K, data / 'ADEChallengeData2016')
    assert str(err.value).startswith(str(path))
    assert ('labels 151 are outside 0..150 (and 255 = ignore) for 150 '
            'classes with reduce_zero_label') in str(err.value)


def test_ade20k_missing_label_map(data):
    label_dir = data / 'ADEChallengeData2016/annotations/validation'
    sorted(label_dir.iterdir())[0].unlink()
    with pytest.raises(AnnotationError, match=r'1 label map\(s\) not found'):
        check(ADE20K, data / 'ADEChallengeData2016')
