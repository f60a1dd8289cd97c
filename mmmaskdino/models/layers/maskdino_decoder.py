# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
"""Mask DINO transformer decoder (official ``MaskDINODecoder``,
``maskdino/modeling/transformer_decoder/maskdino_decoder.py``)."""
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
from mmcv.ops import MultiScaleDeformableAttention
from mmdet.models.layers import MLP
from mmdet.registry import MODELS
from mmdet.utils import OptConfigType, OptMultiConfig
from mmengine.model import BaseModule, constant_init
from mmengine.structures import InstanceData
from torch import Tensor, nn

from ..utils import deformable_attention_cfg, ffn_cfg
from .box_ops import (MASK_BOX_TYPES, gen_encoder_output_proposals,
                      inverse_sigmoid, masks_to_refpoint_logits)
from .factorised_masks import FactorisedMasks
from .gather_deformable_attention import use_gather_attention
from .maskdino_decoder_layer import MaskDINOTransformerDecoder


@MODELS.register_module()
class MaskDINODecoder(BaseModule):
    """Query selection, decoder loop and shared prediction heads of Mask DINO.

    One class head ``class_embed`` and one box MLP ``bbox_embed`` are shared by
    the encoder token scoring/proposals, the initial prediction and every
    decoder layer; ``decoder_norm`` is the decoder's own final ``LayerNorm``
    (``decoder.norm``), so decoder-layer outputs pass through it twice before
    the class and mask heads, exactly as in the official model where both names
    alias one module.

    Args:
        num_classes (int): Number of classes ``C``.
        hidden_dim (int): Hidden size ``D``. Defaults to 256.
        num_queries (int): Matching queries ``Q``. Defaults to 300.
        num_heads (int): Heads of the self-attention and of the deformable
            cross-attention. Defaults to 8.
        ffn_dim (int): FFN hidden size of the decoder layers. Defaults to 2048.
        num_layers (int): Decoder layers ``L``. Defaults to 9.
        mask_dim (int): Channels of ``mask_features``. Defaults to 256.
        num_feature_levels (int): Memory levels. Defaults to 4.
        num_points (int): Deformable sampling points. Defaults to 4.
        two_stage (bool): Select queries from encoder tokens; otherwise learned
            ``query_feat`` and ``query_embed``. Defaults to True.
        initialize_box_type (str): ``'no'``, ``'mask2box'`` or ``'bitmask'``:
            replace the selected proposal boxes by boxes of the interm masks.
            Defaults to ``'no'``.
        initial_pred (bool): Predict from the content queries before the first
            layer. Defaults to True.
        semantic_ce (bool): Class head of width ``C + 1`` (softmax CE, "no
            object" last). Defaults to False.
        denoising (dict, optional): Extra arguments of ``MaskDINODenoising``
            (built here and owning ``label_enc``); None disables it. Defaults
            to ``dict(dn_num=100, noise_scale=0.4)``.
        init_cfg (dict, optional): Initialisation config. Defaults to None.
    """

    def __init__(self,
                 num_classes: int,
                 hidden_dim: int = 256,
                 num_queries: int = 300,
                 num_heads: int = 8,
                 ffn_dim: int = 2048,
                 num_layers: int = 9,
                 mask_dim: int = 256,
                 num_feature_levels: int = 4,
                 num_points: int = 4,
                 two_stage: bool = True,
                 initialize_box_type: str = 'no',
                 initial_pred: bool = True,
                 semantic_ce: bool = False,
                 denoising: OptConfigType = dict(dn_num=100, noise_scale=0.4),
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(init_cfg=init_cfg)
        assert initialize_box_type in ('no', ) + MASK_BOX_TYPES
        if initialize_box_type != 'no':
            assert two_stage and initial_pred, \
                'mask-enhanced boxes need two-stage selection and initial_pred'
        self.num_classes = num_classes
        self.hidden_dim = hidden_dim
        self.num_queries = num_queries
        self.num_layers = num_layers
        self.num_feature_levels = num_feature_levels
        self.two_stage = two_stage
        self.initialize_box_type = initialize_box_type
        self.initial_pred = initial_pred

        if two_stage:
            self.enc_output = nn.Linear(hidden_dim, hidden_dim)
            self.enc_output_norm = nn.LayerNorm(hidden_dim)
        else:
            self.query_feat = nn.Embedding(num_queries, hidden_dim)
            self.query_embed = nn.Embedding(num_queries, 4)
        self.class_embed = nn.Linear(
            hidden_dim, num_classes + 1 if semantic_ce else num_classes)
        self.denoising = None if denoising is None else MODELS.build(
            dict(
                type='MaskDINODenoising',
                num_classes=num_classes,
                embed_dims=hidden_dim,
                **denoising))
        self.mask_embed = MLP(hidden_dim, hidden_dim, mask_dim, 3)
        self.decoder = MaskDINOTransformerDecoder(
            num_layers=num_layers,
            layer_cfg=self._layer_cfg(hidden_dim, num_heads, ffn_dim,
                                      num_feature_levels, num_points),
            post_norm_cfg=None,
            return_intermediate=True)
        use_gather_attention(self.decoder)
        self.bbox_embed = MLP(hidden_dim, hidden_dim, 4, 3)

    @staticmethod
    def _layer_cfg(hidden_dim: int, num_heads: int, ffn_dim: int,
                   num_levels: int, num_points: int) -> dict:
        """Config of one ``DeformableDetrTransformerDecoderLayer`` (no dropout,
        ReLU)."""
        return dict(
            self_attn_cfg=dict(
                embed_dims=hidden_dim,
                num_heads=num_heads,
                attn_drop=0.0,
                proj_drop=0.0,
                batch_first=True),
            cross_attn_cfg=deformable_attention_cfg(hidden_dim, num_heads,
                                                    num_levels, num_points),
            ffn_cfg=ffn_cfg(hidden_dim, ffn_dim))

    @property
    def num_prediction_sets(self) -> int:
        """Prediction sets of the decoder: the initial prediction (if
        ``initial_pred``) and one per decoder layer."""
        return int(self.initial_pred) + self.num_layers

    @property
    def decoder_norm(self) -> nn.LayerNorm:
        """The head ``LayerNorm``: the same module as ``decoder.norm``."""
        return self.decoder.norm

    def init_weights(self) -> None:
        """Official initialisation (``TransformerDecoder._reset_parameters`` in
        ``maskdino/modeling/transformer_decoder/dino_decoder.py``,
        ``MaskDINODecoder.__init__``).

        Xavier-uniform on every matrix of the decoder stack followed by the
        deformable-attention reset, a zero last layer of the box MLP, PyTorch
        defaults elsewhere (no focal prior on the class bias).
        """
        super().init_weights()
        for p in self.decoder.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)
        for m in self.decoder.modules():
            if isinstance(m, MultiScaleDeformableAttention):
                m.init_weights()
        constant_init(self.bbox_embed.layers[-1], val=0., bias=0.)

    def forward(
            self,
            multi_scale_features: Sequence[Tensor],
            mask_features: Tensor,
            dn: Optional[dict] = None,
            output_set: Union[str, int] = -1) -> Tuple[dict, Optional[dict]]:
        """Predict classes, boxes and masks for the queries.

        Args:
            multi_scale_features (Sequence[Tensor]): ``(bs, D, h_i, w_i)``
                pixel-decoder outputs in the official **encoder** order.
            mask_features (Tensor): ``(bs, mask_dim, h4, w4)``.
            dn (dict, optional): Denoising queries of :meth:`denoising_queries`
                (training only): ``query (bs, P, D)``, ``ref_logits (bs, P,
                4)``, ``attn_mask (P + Q, P + Q)``, ``dn_meta``.
            output_set (str | int): In eval, the prediction set whose masks
                are computed (the other sets have ``pred_masks`` None; in
                training every set has :class:`FactorisedMasks`):
                ``'interm'`` (the selected encoder tokens) or an index into
                the prediction sets (the initial prediction first if
                ``initial_pred``, then decoder layers 1 .. L; negative from
                the end). Defaults to -1, the last decoder layer.

        Returns:
            tuple[dict, dict | None]: ``outputs`` (final prediction set +
            ``aux_outputs`` + ``interm_outputs``) and ``dn_outputs`` (see
            :meth:`format_outputs`: in training with denoising, ``aux_indices``
            and, unless the batch skipped denoising, the prediction sets of the
            first P queries; None otherwise).
        """
        # Under mixed precision only the decoder layers run in fp32, as
        # officially (MaskDINOTransformerDecoder.forward); query selection and
        # the prediction heads run under autocast.
        memory = self.build_memory(multi_scale_features)
        selection = self.select_queries(
            memory['memory'],
            memory['spatial_shapes'],
            mask_features,
            interm_masks=output_set == 'interm')
        query, refpoint_logits, attn_mask = self.add_denoising_queries(
            selection['query'], selection['refpoint_logits'], dn)
        predictions = self.forward_decoder(
            query,
            refpoint_logits,
            memory,
            mask_features,
            attn_mask,
            mask_set=None if output_set == 'interm' else output_set)
        return self.format_outputs(predictions, selection['interm_outputs'],
                                   dn)

    def build_memory(self, multi_scale_features: Sequence[Tensor]) -> dict:
        """Flatten the features into the decoder memory, levels in **reverse**
        encoder order.

        Args:
            multi_scale_features (Sequence[Tensor]): ``(bs, D, h_i, w_i)`` in
                encoder order.

        Returns:
            dict: ``memory (bs, num_tokens, D)``, ``spatial_shapes (num_levels,
            2)``, ``level_start_index (num_levels,)``, ``valid_ratios (bs,
            num_levels, 2)`` (all ones: no padding mask, as officially).
        """
        assert len(multi_scale_features) == self.num_feature_levels
        feats = list(multi_scale_features)[::-1]
        memory = torch.cat([f.flatten(2).transpose(1, 2) for f in feats], 1)
        spatial_shapes = torch.as_tensor([f.shape[-2:] for f in feats],
                                         dtype=torch.long,
                                         device=memory.device)
        level_start_index = torch.cat((spatial_shapes.new_zeros(
            (1, )), spatial_shapes.prod(1).cumsum(0)[:-1]))
        valid_ratios = memory.new_ones(memory.shape[0], len(feats), 2)
        return dict(
            memory=memory,
            spatial_shapes=spatial_shapes,
            level_start_index=level_start_index,
            valid_ratios=valid_ratios)

    def select_queries(self,
                       memory: Tensor,
                       spatial_shapes: Tensor,
                       mask_features: Tensor,
                       interm_masks: bool = False) -> dict:
        """Initial content queries and anchor boxes of the matching part.

        Args:
            memory (Tensor): ``(bs, num_tokens, D)``.
            spatial_shapes (Tensor): ``(num_levels, 2)``.
            mask_features (Tensor): ``(bs, mask_dim, h4, w4)``.
            interm_masks (bool): Predict the masks of the interm set in eval
                too (training and mask-enhanced anchors always do).

        Returns:
            dict: ``query (bs, Q, D)``, ``refpoint_logits (bs, Q, 4)`` and
            ``interm_outputs`` (the prediction set of the selected encoder
            tokens; None without two-stage selection).
        """
        if self.two_stage:
            return self._select_encoder_queries(memory, spatial_shapes,
                                                mask_features, interm_masks)
        bs = memory.shape[0]
        return dict(
            query=self.query_feat.weight[None].repeat(bs, 1, 1),
            refpoint_logits=self.query_embed.weight[None].repeat(bs, 1, 1),
            interm_outputs=None)

    def _select_encoder_queries(self, memory: Tensor, spatial_shapes: Tensor,
                                mask_features: Tensor,
                                interm_masks: bool) -> dict:
        """Two-stage selection: top-Q encoder tokens by max class logit
        (official ``MaskDINODecoder.forward``)."""
        if memory.shape[1] < self.num_queries:
            raise ValueError(
                f'num_queries={self.num_queries} is larger than the number '
                f'of encoder tokens ({memory.shape[1]}) of this input size '
                f'{tuple(mask_features.shape[-2:])} x 4: use larger images '
                'or fewer queries')
        output_memory, proposals = gen_encoder_output_proposals(
            memory, spatial_shapes)
        output_memory = self.enc_output_norm(self.enc_output(output_memory))
        enc_class_logits = self.class_embed(output_memory)
        enc_coord_logits = self.bbox_embed(output_memory) + proposals
        topk_indices = torch.topk(
            enc_class_logits.max(-1)[0], self.num_queries, dim=1)[1]
        refpoint_undetach = torch.gather(
            enc_coord_logits, 1, topk_indices[..., None].expand(-1, -1, 4))
        query_undetach = torch.gather(
            output_memory, 1,
            topk_indices[..., None].expand(-1, -1, self.hidden_dim))

        with_masks = (
            self.training or interm_masks or self.initialize_box_type != 'no')
        interm_logits, interm_masks = self.forward_heads(
            query_undetach, mask_features, pred_mask=with_masks)
        interm_outputs = self._prediction_set(interm_logits,
                                              refpoint_undetach.sigmoid(),
                                              interm_masks)
        if self.initialize_box_type == 'no':
            refpoint_logits = refpoint_undetach.detach()
        else:
            if isinstance(interm_masks, FactorisedMasks):
                with torch.no_grad():
                    interm_masks = interm_masks.dense()
            refpoint_logits = masks_to_refpoint_logits(
                interm_masks, self.initialize_box_type)
        return dict(
            query=query_undetach.detach(),
            refpoint_logits=refpoint_logits,
            interm_outputs=interm_outputs)

    @staticmethod
    def add_denoising_queries(
            query: Tensor, refpoint_logits: Tensor,
            dn: Optional[dict]) -> Tuple[Tensor, Tensor, Optional[Tensor]]:
        """Prepend the P denoising queries (official
        ``MaskDINODecoder.forward``).

        Args:
            query (Tensor): ``(bs, Q, D)``.
            refpoint_logits (Tensor): ``(bs, Q, 4)``.
            dn (dict, optional): see :meth:`forward`.

        Returns:
            tuple: ``query (bs, P + Q, D)``, ``refpoint_logits (bs, P + Q,
            4)``, self-attention mask ``(P + Q, P + Q)`` bool or None.
        """
        if dn is None:
            return query, refpoint_logits, None
        return (torch.cat([dn['query'], query], dim=1),
                torch.cat([dn['ref_logits'], refpoint_logits],
                          dim=1), dn['attn_mask'])

    def forward_heads(
        self,
        x: Tensor,
        mask_features: Tensor,
        pred_mask: bool = True
    ) -> Tuple[Tensor, Union[Tensor, FactorisedMasks, None]]:
        """Class and mask heads on ``decoder_norm(x)``.

        In training the masks stay factorised (:class:`FactorisedMasks`): the
        criterion reads them only through point samples and the matched
        queries, so the full-resolution logits of every query are never
        formed.

        Args:
            x (Tensor): ``(bs, nq, D)`` queries (decoder-layer outputs are
                already normed once).
            mask_features (Tensor): ``(bs, mask_dim, h4, w4)``.
            pred_mask (bool): Whether to compute the masks.

        Returns:
            tuple: logits ``(bs, nq, K)`` and masks ``(bs, nq, h4, w4)``
            (:class:`FactorisedMasks` of that shape in training).
        """
        x = self.decoder_norm(x)
        logits = self.class_embed(x)
        if not pred_mask:
            return logits, None
        masks = FactorisedMasks(self.mask_embed(x), mask_features)
        return logits, masks if self.training else masks.dense()

    def forward_decoder(self,
                        query: Tensor,
                        refpoint_logits: Tensor,
                        memory: dict,
                        mask_features: Tensor,
                        attn_mask: Optional[Tensor],
                        mask_set: Optional[int] = -1) -> dict:
        """Initial prediction, decoder layers and per-layer heads.

        In eval only the set ``mask_set`` predicts masks (inference uses
        one set).

        Args:
            query (Tensor): ``(bs, nq, D)`` content queries.
            refpoint_logits (Tensor): ``(bs, nq, 4)`` anchor boxes in logit
                space.
            memory (dict): output of :meth:`build_memory`.
            mask_features (Tensor): ``(bs, mask_dim, h4, w4)``.
            attn_mask (Tensor, optional): ``(nq, nq)`` bool, True = blocked.
            mask_set (int, optional): Index of the prediction set with masks
                in eval (see :meth:`forward`); None for none of them.

        Returns:
            dict: lists ``class_logits``, ``masks`` (entries may be None),
            ``boxes`` with one entry per prediction set (initial first if
            ``initial_pred``).
        """
        if mask_set is not None:
            mask_set %= self.num_prediction_sets
        class_logits, masks = [], []
        if self.initial_pred:
            logits, mask = self.forward_heads(
                query, mask_features, pred_mask=self.training or mask_set == 0)
            class_logits.append(logits)
            masks.append(mask)
        hidden_states, references = self.decoder(
            query=query,
            value=memory['memory'],
            reference_points=refpoint_logits.sigmoid(),
            spatial_shapes=memory['spatial_shapes'],
            level_start_index=memory['level_start_index'],
            valid_ratios=memory['valid_ratios'],
            reg_branches=[self.bbox_embed] * self.num_layers,
            self_attn_mask=attn_mask)
        for i, hidden_state in enumerate(hidden_states, len(class_logits)):
            logits, mask = self.forward_heads(
                hidden_state,
                mask_features,
                pred_mask=self.training or i == mask_set)
            class_logits.append(logits)
            masks.append(mask)
        return dict(
            class_logits=class_logits,
            masks=masks,
            boxes=self.predict_boxes(references, hidden_states,
                                     refpoint_logits))

    def predict_boxes(self, references: List[Tensor],
                      hidden_states: List[Tensor],
                      refpoint_logits: Tensor) -> List[Tensor]:
        """Boxes of every prediction set (official
        ``MaskDINODecoder.pred_box``).

        Args:
            references (list[Tensor]): L + 1 tensors ``(bs, nq, 4)`` from the
                decoder.
            hidden_states (list[Tensor]): L tensors ``(bs, nq, D)`` (normed
                once).
            refpoint_logits (Tensor): ``(bs, nq, 4)`` initial anchors.

        Returns:
            list[Tensor]: ``(bs, nq, 4)`` cxcywh boxes: the anchors themselves
            (if ``initial_pred``), then ``sigmoid(bbox_embed(h_l) +
            inverse_sigmoid(r_l))`` per layer.
        """
        boxes = [refpoint_logits.sigmoid()] if self.initial_pred else []
        for reference, hidden_state in zip(references[:-1], hidden_states):
            boxes.append((self.bbox_embed(hidden_state) +
                          inverse_sigmoid(reference)).sigmoid())
        return boxes

    @staticmethod
    def _prediction_set(
            logits: Tensor, boxes: Tensor,
            masks: Optional[Tensor]) -> Dict[str, Optional[Tensor]]:
        return dict(pred_logits=logits, pred_boxes=boxes, pred_masks=masks)

    @classmethod
    def _split_sets(cls, predictions: dict,
                    pad_size: int) -> Tuple[List[dict], List[dict]]:
        """Prediction sets of the first ``pad_size`` (denoising) queries and
        of the rest (matching queries).

        Split, not sliced: the backward pass then concatenates the two
        gradients instead of zero-filling a full-size gradient for each part.

        Returns:
            tuple[list[dict], list[dict]]: denoising and matching sets.
        """
        dn_sets, matching_sets = [], []
        for tensors in zip(predictions['class_logits'], predictions['boxes'],
                           predictions['masks']):
            parts = [(None, None) if t is None else t.split(
                [pad_size, t.shape[1] - pad_size], dim=1) for t in tensors]
            dn_sets.append(cls._prediction_set(*(p[0] for p in parts)))
            matching_sets.append(cls._prediction_set(*(p[1] for p in parts)))
        return dn_sets, matching_sets

    def dn_aux_indices(self) -> List[int]:
        """Auxiliary prediction sets whose denoising queries are supervised.

        Aux set ``i`` is the ``i``-th prediction set before the last (the
        initial prediction first if ``initial_pred``). With learned queries
        (no two-stage selection) set 0 of the DN queries is not supervised,
        as in the official ``SetCriterion.forward``
        (``maskdino/modeling/criterion.py``: ``start = 0 if 'interm_outputs'
        in outputs else 1``).

        Returns:
            list[int]: Indices into ``aux_outputs``.
        """
        return list(
            range(0 if self.two_stage else 1, self.num_prediction_sets - 1))

    def denoising_queries(
            self, batch_gt_instances: List[InstanceData]) -> Optional[dict]:
        """Noised GT queries for a training step (see :meth:`forward`).

        Returns:
            dict | None: None in eval, without denoising, or when
            :class:`MaskDINODenoising` skips the batch (no GT, or more GT than
            ``dn_num``).
        """
        if self.denoising is None or not self.training:
            return None
        return self.denoising(batch_gt_instances, self.num_queries)

    def format_outputs(self, predictions: dict, interm_outputs: Optional[dict],
                       dn: Optional[dict]) -> Tuple[dict, Optional[dict]]:
        """Split off the P denoising queries and build the output dicts.

        As the official ``MaskDINODecoder.dn_post_process``
        (``maskdino/modeling/transformer_decoder/maskdino_decoder.py``).

        Args:
            predictions (dict): output of :meth:`forward_decoder`.
            interm_outputs (dict, optional): prediction set of the selected
                encoder tokens.
            dn (dict, optional): see :meth:`forward`.

        Returns:
            tuple[dict, dict | None]: ``outputs`` (final matching set,
            ``aux_outputs``, ``interm_outputs``) and, in training with
            denoising, ``dn_outputs``: ``aux_indices`` (:meth:`dn_aux_indices`,
            the supervised sets) and, unless the batch skipped denoising, the
            final DN set and ``aux_outputs`` (the supervised aux DN sets); None
            otherwise.
        """
        pad_size = 0 if dn is None else int(dn['dn_meta']['pad_size'])
        dn_sets, matching_sets = self._split_sets(predictions, pad_size)
        outputs = dict(
            **matching_sets[-1],
            aux_outputs=matching_sets[:-1],
            interm_outputs=interm_outputs)
        if not self.training or self.denoising is None:
            return outputs, None
        aux_indices = self.dn_aux_indices()
        if dn is None:
            # Keeps ``label_enc`` in the graph when DN is skipped (needed by
            # DDP).
            outputs['pred_logits'] = outputs['pred_logits'] + \
                0.0 * self.denoising.label_enc.weight.sum()
            return outputs, dict(aux_indices=aux_indices)
        return outputs, dict(
            **dn_sets[-1],
            aux_outputs=[dn_sets[i] for i in aux_indices],
            aux_indices=aux_indices)
