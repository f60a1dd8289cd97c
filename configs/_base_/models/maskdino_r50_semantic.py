# Mask DINO R50 for semantic segmentation (official ADE20K/Cityscapes setting):
# 3 levels (high2low), encoder FFN 1024, 100 learned queries (no two-stage
# selection), softmax cross-entropy class loss with a "no object" logit
# (weight 0.1). Every class is a "stuff" class.
_base_ = './maskdino_r50.py'
model = dict(
    panoptic_head=dict(
        num_things_classes=0,
        num_stuff_classes=150,
        pixel_decoder=dict(
            num_feature_levels=3, feature_order='high2low', ffn_channels=1024),
        predictor=dict(
            num_queries=100,
            num_feature_levels=3,
            two_stage=False,
            initialize_box_type='no'),
        criterion=dict(
            loss_cls=dict(
                _delete_=True,
                type='CrossEntropyLoss',
                use_sigmoid=False,
                loss_weight=4.0))),
    test_cfg=dict(
        instance_on=False,
        panoptic_on=False,
        semantic_on=True,
        object_mask_thr=0.8))
