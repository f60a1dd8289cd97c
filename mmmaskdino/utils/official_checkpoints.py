# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
"""Class names for official (detectron2) Mask DINO checkpoints.

Official checkpoints carry no ``meta['dataset_meta']``, so MMDetection's
``init_detector`` and ``DetInferencer`` would fall back to the 80 COCO names,
wrong for the 133-class panoptic and the 150-class ADE20K models. Every
released model was trained on COCO (80), COCO panoptic (133), ADE20K (150)
or Cityscapes (19 classes), so its class count names its dataset:
:func:`official_dataset_meta` returns that dataset's ``metainfo``.

Two places use it: the converter writes it into ``meta.dataset_meta``, and
the checkpoint loader registered here for the official release URLs adds it
to the checkpoint it downloads, so ``DetInferencer(model=CFG, weights=URL)``
shows the right names.
"""
from typing import Mapping, Optional

from mmengine.runner.checkpoint import CheckpointLoader, load_from_http

from mmmaskdino.datasets.bundled_formats import CITYSCAPES_CLASSES
from .checkpoint_conversion import official_weights

OFFICIAL_URL_PREFIX = ('https://github.com/IDEA-Research/detrex-storage/'
                       'releases/download/maskdino-v0.1.0/')
LABEL_ENC_KEY = 'sem_seg_head.predictor.label_enc.weight'


def dataset_meta_for_class_count(num_classes: int) -> Optional[dict]:
    """``metainfo`` of the official training dataset with ``num_classes``
    classes, or None for a count no official model has."""
    from mmdet.datasets import (ADE20KSegDataset, CocoDataset,
                                CocoPanopticDataset)
    metainfos = {
        80: CocoDataset.METAINFO,
        133: CocoPanopticDataset.METAINFO,
        150: ADE20KSegDataset.METAINFO,
        19: dict(classes=CITYSCAPES_CLASSES),
    }
    meta = metainfos.get(num_classes)
    return None if meta is None else {k: list(v) for k, v in meta.items()}


def official_dataset_meta(checkpoint: Mapping) -> Optional[dict]:
    """The dataset metainfo of an official checkpoint (see the module
    docstring), or None when ``checkpoint`` is not an official one."""
    weights = official_weights(checkpoint)
    if weights is None or LABEL_ENC_KEY not in weights:
        return None
    return dataset_meta_for_class_count(weights[LABEL_ENC_KEY].shape[0])


@CheckpointLoader.register_scheme(prefixes=OFFICIAL_URL_PREFIX)
def load_official_checkpoint(filename: str,
                             map_location: Optional[str] = None) -> dict:
    """Download an official release (cached like any URL) and record its
    classes in ``meta['dataset_meta']``."""
    checkpoint = load_from_http(filename, map_location=map_location)
    meta = official_dataset_meta(checkpoint)
    if meta is not None:
        checkpoint.setdefault('meta', {}).setdefault('dataset_meta', meta)
    return checkpoint
