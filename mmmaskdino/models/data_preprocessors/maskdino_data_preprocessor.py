# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
"""Data preprocessor for batches that mix images with and without masks."""
from mmdet.models.data_preprocessors import DetDataPreprocessor
from mmdet.registry import MODELS
from mmdet.structures import SampleList


@MODELS.register_module()
class MaskDINODataPreprocessor(DetDataPreprocessor):
    """:class:`DetDataPreprocessor` that pads the GT masks of each sample
    that has them.

    With ``pad_mask=True``, mmdet's ``DetDataPreprocessor.pad_gt_masks``
    decides from the first sample of the batch whether the batch has masks,
    and fails on a box-only sample after one with masks (mixed
    detection/instance data such as
    ``configs/maskdino/maskdino_r18-tiny_1xb4-2k_shapes-mixed.py``). Mask DINO
    trains on such batches (the mask terms skip box-only images), so every
    sample is looked at. Everything else is ``DetDataPreprocessor``'s.
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
