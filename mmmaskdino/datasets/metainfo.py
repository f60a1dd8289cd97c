# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
"""The metainfo (class names, palette) of a dataset config, without data."""
import copy

from mmengine.config import ConfigDict


def dataset_metainfo(dataset_cfg: ConfigDict, scope: str = 'mmdet') -> dict:
    """The dataset class's ``METAINFO`` updated with the config's
    ``metainfo``; the dataset is built with ``lazy_init=True``, so no
    annotation file is read."""
    from mmdet.registry import DATASETS
    from mmengine.registry import DefaultScope
    cfg = copy.deepcopy(dataset_cfg)
    cfg['lazy_init'] = True
    with DefaultScope.overwrite_default_scope(scope):
        return dict(DATASETS.build(cfg).metainfo)
