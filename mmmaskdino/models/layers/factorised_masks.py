# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
"""Mask logits kept as their two factors during training.

Mask DINO's mask logits are ``einsum('bqc,bchw->bqhw', mask_embeds,
mask_features)`` (official ``MaskDINODecoder.forward_prediction_heads``,
``maskdino/modeling/transformer_decoder/maskdino_decoder.py``). The official
criterion computes them at full resolution for every query of every prediction
set (11 sets of up to 400 queries at 256 x 256 per image in the COCO recipe),
but reads them only through bilinear point samples: at points shared by all
queries in matching, and at points of each matched mask in the loss.

Bilinear sampling is linear, so sampling the logits equals sampling the
features and then taking the product with the embeddings; and the loss needs
full-resolution logits only for the matched queries. :class:`FactorisedMasks`
keeps the factors and computes exactly these: equal to the full computation up
to the order of float sums, without the ``(bs, Q, h, w)`` tensors, their
products and their gradients.
"""
from typing import List, Sequence, Tuple

import torch
from mmcv.ops import point_sample
from torch import Tensor


class FactorisedMasks:
    """Mask logits ``einsum('bqc,bchw->bqhw', embeds, features)``, not
    multiplied out.

    Args:
        embeds (Tensor): ``(bs, Q, C)`` mask embeddings of the queries.
        features (Tensor): ``(bs, C, h, w)`` mask features (shared by all
            prediction sets).
    """

    def __init__(self, embeds: Tensor, features: Tensor) -> None:
        assert embeds.dim() == 3 and features.dim() == 4 and \
            embeds.shape[::2] == features.shape[:2], \
            f'embeds {tuple(embeds.shape)} and features ' \
            f'{tuple(features.shape)} do not multiply'
        self.embeds = embeds
        self.features = features

    @property
    def shape(self) -> torch.Size:
        """``(bs, Q, h, w)``, the shape of the logits."""
        return torch.Size((*self.embeds.shape[:2], *self.features.shape[2:]))

    def split(self,
              sizes: Sequence[int],
              dim: int = 1) -> List['FactorisedMasks']:
        """Split the queries, as ``Tensor.split`` along ``dim=1``."""
        assert dim == 1, 'only the query dimension can be split'
        return [
            FactorisedMasks(e, self.features)
            for e in self.embeds.split(list(sizes), dim=1)
        ]

    def float(self) -> 'FactorisedMasks':
        """Both factors in fp32."""
        return FactorisedMasks(self.embeds.float(), self.features.float())

    def sum(self, dtype: torch.dtype = None) -> Tensor:
        """Sum of all logits, from the factor sums: ``sum_b (sum_q e_bq) .
        (sum_hw f_bhw)``. Non-finite if either factor is."""
        return torch.einsum('bc,bc->', self.embeds.sum(1, dtype=dtype),
                            self.features.sum((2, 3), dtype=dtype))

    def dense(self) -> Tensor:
        """The full ``(bs, Q, h, w)`` logits."""
        return torch.einsum('bqc,bchw->bqhw', self.embeds, self.features)

    def point_sample(self, points: Tensor) -> Tensor:
        """Logits of every query at points shared by the queries of an image.

        Args:
            points (Tensor): ``(bs, N, 2)`` points in ``[0, 1]``.

        Returns:
            Tensor: ``(bs, Q, N)``, as ``point_sample(self.dense(), points)``.
        """
        sampled = point_sample(self.features, points)  # (bs, C, N)
        return torch.bmm(self.embeds, sampled)

    def __getitem__(self, index: Tuple[Tensor, Tensor]) -> Tensor:
        """Full-resolution logits of some queries, as ``dense()[b, q]``.

        One batched product of each image's pair embeddings (padded with zero
        rows to the image with the most pairs) and the features: its gradient
        for the features is one ``(bs, C, h, w)`` tensor, where selecting the
        features per image would zero-fill a full-size gradient per image.

        Args:
            index (tuple[Tensor, Tensor]): ``(m,)`` long image and query
                indices.

        Returns:
            Tensor: ``(m, h, w)``.
        """
        batch_idx, pred_idx = index
        bs, _, channels = self.embeds.shape
        if len(batch_idx) == 0:
            return self.embeds.new_zeros(0, *self.features.shape[2:])
        # slot of each pair among its image's pairs
        per_image = torch.nn.functional.one_hot(batch_idx, bs).cumsum(0)
        slot = per_image.gather(1, batch_idx[:, None]).squeeze(1) - 1
        # (bs, slots, C): each image's pair embeddings, zero rows as padding
        embeds = self.embeds.new_zeros(bs, int(slot.max()) + 1, channels)
        embeds = embeds.index_put((batch_idx, slot), self.embeds[batch_idx,
                                                                 pred_idx])
        logits = torch.bmm(embeds, self.features.flatten(2))[batch_idx, slot]
        return logits.view(len(batch_idx), *self.features.shape[2:])
