# Mask DINO R50 trained on boxes only (no mask annotations): the mask terms of
# the loss are skipped for images without masks; box AP is evaluated.
_base_ = './maskdino_r50_4xb4-lsj-50e_coco.py'

image_size = {{_base_.image_size}}
train_pipeline = [
    dict(
        type='LoadImageFromFile', imdecode_backend='pillow',
        backend_args=None),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=False),
    dict(type='RandomFlip', prob=0.5),
    dict(
        type='ResizeScale',
        min_scale=0.1,
        max_scale=2.0,
        target_size=image_size),
    dict(
        type='FixedSizeCrop', crop_size=image_size, allow_negative_crop=True),
    dict(type='Pad', size=image_size, pad_val=dict(img=128, seg=255)),
    dict(
        type='FilterAnnotations', min_gt_bbox_wh=(1e-2, 1e-2),
        keep_empty=False),
    dict(type='PackDetInputs')
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_evaluator = dict(metric='bbox')
test_evaluator = val_evaluator
