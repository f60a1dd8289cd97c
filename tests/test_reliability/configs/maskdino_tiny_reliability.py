# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
# The shapes instance config shrunk for the reliability tests: ResNet-18 with
# 16 base channels, hidden size 32, 2 encoder / 2 decoder layers, 10 queries,
# 256 mask points, 64x64 LSJ crops, batch 2, no workers, no validation, a
# loss record per iteration (window 1) and deterministic seeding. Set
# `train_dataloader.dataset.data_root` on the command line.
_base_ = '../../../configs/maskdino/maskdino_r18-tiny_1xb4-2.2k_shapes.py'

image_size = (64, 64)
model = dict(
    backbone=dict(base_channels=16),
    panoptic_head=dict(
        pixel_decoder=dict(
            in_channels=[16, 32, 64, 128],
            feat_channels=32,
            mask_dim=32,
            ffn_channels=64),
        predictor=dict(
            hidden_dim=32,
            num_queries=10,
            ffn_dim=64,
            num_layers=2,
            mask_dim=32,
            denoising=dict(dn_num=10)),
        criterion=dict(num_points=256)))

train_pipeline = [
    dict(type='LoadImageFromFile', to_float32=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
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
    dict(type='FilterAnnotations', min_gt_bbox_wh=(1e-5, 1e-5), by_mask=True),
    dict(type='PackDetInputs')
]
train_dataloader = dict(
    batch_size=2,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(pipeline=train_pipeline))
train_cfg = dict(max_iters=8, val_interval=100000)
val_dataloader = None
val_cfg = None
val_evaluator = None
test_dataloader = None
test_cfg = None
test_evaluator = None
default_hooks = dict(
    logger=dict(interval=1),
    checkpoint=dict(interval=100000),
    visualization=dict(draw=False))
log_processor = dict(window_size=1)
randomness = dict(seed=0, deterministic=True)
env_cfg = dict(cudnn_benchmark=False)
# the model's random stream is checkpointed, so --resume is reproducible
custom_hooks = [
    dict(type='RNGStateHook'),
    dict(type='WeightsOnlyCheckpointHook')
]
