# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
# Bundled shapes dataset, boxes only: the instance set-up without masks.
_base_ = './shapes_instance.py'

image_size = {{_base_.image_size}}
backend_args = {{_base_.backend_args}}

train_pipeline = {{_base_.box_train_pipeline}}
test_pipeline = [
    dict(type='LoadImageFromFile', to_float32=True, backend_args=backend_args),
    dict(type='Resize', scale=image_size, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                   'scale_factor'))
]

train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

val_evaluator = dict(metric='bbox')
test_evaluator = val_evaluator
