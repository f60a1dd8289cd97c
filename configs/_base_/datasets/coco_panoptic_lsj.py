# COCO panoptic segmentation with LSJ at 1024x1024 (see coco_instance_lsj.py).
_base_ = 'mmdet::_base_/datasets/coco_panoptic.py'

image_size = (1024, 1024)
backend_args = None
train_pipeline = [
    dict(type='LoadImageFromFile', to_float32=True, backend_args=backend_args),
    dict(
        type='LoadPanopticAnnotations',
        with_bbox=True,
        with_mask=True,
        with_seg=True,
        backend_args=backend_args),
    dict(type='RandomFlip', prob=0.5),
    dict(
        type='RandomResize',
        scale=image_size,
        ratio_range=(0.1, 2.0),
        keep_ratio=True),
    dict(
        type='RandomCrop',
        crop_size=image_size,
        crop_type='absolute',
        recompute_bbox=True,
        allow_negative_crop=True),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(
        type='LoadImageFromFile',
        to_float32=True,
        imdecode_backend='pillow',
        backend_args=backend_args),
    dict(type='Resize', scale=(1333, 800), keep_ratio=True, backend='pillow'),
    dict(type='LoadPanopticAnnotations', backend_args=backend_args),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                   'scale_factor'))
]
train_dataloader = dict(
    batch_size=2, num_workers=2, dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
batch_augments = [
    dict(
        type='BatchFixedSizePad',
        size=image_size,
        pad_mask=True,
        pad_seg=True,
        seg_pad_value=255)
]
