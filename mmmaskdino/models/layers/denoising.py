# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
"""DN-DETR-style denoising queries of Mask DINO (official
``MaskDINODecoder.prepare_for_dn``,
``maskdino/modeling/transformer_decoder/maskdino_decoder.py``).

mmdet's ``CdnQueryGenerator`` (DINO) cannot be reused: it builds contrastive
groups (a positive and a negative copy of every GT, ``2 * max #GT`` slots per
group), noises boxes in xyxy with a sign/magnitude split, and always keeps at
least one group. Mask DINO uses positive-only groups of ``max #GT`` slots, box
noise in cxcywh, and skips DN when ``max #GT > dn_num``.
"""
from typing import List, Optional

import torch
from mmdet.models.layers.transformer import inverse_sigmoid
from mmdet.registry import MODELS
from mmengine.model import BaseModule
from mmengine.structures import InstanceData
from torch import Tensor, nn


@MODELS.register_module()
class MaskDINODenoising(BaseModule):
    """Build the noised ground-truth queries, anchors and self-attention mask.

    Args:
        num_classes (int): Number of classes ``C``; size of ``label_enc`` (no
            "no-object" row).
        embed_dims (int): Query dimension ``D``.
        dn_num (int): Budget of denoising queries per image; the number of
            groups is ``dn_num // max #GT``. Defaults to 100.
        noise_scale (float): Box noise scale; labels are flipped with
            probability ``noise_scale * 0.5``. Defaults to 0.4.
        init_cfg (dict, optional): Initialisation config. Defaults to None.
    """

    def __init__(self,
                 num_classes: int,
                 embed_dims: int,
                 dn_num: int = 100,
                 noise_scale: float = 0.4,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.num_classes = num_classes
        self.embed_dims = embed_dims
        self.dn_num = dn_num
        self.noise_scale = noise_scale
        self.label_enc = nn.Embedding(num_classes, embed_dims)

    def forward(self, batch_gt_instances: List[InstanceData],
                num_queries: int) -> Optional[dict]:
        """Noise the GT of the batch into ``num_groups`` groups of ``max #GT``
        slots.

        Args:
            batch_gt_instances (list[InstanceData]): Per image ``labels (n,)``
                and ``bboxes (n, 4)`` normalised cxcywh.
            num_queries (int): Number of matching queries ``Q`` that follow the
                DN queries.

        Returns:
            dict or None: None when no image has GT or ``max #GT > dn_num``;
            else ``query (bs, P, D)``, ``ref_logits (bs, P, 4)``, ``attn_mask
            (P + Q, P + Q)`` bool (True = blocked) and ``dn_meta =
            dict(pad_size=P, num_groups=G, single_pad=max #GT)``.
        """
        num_gts = [len(gt) for gt in batch_gt_instances]
        single_pad = max(num_gts, default=0)
        if single_pad == 0 or single_pad > self.dn_num:
            return None
        num_groups = self.dn_num // single_pad
        pad_size = single_pad * num_groups
        device = batch_gt_instances[0].labels.device

        labels = torch.cat([gt.labels for gt in batch_gt_instances]).long()
        boxes = torch.cat([gt.bboxes for gt in batch_gt_instances]).float()
        noised_labels = self._noise_labels(labels.repeat(num_groups))
        noised_boxes = self._noise_boxes(boxes.repeat(num_groups, 1))

        # group-major order, as ``labels.repeat(num_groups)``: slot g *
        # single_pad + t of image b
        batch_idx = torch.cat([
            torch.full((n, ), b, dtype=torch.long, device=device)
            for b, n in enumerate(num_gts)
        ]).repeat(num_groups)
        gt_idx = torch.cat([torch.arange(n, device=device) for n in num_gts])
        group_start = torch.arange(num_groups, device=device) * single_pad
        slot_idx = (group_start[:, None] + gt_idx[None, :]).flatten()

        label_embeds = self.label_enc(noised_labels)
        query = label_embeds.new_zeros(len(num_gts), pad_size, self.embed_dims)
        query[batch_idx, slot_idx] = label_embeds
        ref_logits = noised_boxes.new_zeros(len(num_gts), pad_size, 4)
        ref_logits[batch_idx, slot_idx] = inverse_sigmoid(
            noised_boxes, eps=1e-5)

        return dict(
            query=query,
            ref_logits=ref_logits,
            attn_mask=self.build_attn_mask(single_pad, num_groups, num_queries,
                                           device),
            dn_meta=dict(
                pad_size=pad_size,
                num_groups=num_groups,
                single_pad=single_pad))

    def _noise_labels(self, labels: Tensor) -> Tensor:
        """Replace each label with probability ``noise_scale / 2`` by one
        uniform in ``[0, C)``.

        Args:
            labels (Tensor): ``(N,)`` long.

        Returns:
            Tensor: ``(N,)`` long noised labels.
        """
        if self.noise_scale <= 0:
            return labels
        flip = torch.rand(
            labels.shape, device=labels.device) < self.noise_scale * 0.5
        chosen = flip.nonzero().view(-1)
        new_labels = torch.randint(
            0, self.num_classes, chosen.shape, device=labels.device)
        return labels.index_put((chosen, ), new_labels)

    def _noise_boxes(self, boxes: Tensor) -> Tensor:
        """Shift centres by up to ``noise_scale * (w, h) / 2`` and scale sizes
        by ``1 +- noise_scale``.

        Args:
            boxes (Tensor): ``(N, 4)`` normalised cxcywh.

        Returns:
            Tensor: ``(N, 4)`` noised boxes clamped to ``[0, 1]``.
        """
        if self.noise_scale <= 0:
            return boxes
        diff = torch.cat([boxes[:, 2:] / 2, boxes[:, 2:]], dim=1)
        noise = torch.rand(boxes.shape, device=boxes.device) * 2 - 1.0
        return (boxes + noise * diff * self.noise_scale).clamp(
            min=0.0, max=1.0)

    @staticmethod
    def build_attn_mask(single_pad: int, num_groups: int, num_queries: int,
                        device: torch.device) -> Tensor:
        """Self-attention mask over ``[DN slots, matching queries]``.

        Matching queries cannot see any DN slot and each DN group cannot see
        the other groups; DN slots see the matching queries.

        Args:
            single_pad (int): Slots per group (max #GT).
            num_groups (int): Number of DN groups ``G``.
            num_queries (int): Number of matching queries ``Q``.
            device (torch.device): Device of the mask.

        Returns:
            Tensor: ``(P + Q, P + Q)`` bool, True = attention blocked.
        """
        pad_size = single_pad * num_groups
        size = pad_size + num_queries
        group = torch.arange(pad_size, device=device) // single_pad
        attn_mask = torch.zeros(size, size, dtype=torch.bool, device=device)
        attn_mask[pad_size:, :pad_size] = True
        attn_mask[:pad_size, :pad_size] = group[:, None] != group[None, :]
        return attn_mask
