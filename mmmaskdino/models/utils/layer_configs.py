# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
"""Configs of the transformer layers of the pixel decoder and the decoder.

Both use mmdet's deformable-DETR layers as the official code configures them:
no dropout, ReLU feed-forward networks with two linear layers.
"""


def deformable_attention_cfg(embed_dims: int, num_heads: int, num_levels: int,
                             num_points: int) -> dict:
    """Config of mmcv's ``MultiScaleDeformableAttention`` without dropout."""
    return dict(
        embed_dims=embed_dims,
        num_heads=num_heads,
        num_levels=num_levels,
        num_points=num_points,
        dropout=0.0,
        batch_first=True)


def ffn_cfg(embed_dims: int, feedforward_channels: int) -> dict:
    """Config of mmcv's ``FFN``: two linear layers, ReLU, no dropout."""
    return dict(
        embed_dims=embed_dims,
        feedforward_channels=feedforward_channels,
        num_fcs=2,
        ffn_drop=0.0,
        act_cfg=dict(type='ReLU', inplace=True))
