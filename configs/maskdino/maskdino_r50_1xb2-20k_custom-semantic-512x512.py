# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
# TEMPLATE: Mask DINO R50 fine-tuned from ADE20K semantic weights on your own
# semantic segmentation dataset: images plus label PNGs whose pixel values are
# class indices 0..len(classes)-1 (255 = ignore). 1 GPU x 2 crops, 20k
# iterations. Edit `classes` and the paths. See
# docs/tutorial_custom_dataset.md.
_base_ = './maskdino_r50_4xb4-160k_ade20k-512x512.py'

classes = ('road', 'building', 'vegetation')
data_root = 'data/custom/'
img_suffix = '.jpg'
metainfo = dict(classes=classes)

load_from = 'https://github.com/IDEA-Research/detrex-storage/releases/download/maskdino-v0.1.0/maskdino_r50_50ep_100q_celoss_hid1024_3s_semantic_ade20k_48.7miou.pth'  # noqa: E501
model = dict(
    backbone=dict(init_cfg=None),
    panoptic_head=dict(num_things_classes=0, num_stuff_classes=len(classes)))

# Labels are used as they are (ADE20K's "0 = other" shift is switched off).
crop_size = {{_base_.crop_size}}
load_labels = dict(
    type='LoadAnnotations',
    with_bbox=False,
    with_mask=False,
    with_seg=True,
    reduce_zero_label=False)
train_pipeline = [
    dict(
        type='LoadImageFromFile', imdecode_backend='pillow',
        backend_args=None), load_labels,
    dict(
        type='RandomChoiceResize',
        scales=[int(512 * x * 0.1) for x in range(5, 21)],
        resize_type='PillowResizeShortestEdge',
        max_size=2048),
    dict(type='RandomCrop', crop_size=crop_size, crop_type='absolute'),
    dict(type='ColorAugSSD'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='Pad', size=crop_size, pad_val=dict(img=128, seg=255)),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args=None),
    dict(type='Resize', scale=(2048, 512), keep_ratio=True), load_labels,
    dict(
        type='PackDetInputs',
        meta_keys=('img_path', 'ori_shape', 'img_shape', 'scale_factor'))
]
dataset = dict(
    type='BaseSegDataset',
    data_root=data_root,
    metainfo=metainfo,
    img_suffix=img_suffix,
    seg_map_suffix='.png')
train_dataloader = dict(
    batch_size=2,
    dataset=dict(
        dataset,
        data_prefix=dict(
            img_path='images/train', seg_map_path='annotations/train'),
        pipeline=train_pipeline))
val_dataloader = dict(
    dataset=dict(
        dataset,
        data_prefix=dict(
            img_path='images/val', seg_map_path='annotations/val'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader

max_iters = 20000
param_scheduler = dict(end=max_iters, milestones=[int(max_iters * 0.9)])
train_cfg = dict(max_iters=max_iters, val_interval=2000)
default_hooks = dict(checkpoint=dict(interval=2000, save_best='auto'))
# the lr (1e-4) is meant for this batch of 2 (1 GPU x 2 images)
auto_scale_lr = dict(base_batch_size=2)
