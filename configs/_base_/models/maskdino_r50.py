# Mask DINO, ResNet-50, 4 feature levels (3 backbone + 1 down-sampled), COCO
# instance segmentation defaults. Mirrors the official
# `maskdino_R50_bs16_50ep_3s_dowsample1_2048.yaml`. The class counts are set in
# `panoptic_head` only, and whether the class head has a "no object" logit
# follows from `criterion.loss_cls` only (sigmoid focal here, softmax CE in the
# semantic configs); the head and detector fill them in everywhere else.
model = dict(
    type='MaskDINO',
    # DetDataPreprocessor that also pads masks in batches mixing images with
    # and without masks
    data_preprocessor=dict(
        type='MaskDINODataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True,
        pad_size_divisor=32,
        pad_mask=True,
        mask_pad_value=0,
        pad_seg=True,
        seg_pad_value=255),
    backbone=dict(
        type='ResNet',
        depth=50,
        num_stages=4,
        out_indices=(0, 1, 2, 3),
        frozen_stages=-1,
        # detectron2 FrozenBN: affine and statistics fixed, stem trained
        norm_cfg=dict(type='BN', requires_grad=False),
        norm_eval=True,
        style='pytorch',
        init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet50')),
    panoptic_head=dict(
        type='MaskDINOHead',
        num_things_classes=80,
        num_stuff_classes=0,
        pixel_decoder=dict(
            type='MaskDINOEncoder',
            in_channels=[256, 512, 1024, 2048],
            strides=[4, 8, 16, 32],
            transformer_in_features=(1, 2, 3),
            feat_channels=256,
            mask_dim=256,
            num_feature_levels=4,
            feature_order='low2high',
            common_stride=4,
            num_encoder_layers=6,
            ffn_channels=2048,
            num_heads=8,
            num_points=4),
        predictor=dict(
            type='MaskDINODecoder',
            hidden_dim=256,
            num_queries=300,
            num_heads=8,
            ffn_dim=2048,
            num_layers=9,
            mask_dim=256,
            num_feature_levels=4,
            num_points=4,
            two_stage=True,
            initialize_box_type='mask2box',
            initial_pred=True,
            denoising=dict(dn_num=100, noise_scale=0.4)),
        # The official costs and loss weights (MaskDINO's COST_* and *_WEIGHT:
        # class 4, mask 5, dice 5, box 5, GIoU 2), for every prediction set.
        criterion=dict(
            type='MaskDINOLoss',
            assigner=dict(
                type='HungarianAssigner',
                match_costs=[
                    dict(
                        type='FocalLossCost',
                        alpha=0.25,
                        gamma=2.0,
                        eps=1e-8,
                        weight=4.0),
                    dict(type='NormalizedBBoxL1Cost', weight=5.0),
                    dict(type='NormalizedGIoUCost', weight=2.0),
                    dict(type='FastCrossEntropyLossCost', weight=5.0),
                    dict(
                        type='DiceCost',
                        pred_act=True,
                        eps=1.0,
                        naive_dice=True,
                        weight=5.0)
                ]),
            loss_cls=dict(
                type='FocalLoss',
                use_sigmoid=True,
                gamma=2.0,
                alpha=0.25,
                loss_weight=4.0),
            loss_mask=dict(
                type='CrossEntropyLoss', use_sigmoid=True, loss_weight=5.0),
            loss_dice=dict(
                type='DiceLoss',
                use_sigmoid=True,
                activate=True,
                naive_dice=True,
                eps=1.0,
                loss_weight=5.0),
            loss_bbox=dict(type='L1Loss', loss_weight=5.0),
            loss_iou=dict(type='GIoULoss', loss_weight=2.0),
            # mask losses on 112 x 112 points, 3x oversampled, 75 % of them
            # where the prediction is most uncertain
            num_points=12544,
            oversample_ratio=3.0,
            importance_sample_ratio=0.75)),
    panoptic_fusion_head=dict(type='MaskDINOFusionHead'),
    train_cfg=dict(),
    test_cfg=dict(
        instance_on=True,
        panoptic_on=False,
        semantic_on=False,
        max_per_image=100,
        object_mask_thr=0.25,
        iou_thr=0.8,
        pano_temperature=0.06,
        pano_transform_eval=True),
    init_cfg=None)
