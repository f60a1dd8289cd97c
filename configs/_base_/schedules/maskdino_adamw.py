# The official Mask DINO solver: AdamW 1e-4, weight decay 0.05 except norms and
# embeddings, backbone lr x 0.1, full-model gradient clipping at 0.01 (L2).
# Schedules (iterations, milestones) are set by the configs that use it.
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(
        type='AdamW', lr=1e-4, weight_decay=0.05, eps=1e-8,
        betas=(0.9, 0.999)),
    clip_grad=dict(max_norm=0.01, norm_type=2),
    paramwise_cfg=dict(
        norm_decay_mult=0.0,
        custom_keys={
            'backbone': dict(lr_mult=0.1, decay_mult=1.0),
            'label_enc': dict(lr_mult=1.0, decay_mult=0.0),
            'query_feat': dict(lr_mult=1.0, decay_mult=0.0),
            'query_embed': dict(lr_mult=1.0, decay_mult=0.0),
            'relative_position_bias_table': dict(decay_mult=0.0),
            'absolute_pos_embed': dict(decay_mult=0.0),
        }))
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
# the official recipe uses 16 images per iteration
auto_scale_lr = dict(enable=False, base_batch_size=16)
