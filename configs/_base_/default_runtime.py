# `sys` is the one module a plain (non-lazy) MMEngine config may import here.
import sys

default_scope = 'mmdet'
custom_imports = dict(imports=['mmmaskdino'], allow_failed_imports=False)

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(
        type='CheckpointHook', interval=5000, by_epoch=False,
        max_keep_ckpts=3),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='DetVisualizationHook'))
# RNGStateHook saves and restores the torch random stream, so `--resume`
# reproduces the uninterrupted run exactly (mmengine itself restores only the
# data order); WeightsOnlyCheckpointHook writes checkpoints that torch >= 2.6
# loads with its default weights_only=True.
custom_hooks = [
    dict(type='RNGStateHook'),
    dict(type='WeightsOnlyCheckpointHook')
]

env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'))

# Training logs (loss curves, learning rate, metrics) go to
# work_dir/<timestamp>/vis_data/scalars.json, and to TensorBoard event files in
# the same folder when the `tensorboard` package is installed
# (`tensorboard --logdir work_dirs/`).
vis_backends = [dict(type='LocalVisBackend')]
if any(
        finder.find_spec('tensorboard', None) is not None
        for finder in sys.meta_path if hasattr(finder, 'find_spec')):
    vis_backends.append(dict(type='TensorboardVisBackend'))
visualizer = dict(
    type='DetLocalVisualizer', vis_backends=vis_backends, name='visualizer')
log_processor = dict(type='LogProcessor', window_size=50, by_epoch=False)

log_level = 'INFO'
load_from = None
resume = False
