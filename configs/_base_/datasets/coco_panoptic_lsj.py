# COCO panoptic segmentation with LSJ at 1024x1024, the official recipe
# (COCOPanopticNewBaselineDatasetMapper, see coco_instance_lsj.py): the RGB
# panoptic PNG goes through the transforms (Pillow nearest, pad 255) and every
# non-crowd segment becomes a target; images holding only stuff are kept.
_base_ = ['mmdet::_base_/datasets/coco_panoptic.py', './coco_metainfo.py']

# class names (recorded by checkpoints as `meta.dataset_meta`)
metainfo = {{_base_.coco_panoptic_metainfo}}
image_size = (1024, 1024)
backend_args = None
train_pipeline = [
    dict(
        type='LoadImageFromFile',
        imdecode_backend='pillow',
        backend_args=backend_args),
    dict(type='LoadPanopticPNG', backend_args=backend_args),
    dict(type='RandomFlip', prob=0.5),
    dict(
        type='ResizeScale',
        min_scale=0.1,
        max_scale=2.0,
        target_size=image_size,
        seg_backend='pillow'),
    dict(type='FixedSizeCrop', crop_size=image_size, allow_negative_crop=True),
    dict(type='Pad', size=image_size, pad_val=dict(img=128, seg=255)),
    # every non-crowd segment is a target, also when the crop removed it
    dict(type='PanopticTargets'),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(
        type='LoadImageFromFile',
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
    batch_size=2,
    num_workers=2,
    dataset=dict(
        metainfo=metainfo,
        filter_cfg=dict(filter_empty_gt=False),
        # PanopticTargets tells crowd segments from stuff by the thing
        # classes, which the dataset adds as `text`
        return_classes=True,
        pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(metainfo=metainfo, pipeline=test_pipeline))
test_dataloader = val_dataloader
