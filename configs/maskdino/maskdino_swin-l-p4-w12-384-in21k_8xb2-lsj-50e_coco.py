# Mask DINO Swin-L (ImageNet-22k, 384), COCO instance segmentation, 50 epochs,
# mask-enhanced (bitmask) boxes. Official:
# coco/instance-segmentation/swin/maskdino_R50_bs16_50ep_4s_dowsample1_2048.yaml
# (52.3 mask AP, 59.0 box AP).
_base_ = [
    './maskdino_r50_4xb4-lsj-50e_coco.py',
    '../_base_/models/swin-l-p4-w12-384-in21k.py'
]
model = dict(
    backbone={{_base_.swin_l_backbone}},
    panoptic_head=dict(
        pixel_decoder={{_base_.swin_l_pixel_decoder}},
        predictor=dict(num_feature_levels=5, initialize_box_type='bitmask')))
# The official Swin-L models were trained on 8 GPUs x 2 images.
train_dataloader = dict(batch_size=2)
