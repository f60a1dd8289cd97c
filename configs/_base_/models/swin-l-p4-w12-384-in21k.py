# Swin-L (patch 4, window 12, 384, ImageNet-22k) as used by the official
# Swin-L Mask DINO configs: 4 backbone levels enter the encoder, plus one
# down-sampled level (5 in all). Use as `backbone={{_base_.swin_l_backbone}}`.
pretrained = 'https://github.com/SwinTransformer/storage/releases/download/v1.0.0/swin_large_patch4_window12_384_22k.pth'  # noqa
swin_l_backbone = dict(
    _delete_=True,
    type='SwinTransformer',
    pretrain_img_size=384,
    embed_dims=192,
    depths=[2, 2, 18, 2],
    num_heads=[6, 12, 24, 48],
    window_size=12,
    mlp_ratio=4,
    qkv_bias=True,
    qk_scale=None,
    drop_rate=0.0,
    attn_drop_rate=0.0,
    drop_path_rate=0.3,
    patch_norm=True,
    out_indices=(0, 1, 2, 3),
    with_cp=False,
    convert_weights=True,
    frozen_stages=-1,
    init_cfg=dict(type='Pretrained', checkpoint=pretrained))
swin_l_pixel_decoder = dict(
    in_channels=[192, 384, 768, 1536],
    transformer_in_features=(0, 1, 2, 3),
    num_feature_levels=5)
