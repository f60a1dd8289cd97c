# Small Mask DINO on the bundled shapes data: instance segmentation and
# detection, trained from scratch on the CPU (the README's main job).
_base_ = [
    '../_base_/models/maskdino_r18_tiny.py',
    '../_base_/datasets/shapes_instance.py',
    '../_base_/schedules/maskdino_shapes.py', '../_base_/default_runtime.py'
]
model = dict(
    panoptic_head=dict(
        num_things_classes={{_base_.num_things_classes}}, num_stuff_classes=0))
default_hooks = dict(logger=dict(interval=20), checkpoint=dict(interval=500))
