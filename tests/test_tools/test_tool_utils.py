# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
"""Config loading shared by tools/train.py and tools/test.py."""
import pytest
from mmengine.config import Config

from mmmaskdino.utils.tool_utils import load_config, redirect_data_root
from tests.conftest import REPO_ROOT

PANOPTIC = (
    REPO_ROOT / 'configs' / 'maskdino' /
    'maskdino_r50_4xb4-lsj-50e_coco-panoptic.py')


def test_mmdet_package_configs_load():
    cfg = load_config(
        'mmdet::mask2former/mask2former_r50_8xb2-lsj-50e_coco.py')
    assert cfg.model.type == 'Mask2Former'
    assert cfg.train_dataloader.dataset.type == 'CocoDataset'


def test_missing_config_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match='nothere.py'):
        load_config(str(tmp_path / 'nothere.py'))


def test_redirect_moves_every_path_under_the_data_root():
    cfg = Config.fromfile(PANOPTIC)
    redirect_data_root(cfg, '/data/bundled/coco')
    assert cfg.train_dataloader.dataset.data_root == '/data/bundled/coco/'
    assert cfg.test_dataloader.dataset.data_root == '/data/bundled/coco/'
    pan, ins = cfg.val_evaluator
    annotations = '/data/bundled/coco/annotations/'
    assert pan.ann_file == annotations + 'panoptic_val2017.json'
    assert pan.seg_prefix == '/data/bundled/coco/annotations/panoptic_val2017/'
    assert ins.ann_file == annotations + 'instances_val2017.json'
    # paths relative to the root are untouched
    assert cfg.train_dataloader.dataset.ann_file == (
        'annotations/panoptic_train2017.json')
    text = cfg.pretty_text
    assert "'data/coco" not in text


def test_redirect_needs_a_data_root():
    cfg = Config(dict(model=dict(type='x')))
    with pytest.raises(ValueError, match='top-level `data_root`'):
        redirect_data_root(cfg, 'somewhere')
