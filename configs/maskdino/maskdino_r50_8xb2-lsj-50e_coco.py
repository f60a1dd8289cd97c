# Mask DINO R50, COCO instance segmentation + detection, 50 epochs, LSJ 1024.
# Official: maskdino_R50_bs16_50ep_3s_dowsample1_2048.yaml (46.3 mask AP, 51.7 box AP).
# The official run used AMP on A100s; add `--amp` to tools/train.py on GPUs.
_base_ = [
    '../_base_/models/maskdino_r50.py',
    '../_base_/datasets/coco_instance_lsj.py',
    '../_base_/schedules/maskdino_lsj_50e.py', '../_base_/default_runtime.py'
]
