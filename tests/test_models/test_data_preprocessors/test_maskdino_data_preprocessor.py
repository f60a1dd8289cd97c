# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
"""MaskDINODataPreprocessor pads the masks and label maps of every sample
that has them, whatever the first sample of the batch holds."""
import numpy as np
import pytest
import torch
from mmdet.models.data_preprocessors import DetDataPreprocessor
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmdet.structures.mask import BitmapMasks
from mmdet.utils import register_all_modules
from mmengine.structures import InstanceData, PixelData

register_all_modules()


def _sample(h: int, w: int, with_masks: bool, with_sem_seg: bool):
    sample = DetDataSample(metainfo=dict(img_shape=(h, w)))
    gt = InstanceData(
        labels=torch.tensor([0]), bboxes=torch.tensor([[0., 0., 4., 4.]]))
    if with_masks:
        gt.masks = BitmapMasks(np.ones((1, h, w), np.uint8), h, w)
    sample.gt_instances = gt
    if with_sem_seg:
        sample.gt_sem_seg = PixelData(
            sem_seg=torch.ones(1, h, w, dtype=torch.long))
    return sample


def _batch():
    samples = [
        _sample(40, 50, with_masks=False, with_sem_seg=False),
        _sample(60, 30, with_masks=True, with_sem_seg=True)
    ]
    inputs = [
        torch.zeros(3, 40, 50, dtype=torch.uint8),
        torch.zeros(3, 60, 30, dtype=torch.uint8)
    ]
    return dict(inputs=inputs, data_samples=samples)


CFG = dict(
    pad_size_divisor=32,
    pad_mask=True,
    mask_pad_value=0,
    pad_seg=True,
    seg_pad_value=255)


def test_mixed_batch_is_padded_per_sample():
    preprocessor = MODELS.build(dict(type='MaskDINODataPreprocessor', **CFG))
    data = preprocessor(_batch(), training=True)
    assert data['inputs'].shape == (2, 3, 64, 64)
    box_only, full = data['data_samples']
    assert 'masks' not in box_only.gt_instances
    masks = full.gt_instances.masks
    assert (masks.height, masks.width) == (64, 64)
    assert masks.masks[0, :60, :30].all() and not masks.masks[0, 60:].any()
    sem_seg = full.gt_sem_seg.sem_seg
    assert sem_seg.shape == (1, 64, 64)
    assert (sem_seg[0, :60, :30] == 1).all()
    assert (sem_seg[0, 60:] == 255).all() and (sem_seg[0, :, 30:] == 255).all()


def test_mmdet_preprocessor_fails_on_the_same_batch():
    """Why the subclass exists: mmdet decides from the first sample."""
    preprocessor = DetDataPreprocessor(**CFG)
    data = preprocessor(_batch(), training=True)
    assert data['data_samples'][1].gt_instances.masks.height == 60
    assert data['data_samples'][1].gt_sem_seg.sem_seg.shape == (1, 60, 30)
    batch = _batch()
    batch['data_samples'].reverse()
    batch['inputs'].reverse()
    with pytest.raises(AttributeError):
        preprocessor(batch, training=True)
