# COCO panoptic segmentation with LSJ at 1024x1024 (see coco_instance_lsj.py).
_base_ = 'mmdet::_base_/datasets/coco_panoptic.py'

# COCO panoptic's 133 classes (80 things, then 53 stuff) in MMDetection's
# order, recorded by checkpoints as `meta.dataset_meta`.
coco_classes = ('person', 'bicycle', 'car', 'motorcycle', 'airplane', 'bus',
                'train', 'truck', 'boat', 'traffic light', 'fire hydrant',
                'stop sign', 'parking meter', 'bench', 'bird', 'cat', 'dog',
                'horse', 'sheep', 'cow', 'elephant', 'bear', 'zebra',
                'giraffe', 'backpack', 'umbrella', 'handbag', 'tie',
                'suitcase', 'frisbee', 'skis', 'snowboard', 'sports ball',
                'kite', 'baseball bat', 'baseball glove', 'skateboard',
                'surfboard', 'tennis racket', 'bottle', 'wine glass', 'cup',
                'fork', 'knife', 'spoon', 'bowl', 'banana', 'apple',
                'sandwich', 'orange', 'broccoli', 'carrot', 'hot dog', 'pizza',
                'donut', 'cake', 'chair', 'couch', 'potted plant', 'bed',
                'dining table', 'toilet', 'tv', 'laptop', 'mouse', 'remote',
                'keyboard', 'cell phone', 'microwave', 'oven', 'toaster',
                'sink', 'refrigerator', 'book', 'clock', 'vase', 'scissors',
                'teddy bear', 'hair drier', 'toothbrush')
coco_stuff_classes = ('banner', 'blanket', 'bridge', 'cardboard', 'counter',
                      'curtain', 'door-stuff', 'floor-wood', 'flower', 'fruit',
                      'gravel', 'house', 'light', 'mirror-stuff', 'net',
                      'pillow', 'platform', 'playingfield', 'railroad',
                      'river', 'road', 'roof', 'sand', 'sea', 'shelf', 'snow',
                      'stairs', 'tent', 'towel', 'wall-brick', 'wall-stone',
                      'wall-tile', 'wall-wood', 'water-other', 'window-blind',
                      'window-other', 'tree-merged', 'fence-merged',
                      'ceiling-merged', 'sky-other-merged', 'cabinet-merged',
                      'table-merged', 'floor-other-merged', 'pavement-merged',
                      'mountain-merged', 'grass-merged', 'dirt-merged',
                      'paper-merged', 'food-other-merged',
                      'building-other-merged', 'rock-merged',
                      'wall-other-merged', 'rug-merged')
metainfo = dict(
    classes=coco_classes + coco_stuff_classes,
    thing_classes=coco_classes,
    stuff_classes=coco_stuff_classes)
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
    dataset=dict(metainfo=metainfo, pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(metainfo=metainfo, pipeline=test_pipeline))
test_dataloader = val_dataloader
batch_augments = [
    dict(
        type='BatchFixedSizePad',
        size=image_size,
        pad_mask=True,
        pad_seg=True,
        seg_pad_value=255)
]
