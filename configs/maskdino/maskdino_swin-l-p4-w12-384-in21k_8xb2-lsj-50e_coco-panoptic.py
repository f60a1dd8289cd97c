# Mask DINO Swin-L (ImageNet-22k, 384), COCO panoptic segmentation (58.3 PQ).
# Official:
# coco/panoptic-segmentation/swin/maskdino_R50_bs16_50ep_4s_dowsample1_2048.yaml.
_base_ = [
    './maskdino_r50_4xb4-lsj-50e_coco-panoptic.py',
    '../_base_/models/swin-l-p4-w12-384-in21k.py'
]
model = dict(
    backbone={{_base_.swin_l_backbone}},
    panoptic_head=dict(
        pixel_decoder={{_base_.swin_l_pixel_decoder}},
        predictor=dict(num_feature_levels=5)))
# The official Swin-L models were trained on 8 GPUs x 2 images.
train_dataloader = dict(batch_size=2)
