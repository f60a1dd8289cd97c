# Short iteration-based schedule for the bundled shapes data (CPU-sized).
# The backbone is trained from scratch, so it keeps the full learning rate.
_base_ = './maskdino_adamw.py'
max_iters = 2000
optim_wrapper = dict(
    optimizer=dict(lr=3e-4),
    paramwise_cfg=dict(custom_keys=dict(backbone=dict(lr_mult=1.0))))
param_scheduler = dict(
    type='MultiStepLR',
    begin=0,
    end=max_iters,
    by_epoch=False,
    milestones=[int(max_iters * 0.85)],
    gamma=0.1)
train_cfg = dict(
    type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
# the learning rate above belongs to batch 4 (1 process x 4 images)
auto_scale_lr = dict(base_batch_size=4)
