# Mask DINO R50, Cityscapes semantic segmentation, 90k iterations, 512x1024
# crops, SyncBN backbone (needs GPUs). Official:
# maskdino_R50_bs16_90k_steplr.yaml (79.8 mIoU).
_base_ = [
    '../_base_/models/maskdino_r50_semantic.py',
    '../_base_/datasets/cityscapes_semantic_512x1024.py',
    '../_base_/schedules/maskdino_steplr.py', '../_base_/default_runtime.py'
]
model = dict(
    data_preprocessor=dict(batch_augments={{_base_.batch_augments}}),
    backbone=dict(
        norm_cfg=dict(type='SyncBN', requires_grad=True), norm_eval=False),
    panoptic_head=dict(num_stuff_classes=19),
    test_cfg=dict(object_mask_thr=0.8))
max_iters = 90000
param_scheduler = dict(end=max_iters, milestones=[80000, 87000])
train_cfg = dict(max_iters=max_iters)
# The official R50 models were trained on 4 GPUs x 4 images (denoising
# groups are formed per GPU batch): 4 x 4 = 16 images per iteration.
train_dataloader = dict(batch_size=4)
