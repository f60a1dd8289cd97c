# COCO instance segmentation with large-scale jittering (LSJ) at 1024x1024,
# the official recipe (COCOInstanceNewBaselineDatasetMapper): uint8 images
# decoded and resized with Pillow, flip, ResizeScale(0.1, 2.0), FixedSizeCrop
# (one offset draw for both axes), padding with 128; polygon targets. Checked
# against the official mapper's outputs in
# tests/test_datasets/test_official_pipelines.py.
_base_ = ['mmdet::_base_/datasets/coco_instance.py', './coco_metainfo.py']

# class names (recorded by checkpoints as `meta.dataset_meta`)
metainfo = {{_base_.coco_instance_metainfo}}
image_size = (1024, 1024)
backend_args = None
lsj_augmentation = [
    dict(type='RandomFlip', prob=0.5),
    dict(
        type='ResizeScale',
        min_scale=0.1,
        max_scale=2.0,
        target_size=image_size),
    dict(
        type='FixedSizeCrop',
        crop_size=image_size,
        recompute_bbox=True,
        allow_negative_crop=True),
    dict(type='Pad', size=image_size, pad_val=dict(img=128, seg=255)),
]
load_image = dict(
    type='LoadImageFromFile',
    imdecode_backend='pillow',
    backend_args=backend_args)
train_pipeline = [
    load_image,
    # polygons stay polygons through flip, resize and crop; they are
    # rasterised at the final 1024x1024 size and boxed by their extremes
    dict(
        type='LoadAnnotations',
        with_bbox=True,
        with_mask=True,
        poly2mask=False),
    *lsj_augmentation,
    # detectron2's filter_empty_instances: boxes thinner than 1e-5 go;
    # objects whose polygons cover no pixel stay (empty masks)
    dict(
        type='FilterAnnotations',
        min_gt_bbox_wh=(1e-5, 1e-5),
        keep_empty=False),
    dict(type='PackDetInputs')
]
# boxes-only training (the *_coco-det and *_custom-det configs)
box_train_pipeline = [
    load_image,
    dict(type='LoadAnnotations', with_bbox=True, with_mask=False),
    *lsj_augmentation,
    dict(
        type='FilterAnnotations',
        min_gt_bbox_wh=(1e-2, 1e-2),
        keep_empty=False),
    dict(type='PackDetInputs')
]
# detectron2 decodes and resizes test images with PIL, as uint8 (the pillow
# resize accepts only uint8; the data preprocessor converts to float)
test_pipeline = [
    dict(
        type='LoadImageFromFile',
        imdecode_backend='pillow',
        backend_args=backend_args),
    dict(type='Resize', scale=(1333, 800), keep_ratio=True, backend='pillow'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                   'scale_factor'))
]
train_dataloader = dict(
    batch_size=2,
    num_workers=2,
    dataset=dict(metainfo=metainfo, pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(metainfo=metainfo, pipeline=test_pipeline))
test_dataloader = val_dataloader
