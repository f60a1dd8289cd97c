# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
"""Deformable decoder stack of Mask DINO (official
``dino_decoder.TransformerDecoder``)."""
from typing import List, Optional, Sequence, Tuple

import torch
from mmdet.models.layers import DinoTransformerDecoder
from mmdet.models.layers.transformer import coordinate_to_encoding
from torch import Tensor, nn

from .box_ops import inverse_sigmoid


class MaskDINOTransformerDecoder(DinoTransformerDecoder):
    """mmdet's DINO decoder with Mask DINO's two numeric differences.

    Layers (``DeformableDetrTransformerDecoderLayer``: self-attn -> ``norms.0``
    -> MSDA -> ``norms.1`` -> FFN -> ``norms.2``), ``ref_point_head`` and
    ``norm`` are mmdet's. ``forward`` is re-implemented because mmdet's
    hard-codes two values that differ:

    - the reference update uses ``inverse_sigmoid`` with eps 1e-5 (mmdet:
      1e-3);
    - the query sine embedding uses ``embed_dims // 2`` features per box
      coordinate (mmdet: 128, equal only for 256-d models), so
      ``ref_point_head`` is ``MLP(2 * embed_dims, embed_dims, embed_dims, 2)``
      for every hidden size.

    No padding mask is used and the valid ratios are all 1 (the official
    decoder builds all-False masks). Under mixed precision the layers run in
    fp32, the rest under autocast, as officially.
    """

    def forward(self,
                query: Tensor,
                value: Tensor,
                reference_points: Tensor,
                spatial_shapes: Tensor,
                level_start_index: Tensor,
                valid_ratios: Tensor,
                reg_branches: Sequence[nn.Module],
                self_attn_mask: Optional[Tensor] = None,
                **kwargs) -> Tuple[List[Tensor], List[Tensor]]:
        """Run the decoder layers with iterative box refinement ("look forward
        twice").

        Args:
            query (Tensor): ``(bs, nq, dim)`` content queries.
            value (Tensor): ``(bs, num_tokens, dim)`` memory.
            reference_points (Tensor): ``(bs, nq, 4)`` initial cxcywh boxes in
                [0, 1].
            spatial_shapes (Tensor): ``(num_levels, 2)`` ``(h, w)`` per memory
                level.
            level_start_index (Tensor): ``(num_levels,)`` start token of each
                level.
            valid_ratios (Tensor): ``(bs, num_levels, 2)`` (all ones in Mask
                DINO).
            reg_branches (Sequence[nn.Module]): one box-delta head per layer.
            self_attn_mask (Tensor, optional): ``(nq, nq)`` bool, True =
                blocked.

        Returns:
            tuple[list[Tensor], list[Tensor]]: ``num_layers`` hidden states
            ``(bs, nq, dim)`` after ``self.norm``, and ``num_layers + 1``
            references ``(bs, nq, 4)``: the initial one, then the refined box
            of every layer (not detached, for the box loss).
        """
        hidden_states = []
        references = [reference_points]
        for layer, reg_branch in zip(self.layers, reg_branches):
            reference_points_input = reference_points[:, :, None] * torch.cat(
                [valid_ratios, valid_ratios], -1)[:, None]
            query_sine_embed = coordinate_to_encoding(
                reference_points_input[:, :, 0, :],
                num_feats=self.embed_dims // 2)
            query_pos = self.ref_point_head(query_sine_embed)
            # The layers run in fp32 under mixed precision (official:
            # dino_decoder.py, DeformableTransformerDecoderLayer.forward is
            # decorated with autocast(enabled=False); its half-precision
            # inputs meet fp32 ones there and are promoted, as here).
            with torch.autocast(device_type=query.device.type, enabled=False):
                query = layer(
                    query.float(),
                    query_pos=query_pos.float(),
                    value=value.float(),
                    key_padding_mask=None,
                    self_attn_mask=self_attn_mask,
                    spatial_shapes=spatial_shapes,
                    level_start_index=level_start_index,
                    valid_ratios=valid_ratios,
                    reference_points=reference_points_input.float(),
                    **kwargs)
            # The refinement reads the raw layer output; the heads read
            # ``norm(query)``.
            new_reference_points = (
                reg_branch(query) +
                inverse_sigmoid(reference_points)).sigmoid()
            reference_points = new_reference_points.detach()
            hidden_states.append(self.norm(query))
            references.append(new_reference_points)
        return hidden_states, references
