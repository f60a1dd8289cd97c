# Cityscapes semantic segmentation (19 train ids), the official Mask DINO
# recipe (MaskFormerSemanticDatasetMapper, as for ADE20K but without padding
# in the mapper: SIZE_DIVISIBILITY -1): short side 512..2048, 512x1024 crops,
# ColorAugSSD, flip; test at short side 1024.
dataset_type = 'BaseSegDataset'
data_root = 'data/cityscapes/'
backend_args = None
crop_size = (512, 1024)  # (h, w); mmdet's RandomCrop takes (w, h)
metainfo = dict(
    classes=('road', 'sidewalk', 'building', 'wall', 'fence', 'pole',
             'traffic light', 'traffic sign', 'vegetation', 'terrain', 'sky',
             'person', 'rider', 'car', 'truck', 'bus', 'train', 'motorcycle',
             'bicycle'))
seg_load = dict(
    type='LoadAnnotations', with_bbox=False, with_mask=False, with_seg=True)
train_pipeline = [
    dict(
        type='LoadImageFromFile',
        imdecode_backend='pillow',
        backend_args=backend_args), seg_load,
    dict(
        type='RandomChoiceResize',
        scales=[int(1024 * x * 0.1) for x in range(5, 21)],
        resize_type='PillowResizeShortestEdge',
        max_size=4096),
    dict(type='RandomCrop', crop_size=crop_size[::-1], crop_type='absolute'),
    dict(type='ColorAugSSD'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(
        type='LoadImageFromFile',
        imdecode_backend='pillow',
        backend_args=backend_args),
    dict(type='Resize', scale=(2048, 1024), keep_ratio=True, backend='pillow'),
    seg_load,
    dict(
        type='PackDetInputs',
        meta_keys=('img_path', 'ori_shape', 'img_shape', 'scale_factor'))
]
dataset_common = dict(
    type=dataset_type,
    data_root=data_root,
    metainfo=metainfo,
    img_suffix='_leftImg8bit.png',
    seg_map_suffix='_gtFine_labelTrainIds.png',
    backend_args=backend_args)
train_dataloader = dict(
    batch_size=2,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        data_prefix=dict(
            img_path='leftImg8bit/train', seg_map_path='gtFine/train'),
        pipeline=train_pipeline,
        **dataset_common))
val_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        data_prefix=dict(
            img_path='leftImg8bit/val', seg_map_path='gtFine/val'),
        test_mode=True,
        pipeline=test_pipeline,
        **dataset_common))
test_dataloader = val_dataloader
val_evaluator = dict(type='SemSegMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator
batch_augments = [
    dict(
        type='BatchFixedSizePad',
        size=crop_size,
        pad_seg=True,
        seg_pad_value=255)
]
