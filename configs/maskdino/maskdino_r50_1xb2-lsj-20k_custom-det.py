# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
# TEMPLATE: Mask DINO R50 fine-tuned on a COCO-format detection dataset with
# boxes only (no `segmentation` needed): the mask terms of the loss are
# skipped, box AP is evaluated. The class list and data paths are the ones of
# the instance template; override them here or in a config inheriting this.
_base_ = './maskdino_r50_1xb2-lsj-20k_custom-instance.py'

image_size = {{_base_.image_size}}
train_pipeline = {{_base_.box_train_pipeline}}
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args=None),
    dict(type='Resize', scale=image_size, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=False),
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
