# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
"""Box helpers of the Mask DINO decoder: encoder proposals and mask-enhanced
anchors.

``inverse_sigmoid`` is mmdet's (its default eps 1e-5 is the one Mask DINO uses;
mmdet's DINO decoder passes 1e-3 explicitly, which is why the decoder loop is
re-implemented in ``maskdino_decoder_layer.py``).
"""
from typing import Tuple

import torch
from mmdet.models.layers.transformer import inverse_sigmoid
from mmdet.structures.bbox import bbox_xyxy_to_cxcywh
from torch import Tensor

MASK_BOX_TYPES = ('mask2box', 'bitmask')

# ``mask2box`` fills the minimum of an empty mask with this value (official
# ``masks_to_boxes``).
EMPTY_MASK_MIN = 1e8

__all__ = [
    'inverse_sigmoid', 'masks_to_boxes', 'masks_to_refpoint_logits',
    'gen_encoder_output_proposals'
]


def _first_last_index(occupied: Tensor) -> Tuple[Tensor, Tensor]:
    """First and last True index along the last dim.

    Args:
        occupied (Tensor): ``(n, length)`` bool.

    Returns:
        tuple[Tensor, Tensor]: ``(n,)`` float first and last index (0 for an
        all-False row).
    """
    length = occupied.shape[-1]
    occupied = occupied.to(torch.uint8)
    first = occupied.argmax(dim=-1)
    last = length - 1 - occupied.flip(-1).argmax(dim=-1)
    return first.float(), last.float()


def masks_to_boxes(masks: Tensor, box_type: str = 'mask2box') -> Tensor:
    """Tight boxes around binary masks, in pixel units of the mask map.

    Both official rules are vectorised here (mmdet's ``mask2bbox`` implements
    the ``bitmask`` rule with a Python loop over masks, too slow for ``bs *
    num_queries`` masks per iteration):

    - ``'mask2box'`` (official ``box_ops.masks_to_boxes``): ``(x_min, y_min,
      x_max, y_max)`` with the **maximum pixel index** (no +1); an empty mask
      gives ``(1e8, 1e8, 0, 0)``.
    - ``'bitmask'`` (detectron2 ``BitMasks.get_bounding_boxes``): ``(x_first,
      y_first, x_last + 1, y_last + 1)``; an empty mask gives ``(0, 0, 0, 0)``.

    Args:
        masks (Tensor): ``(n, h, w)`` bool.
        box_type (str): ``'mask2box'`` or ``'bitmask'``.

    Returns:
        Tensor: ``(n, 4)`` float32 xyxy boxes.
    """
    assert box_type in MASK_BOX_TYPES, f'unknown box_type {box_type}'
    x_any = masks.any(dim=1)  # (n, w)
    y_any = masks.any(dim=2)  # (n, h)
    x_min, x_max = _first_last_index(x_any)
    y_min, y_max = _first_last_index(y_any)
    boxes = torch.stack([x_min, y_min, x_max, y_max], dim=-1)
    empty = ~x_any.any(dim=-1)
    if box_type == 'bitmask':
        boxes[:, 2:] += 1
        return boxes.masked_fill(empty[:, None], 0.)
    empty_box = boxes.new_tensor([EMPTY_MASK_MIN, EMPTY_MASK_MIN, 0., 0.])
    return torch.where(empty[:, None], empty_box, boxes)


def masks_to_refpoint_logits(mask_logits: Tensor, box_type: str) -> Tensor:
    """Mask-enhanced anchor boxes: boxes of ``mask_logits > 0`` in logit space.

    The boxes are normalised by the mask map size ``(w, h, w, h)`` (1/4 of the
    padded input), then mapped through ``inverse_sigmoid`` (eps 1e-5, clamped
    to [0, 1] first), so an empty ``mask2box`` mask gives ``(11.5129, 11.5129,
    -11.5129, -11.5129)`` and an empty ``bitmask`` mask ``-11.5129``
    everywhere. No gradient flows back to the masks.

    Args:
        mask_logits (Tensor): ``(bs, num_queries, h, w)`` mask logits.
        box_type (str): ``'mask2box'`` or ``'bitmask'``.

    Returns:
        Tensor: ``(bs, num_queries, 4)`` cxcywh logits.
    """
    bs, num_queries, h, w = mask_logits.shape
    binary = mask_logits.detach().flatten(0, 1) > 0
    boxes = bbox_xyxy_to_cxcywh(masks_to_boxes(binary, box_type))
    boxes = boxes / boxes.new_tensor([w, h, w, h])
    return inverse_sigmoid(boxes.view(bs, num_queries, 4))


def gen_encoder_output_proposals(
        memory: Tensor, spatial_shapes: Tensor) -> Tuple[Tensor, Tensor]:
    """Per-token proposals of the two-stage query selection (no padding mask).

    The official ``gen_encoder_output_proposals`` (``maskdino/utils/utils.py``)
    without padding mask. mmdet's
    ``DeformableDETR.gen_encoder_output_proposals`` computes the same proposals
    but cannot be
    reused: it is a method of the detector and ends with the detector's own
        ``memory_trans_fc`` and
    ``memory_trans_norm`` layers (Mask DINO's decoder applies its
    ``enc_output`` and ``enc_output_norm`` to the returned memory instead).
    Centre ``((j + 0.5) / W, (i + 0.5) / H)``, size ``0.05 * 2**lvl`` over the
    **decoder** memory levels; a proposal is valid iff all four values are
    strictly inside (0.01, 0.99). Valid proposals are returned as unclamped
    logits ``log(p / (1 - p))``, invalid ones as ``+inf``, and the memory of
    invalid tokens is zeroed.

    Args:
        memory (Tensor): ``(bs, num_tokens, dim)`` flattened decoder memory.
        spatial_shapes (Tensor): ``(num_levels, 2)`` long ``(h, w)`` per level.

    Returns:
        tuple[Tensor, Tensor]: ``output_memory (bs, num_tokens, dim)`` and
        ``proposals (bs, num_tokens, 4)`` cxcywh logits.
    """
    bs = memory.shape[0]
    proposals = []
    for lvl, (h, w) in enumerate(spatial_shapes.tolist()):
        grid_y, grid_x = torch.meshgrid(
            torch.arange(h, dtype=torch.float32, device=memory.device),
            torch.arange(w, dtype=torch.float32, device=memory.device),
            indexing='ij')
        centers = torch.stack([(grid_x + 0.5) / w, (grid_y + 0.5) / h],
                              dim=-1).view(-1, 2)
        sizes = torch.full_like(centers, 0.05 * 2.0**lvl)
        proposals.append(torch.cat([centers, sizes], dim=-1))
    proposals = torch.cat(proposals, dim=0)[None].expand(bs, -1, -1)
    valid = ((proposals > 0.01) & (proposals < 0.99)).all(-1, keepdim=True)
    proposals = torch.log(proposals / (1 - proposals))
    proposals = proposals.masked_fill(~valid, float('inf'))
    output_memory = memory.masked_fill(~valid, 0.)
    return output_memory, proposals
