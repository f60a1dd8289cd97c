# Mask DINO R50, COCO panoptic segmentation (also instance and semantic
# output).
# Official:
# coco/panoptic-segmentation/maskdino_R50_bs16_50ep_3s_dowsample1_2048.yaml
# (53.0 PQ).
_base_ = [
    '../_base_/models/maskdino_r50.py',
    '../_base_/datasets/coco_panoptic_lsj.py',
    '../_base_/schedules/maskdino_lsj_50e.py', '../_base_/default_runtime.py'
]
model = dict(
    panoptic_head=dict(
        num_things_classes=80,
        num_stuff_classes=53,
        predictor=dict(initialize_box_type='no')),
    test_cfg=dict(panoptic_on=True, instance_on=True, semantic_on=True))
val_evaluator = [
    dict(
        type='CocoPanopticMetric',
        ann_file='data/coco/annotations/panoptic_val2017.json',
        seg_prefix='data/coco/annotations/panoptic_val2017/',
        backend_args=None),
    dict(
        type='CocoMetric',
        ann_file='data/coco/annotations/instances_val2017.json',
        metric=['bbox', 'segm'],
        backend_args=None)
]
test_evaluator = val_evaluator
# The official R50 models were trained on 4 GPUs x 4 images (denoising
# groups are formed per GPU batch): 4 x 4 = 16 images per iteration.
train_dataloader = dict(batch_size=4)
