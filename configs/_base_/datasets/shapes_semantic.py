# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
# Bundled shapes dataset, semantic segmentation (label PNGs, ids 0..7).
_base_ = './shapes_metainfo.py'

dataset_type = 'BaseSegDataset'
data_root = 'data/shapes/'
backend_args = None
image_size = (128, 128)
seg_load = dict(
    type='LoadAnnotations',
    with_bbox=False,
    with_label=False,
    with_mask=False,
    with_seg=True)

train_pipeline = [
    dict(type='LoadImageFromFile', to_float32=True, backend_args=backend_args),
    seg_load,
    dict(
        type='RandomResize',
        scale=image_size,
        ratio_range=(0.75, 1.5),
        keep_ratio=True),
    dict(type='RandomCrop', crop_size=image_size, crop_type='absolute'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile', to_float32=True, backend_args=backend_args),
    dict(type='Resize', scale=image_size, keep_ratio=True), seg_load,
    dict(
        type='PackDetInputs',
        meta_keys=('img_path', 'ori_shape', 'img_shape', 'scale_factor'))
]

train_dataloader = dict(
    batch_size=4,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        metainfo={{_base_.shapes_metainfo}},
        img_suffix='.png',
        seg_map_suffix='.png',
        data_prefix=dict(
            img_path='images/train', seg_map_path='semantic/train'),
        pipeline=train_pipeline,
        backend_args=backend_args))
val_dataloader = dict(
    batch_size=4,
    num_workers=2,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        metainfo={{_base_.shapes_metainfo}},
        img_suffix='.png',
        seg_map_suffix='.png',
        data_prefix=dict(img_path='images/val', seg_map_path='semantic/val'),
        test_mode=True,
        pipeline=test_pipeline,
        backend_args=backend_args))
test_dataloader = val_dataloader

val_evaluator = dict(type='SemSegMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator
