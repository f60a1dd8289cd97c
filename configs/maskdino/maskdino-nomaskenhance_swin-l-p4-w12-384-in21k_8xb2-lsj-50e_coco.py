# Mask DINO Swin-L without mask-enhanced anchor boxes (52.1 mask AP, 58.3 box
# AP).
# Official: coco/instance-segmentation/swin/..._no_maskEnhance.yaml.
_base_ = './maskdino_swin-l-p4-w12-384-in21k_8xb2-lsj-50e_coco.py'
model = dict(panoptic_head=dict(predictor=dict(initialize_box_type='no')))
