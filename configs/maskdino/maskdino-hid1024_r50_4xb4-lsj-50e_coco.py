# Mask DINO R50 with encoder FFN 1024, 3 feature levels (high2low) and bitmask
# box initialisation. Official: maskdino_R50_bs16_50ep_3s.yaml (46.1 mask AP).
_base_ = './maskdino_r50_4xb4-lsj-50e_coco.py'
model = dict(
    panoptic_head=dict(
        pixel_decoder=dict(
            num_feature_levels=3, feature_order='high2low', ffn_channels=1024),
        predictor=dict(num_feature_levels=3, initialize_box_type='bitmask')))
