# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
"""A small copy of the bundled shapes dataset, generated once per session."""
from pathlib import Path

import pytest
from mmdet.registry import DATASETS
from mmdet.utils import register_all_modules
from mmengine import Config
from mmengine.dataset import BaseDataset

from mmmaskdino.datasets.synthetic_shapes import generate_dataset

CFG_DIR = Path(__file__).resolve().parents[2] / 'configs/_base_/datasets'

SHAPES_SEED = 0
SHAPES_NUM_TRAIN = 8
SHAPES_NUM_VAL = 12


@pytest.fixture(scope='session')
def shapes_root(tmp_path_factory) -> Path:
    """Root of a shapes dataset with 8 train and 12 val scenes."""
    root = tmp_path_factory.mktemp('shapes')
    generate_dataset(str(root), SHAPES_SEED, SHAPES_NUM_TRAIN, SHAPES_NUM_VAL)
    return root


def build_shapes_dataset(task: str, split: str, root: Path) -> BaseDataset:
    """Build ``<split>_dataloader.dataset`` of ``shapes_<task>.py`` on root."""
    register_all_modules()
    cfg = Config.fromfile(str(CFG_DIR / f'shapes_{task}.py'))
    dataset_cfg = cfg[f'{split}_dataloader'].dataset
    dataset_cfg.data_root = str(root) + '/'
    return DATASETS.build(dataset_cfg)
