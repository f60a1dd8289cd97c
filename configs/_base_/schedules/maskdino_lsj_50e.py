# 50 COCO epochs at batch 16 = 368750 iterations, lr x 0.1 twice (detectron2
# WarmupMultiStepLR; its 10-iteration warm-up with factor 1.0 is a no-op).
_base_ = './maskdino_adamw.py'
# The official COCO recipes train with AMP (SOLVER.AMP.ENABLED: True): fp16
# autocast with a dynamic loss scale; deformable attention, the decoder
# layers and the matching stay in fp32 inside the model. Without CUDA the
# tools fall back to fp32 (or bfloat16 with --amp).
optim_wrapper = dict(type='AmpOptimWrapper', loss_scale='dynamic')
max_iters = 368750
param_scheduler = dict(
    type='MultiStepLR',
    begin=0,
    end=max_iters,
    by_epoch=False,
    milestones=[327778, 355092],
    gamma=0.1)
train_cfg = dict(
    type='IterBasedTrainLoop', max_iters=max_iters, val_interval=5000)
