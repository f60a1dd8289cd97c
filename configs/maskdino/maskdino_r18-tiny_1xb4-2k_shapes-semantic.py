# Small Mask DINO on the bundled shapes data: semantic segmentation with the
# official semantic recipe (learned queries, softmax cross-entropy).
_base_ = [
    '../_base_/models/maskdino_r18_tiny.py',
    '../_base_/datasets/shapes_semantic.py',
    '../_base_/schedules/maskdino_shapes.py', '../_base_/default_runtime.py'
]
model = dict(
    panoptic_head=dict(
        num_things_classes=0,
        num_stuff_classes={{_base_.num_classes}},
        pixel_decoder=dict(num_feature_levels=3, feature_order='high2low'),
        predictor=dict(
            num_feature_levels=3, two_stage=False, initialize_box_type='no'),
        criterion=dict(
            loss_cls=dict(
                _delete_=True,
                type='CrossEntropyLoss',
                use_sigmoid=False,
                loss_weight=4.0))),
    test_cfg=dict(instance_on=False, panoptic_on=False, semantic_on=True))
default_hooks = dict(logger=dict(interval=20), checkpoint=dict(interval=500))
