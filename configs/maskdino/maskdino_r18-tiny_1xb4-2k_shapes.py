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
# Measured on this model over 2000 iterations (docs/benchmarks.md, "The main
# job's recipe"): learning rate 3e-4 -> 42.4 segm AP, 6e-4 -> 49.4 / 47.8
# (seeds 0 / 1), 1e-3 -> 50.2 (seed 0).
optim_wrapper = dict(optimizer=dict(lr=1e-3))
randomness = dict(seed=0)
default_hooks = dict(logger=dict(interval=20), checkpoint=dict(interval=500))
