# Mask DINO R50, ADE20K semantic segmentation, 160k iterations, 512x512 crops.
# Official: ade20k/semantic-segmentation/maskdino_R50_bs16_160k_steplr.yaml
# (48.7 mIoU).
_base_ = [
    '../_base_/models/maskdino_r50_semantic.py',
    '../_base_/datasets/ade20k_semantic_512.py',
    '../_base_/schedules/maskdino_steplr.py', '../_base_/default_runtime.py'
]
# The official R50 models were trained on 4 GPUs x 4 images (denoising
# groups are formed per GPU batch): 4 x 4 = 16 images per iteration.
train_dataloader = dict(batch_size=4)
