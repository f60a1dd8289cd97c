# Mask DINO R50, COCO instance segmentation + detection, 50 epochs, LSJ 1024.
# Official: maskdino_R50_bs16_50ep_3s_dowsample1_2048.yaml (46.3 mask AP, 51.7
# box AP).
# Mixed precision (AMP) is on, as officially (see maskdino_lsj_50e.py).
_base_ = [
    '../_base_/models/maskdino_r50.py',
    '../_base_/datasets/coco_instance_lsj.py',
    '../_base_/schedules/maskdino_lsj_50e.py', '../_base_/default_runtime.py'
]
# The official R50 models were trained on 4 GPUs x 4 images (denoising
# groups are formed per GPU batch): 4 x 4 = 16 images per iteration.
train_dataloader = dict(batch_size=4)
