# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
"""Data preprocessor for batches that mix images with and without masks."""
import torch.nn.functional as F
from mmdet.models.data_preprocessors import DetDataPreprocessor
from mmdet.registry import MODELS
from mmdet.structures import SampleList
from mmengine.structures import PixelData


@MODELS.register_module()
class MaskDINODataPreprocessor(DetDataPreprocessor):
    """:class:`DetDataPreprocessor` that pads the GT masks and label maps of
    each sample that has them.

    With ``pad_mask=True`` / ``pad_seg=True``, mmdet's
    ``DetDataPreprocessor.pad_gt_masks`` / ``pad_gt_sem_seg`` decide from the
    first sample of the batch whether the batch has masks / label maps: a
    box-only sample after one with masks fails, and the label maps after a
    sample without one stay unpadded (mixed detection/instance data such as
    ``configs/maskdino/maskdino_r18-tiny_1xb4-2.2k_shapes-mixed.py``). Mask
    DINO trains on such batches (the mask terms skip box-only images), so every
    sample is looked at. Everything else is ``DetDataPreprocessor``'s; the
    head relies on this padding (it checks the sizes).
    """

    def pad_gt_masks(self, batch_data_samples: SampleList) -> None:
        """Pad the ``gt_instances.masks`` of every sample that has them to
        its ``batch_input_shape``."""
        for data_sample in batch_data_samples:
            if 'masks' in data_sample.gt_instances:
                data_sample.gt_instances.masks = \
                    data_sample.gt_instances.masks.pad(
                        data_sample.batch_input_shape,
                        pad_val=self.mask_pad_value)

    def pad_gt_sem_seg(self, batch_data_samples: SampleList) -> None:
        """Pad the ``gt_sem_seg`` of every sample that has one to its
        ``batch_input_shape`` with ``seg_pad_value``."""
        for data_sample in batch_data_samples:
            if 'gt_sem_seg' not in data_sample:
                continue
            sem_seg = data_sample.gt_sem_seg.sem_seg
            h, w = sem_seg.shape[-2:]
            pad_h, pad_w = data_sample.batch_input_shape
            data_sample.gt_sem_seg = PixelData(
                sem_seg=F.pad(
                    sem_seg,
                    pad=(0, max(pad_w - w, 0), 0, max(pad_h - h, 0)),
                    mode='constant',
                    value=self.seg_pad_value))
