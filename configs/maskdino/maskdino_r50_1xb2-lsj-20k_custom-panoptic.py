# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
# TEMPLATE: Mask DINO R50 fine-tuned from COCO panoptic weights on your own
# COCO-panoptic-format dataset (1 GPU x 2 images, 20k iterations).
# Edit `thing_classes`, `stuff_classes` and the paths; the class counts, the
# dataset metainfo and the evaluators follow from them. See
# docs/tutorial_custom_dataset.md.
_base_ = './maskdino_r50_4xb4-lsj-50e_coco-panoptic.py'

thing_classes = ('cat', 'dog')  # countable objects
stuff_classes = ('grass', 'sky')  # amorphous regions
data_root = 'data/custom/'
metainfo = dict(
    classes=thing_classes + stuff_classes,
    thing_classes=thing_classes,
    stuff_classes=stuff_classes)

load_from = 'https://github.com/IDEA-Research/detrex-storage/releases/download/maskdino-v0.1.0/maskdino_r50_50ep_300q_hid2048_3sd1_panoptic_pq53.0.pth'  # noqa: E501
model = dict(
    backbone=dict(init_cfg=None),
    panoptic_head=dict(
        num_things_classes=len(thing_classes),
        num_stuff_classes=len(stuff_classes)))

train_dataloader = dict(
    batch_size=2,
    dataset=dict(
        data_root=data_root,
        metainfo=metainfo,
        ann_file='annotations/panoptic_train.json',
        data_prefix=dict(
            img='images/train/', seg='annotations/panoptic_train/')))
val_dataloader = dict(
    dataset=dict(
        data_root=data_root,
        metainfo=metainfo,
        ann_file='annotations/panoptic_val.json',
        data_prefix=dict(img='images/val/', seg='annotations/panoptic_val/')))
test_dataloader = val_dataloader
# PQ; add a CocoMetric (bbox, segm) on an instance json to also get AP.
val_evaluator = dict(
    _delete_=True,
    type='CocoPanopticMetric',
    ann_file=data_root + 'annotations/panoptic_val.json',
    seg_prefix=data_root + 'annotations/panoptic_val/',
    backend_args=None)
test_evaluator = val_evaluator

max_iters = 20000
param_scheduler = dict(end=max_iters, milestones=[int(max_iters * 0.9)])
train_cfg = dict(max_iters=max_iters, val_interval=2000)
default_hooks = dict(
    checkpoint=dict(
        interval=2000, save_best='coco_panoptic/PQ', rule='greater'))
# the lr (1e-4) is meant for this batch of 2 (1 GPU x 2 images)
auto_scale_lr = dict(base_batch_size=2)
