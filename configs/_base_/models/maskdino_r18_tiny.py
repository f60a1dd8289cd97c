# A small Mask DINO for the bundled shapes data on CPU: ResNet-18 trained from
# scratch, hidden size 64, 2 encoder and 3 decoder layers, 30 queries and
# 1024 sampled mask points. The class count follows the dataset metainfo.
# Anchors come from the selected encoder tokens ('no' mask enhancement): with a
# backbone trained from scratch, early masks are too poor to seed boxes
# (measured: the mask2box anchors' L1 box loss stayed at twice the encoder's).
_base_ = './maskdino_r50.py'
model = dict(
    backbone=dict(
        depth=18,
        norm_cfg=dict(type='BN', requires_grad=True),
        norm_eval=False,
        init_cfg=None),
    panoptic_head=dict(
        pixel_decoder=dict(
            in_channels=[64, 128, 256, 512],
            feat_channels=64,
            mask_dim=64,
            num_encoder_layers=2,
            ffn_channels=256),
        predictor=dict(
            hidden_dim=64,
            num_queries=30,
            ffn_dim=256,
            num_layers=3,
            mask_dim=64,
            initialize_box_type='no',
            denoising=dict(dn_num=30, noise_scale=0.4)),
        criterion=dict(num_points=1024)))
