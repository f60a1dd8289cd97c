# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
# Small Mask DINO on the bundled shapes data with mixed supervision (the
# paper's "data cooperation"): half of the train images have boxes only
# (annotations/instances_train_boxes.json, loaded without masks), the other
# half boxes and masks (instances_train_masks.json). Mask and dice losses are
# computed only for images with masks; box AP and mask AP are evaluated.
_base_ = './maskdino_r18-tiny_1xb4-2.2k_shapes.py'

data_root = {{_base_.data_root}}
dataset_type = {{_base_.dataset_type}}
backend_args = {{_base_.backend_args}}
metainfo = {{_base_.shapes_thing_metainfo}}

shapes_train_dataset = dict(
    type=dataset_type,
    data_root=data_root,
    metainfo=metainfo,
    data_prefix=dict(img='images/train/'),
    filter_cfg=dict(filter_empty_gt=False),
    backend_args=backend_args)
box_dataset = dict(
    shapes_train_dataset,
    ann_file='annotations/instances_train_boxes.json',
    pipeline={{_base_.box_train_pipeline}})
mask_dataset = dict(
    shapes_train_dataset,
    ann_file='annotations/instances_train_masks.json',
    pipeline={{_base_.train_pipeline}})

# A batch may hold images with and without masks: MaskDINODataPreprocessor (the
# base config's) pads the masks of the images that have them.
train_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='ConcatDataset',
        datasets=[box_dataset, mask_dataset]))
