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
image_size = {{_base_.image_size}}
metainfo = {{_base_.shapes_thing_metainfo}}

# Box-only branch: the instance pipeline without masks.
box_train_pipeline = [
    dict(type='LoadImageFromFile', to_float32=True, backend_args=backend_args),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=False),
    dict(type='RandomFlip', prob=0.5),
    dict(
        type='RandomResize',
        scale=image_size,
        ratio_range=(0.5, 2.0),
        keep_ratio=True),
    dict(
        type='RandomCrop',
        crop_size=image_size,
        crop_type='absolute',
        recompute_bbox=True,
        allow_negative_crop=True),
    dict(type='FilterAnnotations', min_gt_bbox_wh=(1e-2, 1e-2)),
    dict(type='PackDetInputs')
]
box_dataset = dict(
    type=dataset_type,
    data_root=data_root,
    metainfo=metainfo,
    ann_file='annotations/instances_train_boxes.json',
    data_prefix=dict(img='images/train/'),
    filter_cfg=dict(filter_empty_gt=False),
    pipeline=box_train_pipeline,
    backend_args=backend_args)
mask_dataset = dict(
    type=dataset_type,
    data_root=data_root,
    metainfo=metainfo,
    ann_file='annotations/instances_train_masks.json',
    data_prefix=dict(img='images/train/'),
    filter_cfg=dict(filter_empty_gt=False),
    pipeline={{_base_.train_pipeline}},
    backend_args=backend_args)

# A batch may hold images with and without masks: MaskDINODataPreprocessor (the
# base config's) pads the masks of the images that have them.
train_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='ConcatDataset',
        datasets=[box_dataset, mask_dataset]))
