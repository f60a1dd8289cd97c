# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
# TEMPLATE: Mask DINO R50 fine-tuned from COCO instance weights on your own
# COCO-format instance dataset (1 GPU x 2 images, 20k iterations).
# Edit `classes`, `data_root` and the annotation paths; everything that
# depends on the classes (class head, denoising label embedding, dataset
# metainfo, evaluation) follows from `classes`. See
# docs/tutorial_custom_dataset.md.
_base_ = './maskdino_r50_4xb4-lsj-50e_coco.py'

classes = ('cat', 'dog')  # in the order of the json's category ids
data_root = 'data/custom/'
train_ann = 'annotations/instances_train.json'
val_ann = 'annotations/instances_val.json'
metainfo = dict(classes=classes)

# COCO weights (converted on load); class-dependent tensors of another shape
# are kept from the fresh model, so any class count works.
load_from = 'https://github.com/IDEA-Research/detrex-storage/releases/download/maskdino-v0.1.0/maskdino_r50_50ep_300q_hid2048_3sd1_instance_maskenhanced_mask46.3ap_box51.7ap.pth'  # noqa: E501
model = dict(
    backbone=dict(init_cfg=None),
    panoptic_head=dict(num_things_classes=len(classes), num_stuff_classes=0))

train_dataloader = dict(
    batch_size=2,
    dataset=dict(
        data_root=data_root,
        metainfo=metainfo,
        ann_file=train_ann,
        data_prefix=dict(img='images/train/')))
val_dataloader = dict(
    dataset=dict(
        data_root=data_root,
        metainfo=metainfo,
        ann_file=val_ann,
        data_prefix=dict(img='images/val/')))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + val_ann)
test_evaluator = val_evaluator

# Fine-tuning schedule: lr 1e-4 for a batch of 2 (the COCO recipe uses 1e-4
# for 16; small data and a pretrained model tolerate the larger step), x0.1
# at 90%. Checkpoint and evaluate every 2k iterations.
max_iters = 20000
param_scheduler = dict(end=max_iters, milestones=[int(max_iters * 0.9)])
train_cfg = dict(max_iters=max_iters, val_interval=2000)
default_hooks = dict(checkpoint=dict(interval=2000, save_best='auto'))
# the lr (1e-4) is meant for this batch of 2 (1 GPU x 2 images)
auto_scale_lr = dict(base_batch_size=2)
