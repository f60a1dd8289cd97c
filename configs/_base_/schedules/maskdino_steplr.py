# Step schedule of the official semantic recipes (160k iterations for ADE20K).
_base_ = './maskdino_adamw.py'
max_iters = 160000
param_scheduler = dict(
    type='MultiStepLR',
    begin=0,
    end=max_iters,
    by_epoch=False,
    milestones=[135000, 150000],
    gamma=0.1)
train_cfg = dict(
    type='IterBasedTrainLoop', max_iters=max_iters, val_interval=5000)
