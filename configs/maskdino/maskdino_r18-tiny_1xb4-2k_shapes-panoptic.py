# Small Mask DINO on the bundled shapes data: panoptic segmentation (with
# instance and semantic outputs), trained from scratch on the CPU.
_base_ = [
    '../_base_/models/maskdino_r18_tiny.py',
    '../_base_/datasets/shapes_panoptic.py',
    '../_base_/schedules/maskdino_shapes.py', '../_base_/default_runtime.py'
]
model = dict(
    panoptic_head=dict(
        num_things_classes={{_base_.num_things_classes}},
        num_stuff_classes={{_base_.num_stuff_classes}},
        predictor=dict(initialize_box_type='no')),
    test_cfg=dict(panoptic_on=True, instance_on=True, semantic_on=True))
default_hooks = dict(logger=dict(interval=20), checkpoint=dict(interval=500))
