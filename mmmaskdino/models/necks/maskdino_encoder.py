# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
"""Mask DINO pixel decoder: multi-scale deformable encoder plus one-step FPN
fusion."""
import math
from typing import List, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmcv.cnn import ConvModule
from mmdet.models.layers import (DeformableDetrTransformerEncoder,
                                 SinePositionalEncoding)
from mmdet.registry import MODELS
from mmdet.utils import ConfigType, OptMultiConfig
from mmengine.model import BaseModule, caffe2_xavier_init, xavier_init
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from ..layers.chunked_ffn import use_chunked_ffn
from ..layers.gather_deformable_attention import use_gather_attention
from ..utils import deformable_attention_cfg, ffn_cfg


@MODELS.register_module()
class MaskDINOEncoder(BaseModule):
    """Pixel decoder of Mask DINO (official
    ``MaskDINOEncoder.forward_features``,
    ``maskdino/modeling/pixel_decoder/maskdino_encoder.py``).

    The selected backbone maps (plus extra stride-2 levels) are projected to
    ``feat_channels``, refined by a post-norm multi-scale deformable encoder
    and fused with the finest backbone map(s) into the 1/``common_stride`` mask
    features. mmdet's ``MSDeformAttnPixelDecoder`` cannot be reused: it has no
    extra down-sampled levels, a fixed level order, and its positional encoding
    differs (offset and temperature).

    Level order (the "official encoder order"): with ``'low2high'`` the
    backbone levels come finest first followed by the extra levels coarsest
    first; with ``'high2low'`` the extra levels coarsest first, then the
    backbone levels coarsest first. For the shipped configs this is
    1/8, 1/16, 1/32, 1/64 and 1/32, 1/16, 1/8 respectively. Padding masks are
    never used (the official encoder builds
    all-False masks) and the whole forward runs in fp32.

    Args:
        in_channels (Sequence[int]): Channels of the backbone maps, in
            increasing stride order.
        strides (Sequence[int]): Strides of the backbone maps.
        transformer_in_features (Sequence[int]): Indices of the backbone maps
            fed to the encoder.
        feat_channels (int): Hidden dim ``D`` of the encoder and the convs.
        mask_dim (int): Channels of the returned mask features.
        num_feature_levels (int): Total encoder levels, including the extra
            stride-2 levels appended after the backbone ones.
        feature_order (str): ``'low2high'`` or ``'high2low'``.
        common_stride (int): Stride of the mask features.
        num_encoder_layers (int): Number of deformable encoder layers.
        ffn_channels (int): Hidden width of the encoder FFN.
        num_heads (int): Heads of the deformable attention.
        num_points (int): Sampling points per head and level.
        norm_cfg (dict): Norm of the projections and FPN convs.
        num_cp (int): Number of encoder layers, from the first, whose
            activations are recomputed in the backward pass instead of being
            stored (``torch.utils.checkpoint``), trading compute for memory.
            Only active in training with gradients. Defaults to 0.
        init_cfg (dict or list[dict], optional): Initialization config.
    """

    def __init__(self,
                 in_channels: Sequence[int] = (256, 512, 1024, 2048),
                 strides: Sequence[int] = (4, 8, 16, 32),
                 transformer_in_features: Sequence[int] = (1, 2, 3),
                 feat_channels: int = 256,
                 mask_dim: int = 256,
                 num_feature_levels: int = 4,
                 feature_order: str = 'low2high',
                 common_stride: int = 4,
                 num_encoder_layers: int = 6,
                 ffn_channels: int = 2048,
                 num_heads: int = 8,
                 num_points: int = 4,
                 norm_cfg: ConfigType = dict(type='GN', num_groups=32),
                 num_cp: int = 0,
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(init_cfg=init_cfg)
        assert feature_order in ('low2high', 'high2low'), feature_order
        assert len(in_channels) == len(strides)
        assert list(strides) == sorted(strides), 'maps must be stride-ordered'
        assert num_feature_levels >= len(transformer_in_features)
        assert 0 <= num_cp <= num_encoder_layers, (
            f'num_cp={num_cp} must lie in [0, num_encoder_layers='
            f'{num_encoder_layers}]')
        self.num_cp = num_cp
        self.feature_order = feature_order
        self.num_feature_levels = num_feature_levels
        # Official order: decreasing stride for low2high, increasing otherwise.
        self.transformer_indices = sorted(
            transformer_in_features,
            key=lambda i: strides[i],
            reverse=feature_order == 'low2high')
        trans_channels = [in_channels[i] for i in self.transformer_indices]
        self.extra_source_index = self.transformer_indices[
            trans_channels.index(max(trans_channels))]
        self.high_resolution_index = 0 if feature_order == 'low2high' else -1

        self.input_proj = self._build_input_proj(trans_channels, feat_channels,
                                                 norm_cfg)
        self.encoder = DeformableDetrTransformerEncoder(
            num_layers=num_encoder_layers,
            layer_cfg=dict(
                self_attn_cfg=deformable_attention_cfg(feat_channels,
                                                       num_heads,
                                                       num_feature_levels,
                                                       num_points),
                ffn_cfg=ffn_cfg(feat_channels, ffn_channels),
                norm_cfg=dict(type='LN')))
        use_gather_attention(self.encoder)
        use_chunked_ffn(self.encoder)
        # N(0, 1) as the official init, so a model is usable even before
        # init_weights() (e.g. when weights are loaded afterwards)
        self.level_embed = nn.Parameter(
            torch.randn(num_feature_levels, feat_channels))
        self.positional_encoding = SinePositionalEncoding(
            num_feats=feat_channels // 2,
            temperature=10000,
            normalize=True,
            offset=0.0)

        min_stride = min(strides[i] for i in transformer_in_features)
        num_fpn_levels = max(
            int(math.log2(min_stride) - math.log2(common_stride)), 1)
        # Entry i acts on backbone map i (official adapter_{i+1}, layer_{i+1}).
        self.lateral_convs = nn.ModuleList(
            ConvModule(c, feat_channels, 1, norm_cfg=norm_cfg, act_cfg=None)
            for c in in_channels[:num_fpn_levels])
        self.output_convs = nn.ModuleList(
            ConvModule(
                feat_channels,
                feat_channels,
                3,
                padding=1,
                norm_cfg=norm_cfg,
                act_cfg=dict(type='ReLU')) for _ in range(num_fpn_levels))
        self.mask_features = nn.Conv2d(feat_channels, mask_dim, 1)

    def _build_input_proj(self, trans_channels: List[int], feat_channels: int,
                          norm_cfg: ConfigType) -> nn.ModuleList:
        """1x1 projections (reversed official order) then stride-2 extras.

        The first extra level is a 3x3 stride-2 conv on the backbone map with
        the most channels; further extras chain on the previous extra level.
        """
        projs = [
            ConvModule(
                c,
                feat_channels,
                1,
                bias=True,
                norm_cfg=norm_cfg,
                act_cfg=None) for c in trans_channels[::-1]
        ]
        in_c = max(trans_channels)
        for _ in range(self.num_feature_levels - len(trans_channels)):
            projs.append(
                ConvModule(
                    in_c,
                    feat_channels,
                    3,
                    stride=2,
                    padding=1,
                    bias=True,
                    norm_cfg=norm_cfg,
                    act_cfg=None))
            in_c = feat_channels
        return nn.ModuleList(projs)

    def init_weights(self) -> None:
        """Official training initialisation (official
        ``MSDeformAttnTransformerEncoderOnly._reset_parameters`` and
        ``MaskDINOEncoder.__init__``)."""
        for proj in self.input_proj:
            xavier_init(proj.conv, gain=1, bias=0, distribution='uniform')
        for p in self.encoder.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)
        for layer in self.encoder.layers:
            layer.self_attn.init_weights()
        nn.init.normal_(self.level_embed)
        for conv in [*self.lateral_convs, *self.output_convs]:
            caffe2_xavier_init(conv.conv, bias=0)
        caffe2_xavier_init(self.mask_features, bias=0)

    def _pos_embed(self, x: Tensor) -> Tensor:
        """Sine encoding of an all-valid map: (bs, C, h, w) -> (bs, D, h, w).
        """
        mask = x.new_zeros((x.shape[0], *x.shape[-2:]), dtype=torch.bool)
        return self.positional_encoding(mask)

    def _build_levels(
            self, feats: List[Tensor]) -> Tuple[List[Tensor], List[Tensor]]:
        """Projected maps and positional encodings in official encoder order.

        Returns two lists of ``num_feature_levels`` tensors (bs, D, h_l, w_l).
        As in the official code the encodings of backbone levels are computed
        from the raw backbone maps (only their shape matters).
        """
        num_trans = len(self.transformer_indices)
        srcs, pos = [], []
        for proj, idx in zip(self.input_proj, self.transformer_indices[::-1]):
            srcs.append(proj(feats[idx]))
            pos.append(self._pos_embed(feats[idx]))
        extra_srcs, extra_pos = [], []
        x = feats[self.extra_source_index]
        for proj in self.input_proj[num_trans:]:
            x = proj(x)
            extra_srcs.append(x)
            extra_pos.append(self._pos_embed(x))
        # Extra levels are reversed (coarsest first) for both orders.
        extra_srcs, extra_pos = extra_srcs[::-1], extra_pos[::-1]
        if self.feature_order == 'low2high':
            return srcs + extra_srcs, pos + extra_pos
        return extra_srcs + srcs, extra_pos + pos

    def _encode(self, srcs: List[Tensor], pos: List[Tensor]) -> List[Tensor]:
        """Run the deformable encoder over all levels.

        Args:
            srcs (list[Tensor]): (bs, D, h_l, w_l) per level.
            pos (list[Tensor]): (bs, D, h_l, w_l) per level.

        Returns:
            list[Tensor]: encoder outputs (bs, D, h_l, w_l) per level.
        """
        bs, dims = srcs[0].shape[:2]
        hw_shapes = [src.shape[-2:] for src in srcs]
        spatial_shapes = torch.as_tensor(
            hw_shapes, dtype=torch.long, device=srcs[0].device)
        level_start_index = torch.cat((spatial_shapes.new_zeros(
            (1, )), spatial_shapes.prod(1).cumsum(0)[:-1]))
        query = torch.cat([src.flatten(2).transpose(1, 2) for src in srcs], 1)
        query_pos = torch.cat([
            p.flatten(2).transpose(1, 2) +
            self.level_embed[lvl].view(1, 1, -1) for lvl, p in enumerate(pos)
        ], 1)
        valid_ratios = query.new_ones(bs, len(srcs), 2)
        # The loop of DeformableDetrTransformerEncoder.forward, with optional
        # activation checkpointing of the first ``num_cp`` layers.
        reference_points = self.encoder.get_encoder_reference_points(
            spatial_shapes, valid_ratios, device=query.device)
        layer_kwargs = dict(
            query_pos=query_pos,
            key_padding_mask=None,
            spatial_shapes=spatial_shapes,
            level_start_index=level_start_index,
            valid_ratios=valid_ratios,
            reference_points=reference_points)
        memory = query
        for i, layer in enumerate(self.encoder.layers):
            if i < self.num_cp and self.training and torch.is_grad_enabled():
                memory = checkpoint(
                    layer, memory, use_reentrant=False, **layer_kwargs)
            else:
                memory = layer(memory, **layer_kwargs)
        splits = memory.split([h * w for h, w in hw_shapes], dim=1)
        return [
            z.transpose(1, 2).reshape(bs, dims, h, w)
            for z, (h, w) in zip(splits, hw_shapes)
        ]

    def _fuse(self, feats: List[Tensor], outs: List[Tensor]) -> Tensor:
        """Top-down fusion with the finest backbone maps.

        Every step upsamples ``outs[high_resolution_index]`` (bilinear, as the
        official code, whose comment says nearest) and appends its result, so
        with several FPN steps ``low2high`` always reuses the finest encoder
        level while ``high2low`` chains on the previous step.

        Returns:
            Tensor: fused map (bs, D, h4, w4) before ``mask_features``.
        """
        outs = list(outs)
        for i in reversed(range(len(self.lateral_convs))):
            cur = self.lateral_convs[i](feats[i])
            up = F.interpolate(
                outs[self.high_resolution_index],
                size=cur.shape[-2:],
                mode='bilinear',
                align_corners=False)
            outs.append(self.output_convs[i](cur + up))
        return outs[-1]

    def forward(self, feats: Sequence[Tensor]) -> Tuple[Tensor, List[Tensor]]:
        """Forward in fp32 (autocast disabled, inputs cast to float).

        Args:
            feats (Sequence[Tensor]): backbone maps (bs, C_i, H_i, W_i) in
                increasing stride order.

        Returns:
            tuple: ``mask_features`` (bs, mask_dim, h4, w4) and the list of
            ``num_feature_levels`` encoder maps (bs, D, h_l, w_l) in official
            encoder order.
        """
        with torch.autocast(device_type=feats[0].device.type, enabled=False):
            feats = [f.float() for f in feats]
            srcs, pos = self._build_levels(feats)
            multi_scale_features = self._encode(srcs, pos)
            mask_features = self.mask_features(
                self._fuse(feats, multi_scale_features))
        return mask_features, multi_scale_features
