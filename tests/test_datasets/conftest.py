# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
"""Building the bundled shapes datasets from their configs."""
from pathlib import Path

from mmdet.registry import DATASETS
from mmdet.utils import register_all_modules
from mmengine import Config
from mmengine.dataset import BaseDataset

CFG_DIR = Path(__file__).resolve().parents[2] / 'configs/_base_/datasets'


def build_shapes_dataset(task: str, split: str, root: Path) -> BaseDataset:
    """Build ``<split>_dataloader.dataset`` of ``shapes_<task>.py`` on root."""
    register_all_modules()
    cfg = Config.fromfile(str(CFG_DIR / f'shapes_{task}.py'))
    dataset_cfg = cfg[f'{split}_dataloader'].dataset
    dataset_cfg.data_root = str(root) + '/'
    return DATASETS.build(dataset_cfg)
