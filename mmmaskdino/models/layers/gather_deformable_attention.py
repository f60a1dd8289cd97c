# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
"""Multi-scale deformable attention with a gather-based CPU inference path.

mmcv's ``MultiScaleDeformableAttention`` has two sampling back-ends: its CUDA
kernel, and on every other device ``multi_scale_deformable_attn_pytorch``,
which runs one ``grid_sample`` per level on an ``(bs * heads, C, h, w)`` copy
of that level, stacks the ``(bs * heads, C, nq, levels * points)`` samples
and reduces them with the attention weights. On a CPU that path is bound by
the stack and the strided reads: at 800 x 1344 it takes about half of the
pixel decoder's time.

:func:`gather_deformable_attn` computes the same bilinear sampling as one
weighted row gather (``F.embedding_bag``, mode ``'sum'``): the value of every
level is laid out channels-last with a zero border, each sampling point names
its four neighbouring rows, and the bilinear weights times the attention
weight are the per-row weights of the bag of each (query, head). The result
equals mmcv's up to float rounding (the order of the sums differs); points
outside a map read the zero border, as ``grid_sample``'s zero padding.

The gather path is used for CPU inference only. With autograd,
:func:`grid_sample_deformable_attn` (``grid_sample`` per level, as mmcv) is
used instead: at the training size (2 images of 1024 x 1024)
``embedding_bag``'s backward (a sort of all indices) and a scatter-add
backward (``index_add_``) both took more than twice as long as
``grid_sample``'s (measured on the 2-core CPU: 6.2 s against 2.5 s per
encoder layer). ONNX export (no ``embedding_bag`` in ONNX) gathers the same
rows and reduces them with a batched ``MatMul``
(:func:`export_deformable_attn`), and CUDA uses mmcv's kernel.
"""
from typing import List, Optional, Tuple

import torch
import torch.nn.functional as F
from mmcv.ops import MultiScaleDeformableAttention
from mmcv.ops.multi_scale_deform_attn import MultiScaleDeformableAttnFunction
from torch import Tensor, nn

# Zero border around every level: a point whose top-left neighbour is at
# -2 or beyond the last column reads two border pixels, so the corner
# coordinates can be clamped instead of masked.
BORDER = 2
# Samples ``(bs * heads) * C * queries * points`` per query chunk of
# :func:`grid_sample_deformable_attn`: 16 MiB in fp32, below glibc's largest
# mmap threshold (32 MiB), so the chunk temporaries are reused heap memory.
SAMPLES_PER_CHUNK = 2**22
# Gathered values per bag chunk of :func:`export_deformable_attn` (32 MiB in
# fp32).
GATHERED_PER_CHUNK = 2**23


def _padded_value_table(value: Tensor, spatial_shapes: Tensor) -> Tensor:
    """Channels-last value of all levels with a zero border.

    Padded and concatenated rather than copied into a zero table: the ONNX
    exporter traces a copy into a fresh tensor as a constant (the exported
    attention then ignored its value input), and the extra copy costs about
    4 ms per encoder layer at 800 x 1344.

    Args:
        value (Tensor): ``(bs, num_keys, heads, C)``.
        spatial_shapes (Tensor): ``(num_levels, 2)`` ``(h, w)`` per level.

    Returns:
        Tensor: ``(bs * num_padded_keys * heads, C)``; row
        ``(b * num_padded_keys + key) * heads + head``.
    """
    bs, _, heads, channels = value.shape
    sizes = [(int(h), int(w)) for h, w in spatial_shapes]
    levels = value.split([h * w for h, w in sizes], dim=1)
    border = (0, 0, BORDER, BORDER, BORDER, BORDER)
    blocks = [
        F.pad(level.reshape(bs, h, w, heads * channels),
              border).view(bs, -1, heads * channels)
        for level, (h, w) in zip(levels, sizes)
    ]
    return torch.cat(blocks, dim=1).view(-1, channels)


def _per_bag_position(per_level: Tensor, num_points: int) -> Tensor:
    """``(levels, k)`` values repeated for the points of each level:
    ``(levels * points * k,)``, the order of a flattened
    ``(levels, points, k)`` block."""
    num_levels, k = per_level.shape
    return per_level[:, None].expand(num_levels, num_points,
                                     k).reshape(-1).contiguous()


def _corner_rows(sampling_locations: Tensor, spatial_shapes: Tensor, bs: int,
                 heads: int) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    """Table rows of the top-left neighbour of every sampling point, the
    row steps to its four neighbours, and the fractional offsets.

    Every (image, query, head) is a row of ``levels * points`` positions, and
    the per-level quantities are vectors over those positions, so that every
    elementwise operation runs along contiguous rows (broadcasting a level's
    width over its few points made the same operations several times
    slower).

    Args:
        sampling_locations (Tensor): ``(bs, nq, heads, levels, points, 2)``
            normalised ``(x, y)``.
        spatial_shapes (Tensor): ``(levels, 2)`` ``(h, w)``.
        bs (int): Batch size.
        heads (int): Number of heads.

    Returns:
        tuple[Tensor, Tensor, Tensor, Tensor]: top-left rows
        ``(bs * nq * heads, levels * points)`` (int32), steps
        ``(4, levels * points)`` (int32; to the top-left, top-right,
        bottom-left and bottom-right neighbour) and the fractional offsets
        ``fx``, ``fy`` ``(bs * nq * heads, levels * points)``.
    """
    _, num_queries, _, num_levels, num_points, _ = sampling_locations.shape
    padded = spatial_shapes + 2 * BORDER
    padded_w = padded[:, 1]
    num_padded_keys = int(padded.prod(-1).sum())
    num_rows = bs * num_padded_keys * heads
    if num_rows >= 2**31:
        raise ValueError('deformable attention input too large for int32 '
                         f'rows: {bs} x {num_padded_keys} x {heads}')
    # Row arithmetic in floating point, exact below 2**24.
    dtype = torch.float32 if num_rows < 2**24 else torch.float64
    num_bags = bs * num_queries * heads
    # (x, y) pairs of all positions: (num_bags, levels * points * 2)
    size = _per_bag_position(spatial_shapes.flip(-1).to(dtype), num_points)
    # align_corners=False: pixel centres at (i + 0.5) / size
    xy = sampling_locations.reshape(num_bags, -1).to(dtype) * size - 0.5
    xy0 = xy.floor()
    frac = xy.sub_(xy0)
    # Beyond the border both neighbours read zeros: clamp instead of mask.
    xy0.clamp_(min=-BORDER).clamp_(max=size)
    # row = (b * num_padded_keys + level start + (y + B) * padded_w + x + B)
    #       * heads + head
    level_start = torch.cat(
        [padded_w.new_zeros(1),
         padded.prod(-1).cumsum(0)[:-1]])
    level = (level_start + BORDER * padded_w + BORDER) * heads
    row_stride = _per_bag_position((padded_w * heads).to(dtype)[:, None],
                                   num_points)
    rows = torch.addcmul(xy0[:, 0::2] * heads, xy0[:, 1::2], row_stride)
    rows.add_(_per_bag_position(level.to(dtype)[:, None], num_points))
    batch_head = (
        torch.arange(bs, device=rows.device).view(bs, 1, 1) * num_padded_keys *
        heads +
        torch.arange(heads, device=rows.device).view(1, 1, heads)).expand(
            bs, num_queries, heads).reshape(num_bags, 1)
    rows = rows.add_(batch_head.to(dtype)).to(torch.int32)
    steps = torch.stack([
        torch.zeros_like(padded_w),
        torch.ones_like(padded_w), padded_w, padded_w + 1
    ]) * heads
    steps = torch.stack([
        _per_bag_position(s[:, None], num_points) for s in steps
    ]).to(torch.int32)
    return rows, steps, frac[:, 0::2].to(
        sampling_locations.dtype), frac[:, 1::2].to(sampling_locations.dtype)


def _bags(
    value: Tensor, spatial_shapes: Tensor, sampling_locations: Tensor,
    attention_weights: Tensor
) -> Tuple[Tensor, Tensor, Tensor, Tuple[Tuple[Tensor, Tensor], ...]]:
    """What the weighted row gather of every (image, query, head) bag
    reads: the value table, the neighbour rows and their weights.

    Args as :func:`gather_deformable_attn`.

    Returns:
        tuple: the value table (:func:`_padded_value_table`), the top-left
        rows ``(num_bags, positions)`` and row steps ``(4, positions)``
        (:func:`_corner_rows`), and per neighbour (top-left, top-right,
        bottom-left, bottom-right, the order of the steps) the two
        ``(num_bags, positions)`` factors ``(across, down)`` whose product
        is its bilinear weight times the attention weight.
    """
    bs, _, heads, _ = value.shape
    table = _padded_value_table(value, spatial_shapes)
    rows, steps, fx, fy = _corner_rows(sampling_locations, spatial_shapes, bs,
                                       heads)
    attention = attention_weights.reshape(rows.shape).to(table.dtype)
    right = fx.to(table.dtype) * attention
    left = attention - right
    bottom = fy.to(table.dtype)
    top = 1 - bottom
    corners = (left, top), (right, top), (left, bottom), (right, bottom)
    return table, rows, steps, corners


def gather_deformable_attn(value: Tensor, spatial_shapes: Tensor,
                           sampling_locations: Tensor,
                           attention_weights: Tensor) -> Tensor:
    """Multi-scale deformable attention as one weighted row gather.

    Same arguments and result as mmcv's
    ``multi_scale_deformable_attn_pytorch``. The bag of each (image, query,
    head) holds its four neighbour rows corner by corner, each corner's
    rows and weights written as one contiguous block.

    Args:
        value (Tensor): ``(bs, num_keys, heads, C)``.
        spatial_shapes (Tensor): ``(levels, 2)`` ``(h, w)`` per level.
        sampling_locations (Tensor): ``(bs, nq, heads, levels, points, 2)``
            normalised ``(x, y)``.
        attention_weights (Tensor): ``(bs, nq, heads, levels, points)``.

    Returns:
        Tensor: ``(bs, nq, heads * C)``.
    """
    bs, _, heads, channels = value.shape
    num_queries = sampling_locations.shape[1]
    table, rows, steps, corners = _bags(value, spatial_shapes,
                                        sampling_locations, attention_weights)
    num_bags, positions = rows.shape
    indices = rows.new_empty(num_bags, 4, positions)
    weights = table.new_empty(num_bags, 4, positions)
    for corner, (across, down) in enumerate(corners):
        torch.add(rows, steps[corner], out=indices[:, corner])
        torch.mul(across, down, out=weights[:, corner])
    out = F.embedding_bag(
        indices.view(num_bags, -1),
        table,
        per_sample_weights=weights.view(num_bags, -1),
        mode='sum')
    return out.view(bs, num_queries, heads * channels)


def _level_maps(value: Tensor, spatial_shapes: Tensor) -> List[Tensor]:
    """The value of each level as channels-first maps, as mmcv's path.

    Args:
        value (Tensor): ``(bs, num_keys, heads, C)``.
        spatial_shapes (Tensor): ``(levels, 2)`` ``(h, w)`` per level.

    Returns:
        list[Tensor]: ``(bs * heads, C, h, w)`` per level.
    """
    bs, _, heads, channels = value.shape
    sizes = [(int(h), int(w)) for h, w in spatial_shapes]
    levels = value.split([h * w for h, w in sizes], dim=1)
    return [
        level.permute(0, 2, 3, 1).reshape(bs * heads, channels, h, w)
        for level, (h, w) in zip(levels, sizes)
    ]


def _bilinear_samples(level: Tensor, grid: Tensor) -> Tensor:
    """Bilinear samples of one level with zero padding, as mmcv's path.

    Args:
        level (Tensor): ``(bs * heads, C, h, w)``.
        grid (Tensor): ``(bs * heads, a, b, 2)`` in ``[-1, 1]``.

    Returns:
        Tensor: ``(bs * heads, C, a, b)``.
    """
    return F.grid_sample(
        level,
        grid,
        mode='bilinear',
        padding_mode='zeros',
        align_corners=False)


class _WeightedPointSum(torch.autograd.Function):
    """``(sampled * weight).sum(2)`` without the full-size product.

    The forward pass and the attention weights' gradient add one point at a
    time into ``(bs * heads, C, nq)`` tensors, so that of the
    ``(bs * heads, C, points, nq)`` temporaries autograd would create (the
    product, and the product of the gradient with the samples) only the
    samples' gradient, which ``grid_sample``'s backward pass needs, is left.
    In the training step (2 x 1024 x 1024, one thread) autograd's multiply
    took 27 ms per call, 13 s per step, against 4 ms in a fresh process: each
    fresh 16 MiB product was page-faulted anew.
    """

    @staticmethod
    def forward(ctx, sampled: Tensor, weight: Tensor) -> Tensor:
        """``sampled (N, C, P, nq)``, ``weight (N, 1, P, nq)`` ->
        ``(N, C, nq)``."""
        ctx.save_for_backward(sampled, weight)
        out = sampled[:, :, 0] * weight[:, :, 0]
        for point in range(1, sampled.shape[2]):
            out.addcmul_(sampled[:, :, point], weight[:, :, point])
        return out

    @staticmethod
    def backward(ctx, grad_out: Tensor) -> Tuple[Tensor, Tensor]:
        sampled, weight = ctx.saved_tensors
        grad_sampled = grad_out.unsqueeze(2) * weight
        grad_weight = torch.stack([(grad_out * sampled[:, :, point]).sum(1)
                                   for point in range(sampled.shape[2])],
                                  1).unsqueeze(1)
        return grad_sampled, grad_weight


def grid_sample_deformable_attn(value: Tensor, spatial_shapes: Tensor,
                                sampling_locations: Tensor,
                                attention_weights: Tensor) -> Tensor:
    """mmcv's ``multi_scale_deformable_attn_pytorch`` with a leaner autograd
    graph, for training on CPU.

    The same ``grid_sample`` per level, but the grids and attention weights
    of the levels are taken from a level-first copy (whose backward stacks,
    where mmcv's slices each allocate and zero-fill a full-size gradient per
    level), each level's samples are weighted and summed on their own instead
    of stacking all ``(bs * heads, C, nq, levels * points)`` samples first,
    the queries are processed in chunks of :data:`SAMPLES_PER_CHUNK`
    samples, and the attention weighting is :class:`_WeightedPointSum`. The
    points of a query are rows of the sampled map
    (``(bs * heads, C, points, queries)``, where mmcv samples
    ``(..., queries, points)``), so that the weighting runs along contiguous
    rows of queries, one point at a time. The chunks keep every temporary of
    the forward and backward pass small enough for the allocator to reuse
    freed memory: at the encoder's training size a fresh
    ``(bs * heads, C, nq, points)`` tensor per level and step page-faulted
    every page, and the weighting took four times longer than the
    ``grid_sample`` itself (per encoder layer at 2 x 1024 x 1024, forward +
    backward 6.4 s -> 4.8 s on one CPU thread). The result equals mmcv's up
    to the order of the sums over levels and points.

    Args and returns as :func:`gather_deformable_attn`.
    """
    bs, _, heads, channels = value.shape
    _, num_queries, _, num_levels, num_points, _ = sampling_locations.shape
    levels = _level_maps(value, spatial_shapes)
    # level first and points before queries, so that each level's grid and
    # weights are contiguous and the weighting runs along the queries:
    # (levels, bs * heads, points, nq, 2) in [-1, 1] and
    # (levels, bs * heads, 1, points, nq)
    grids = (sampling_locations.permute(3, 0, 2, 4, 1, 5) * 2 - 1).reshape(
        num_levels, bs * heads, num_points, num_queries, 2)
    weights = attention_weights.permute(3, 0, 2, 4,
                                        1).reshape(num_levels, bs * heads, 1,
                                                   num_points, num_queries)
    chunk = max(1, SAMPLES_PER_CHUNK // (bs * heads * channels * num_points))
    outs = []
    for chunk_grids, chunk_weights in zip(
            grids.split(chunk, dim=3), weights.split(chunk, dim=4)):
        out = 0
        for level, grid, weight in zip(levels, chunk_grids.unbind(0),
                                       chunk_weights.unbind(0)):
            sampled = _bilinear_samples(level, grid)  # (.., points, chunk)
            out = out + _WeightedPointSum.apply(sampled, weight)
        outs.append(out)
    # (bs * heads, C, nq) -> (bs, nq, heads * C)
    return torch.cat(
        outs, dim=2).view(bs, heads * channels, num_queries).transpose(1, 2)


def export_deformable_attn(value: Tensor, spatial_shapes: Tensor,
                           sampling_locations: Tensor,
                           attention_weights: Tensor) -> Tensor:
    """:func:`gather_deformable_attn` in ONNX operators, for export.

    ONNX has no ``embedding_bag``: the same four neighbour rows per sampling
    point (:func:`_corner_rows`) are gathered from the same value table
    (``Gather``) and reduced with the same weights by a batched ``MatMul``
    of each bag's ``(1, 4 * levels * points)`` weights with its gathered
    ``(4 * levels * points, C)`` rows. The bags are processed in chunks of
    :data:`GATHERED_PER_CHUNK` gathered values (a whole encoder layer would
    gather 1.5 GB at 800 x 1344). Per encoder layer at 800 x 1344 in ONNX
    Runtime (2 threads) this takes 0.38-0.39 s, where ``GridSample`` per
    level (mmcv's path, each level's samples weighted on their own) took
    0.55-0.57 s; ONNX Runtime's ``GridSample`` computes the bilinear weights
    anew for every channel.

    Args and returns as :func:`gather_deformable_attn`.
    """
    bs, _, heads, channels = value.shape
    num_queries = sampling_locations.shape[1]
    table, rows, steps, corners = _bags(value, spatial_shapes,
                                        sampling_locations, attention_weights)
    num_bags, positions = rows.shape
    # (num_bags, 4 * positions) rows and (num_bags, 1, 4 * positions) weights
    indices = (rows[:, None] + steps).view(num_bags, -1)
    weights = torch.stack([across * down for across, down in corners],
                          1).view(num_bags, 1, -1)
    chunk = max(1, GATHERED_PER_CHUNK // (4 * positions * channels))
    out = torch.cat([
        torch.matmul(bag_weights, table[bag_rows])
        for bag_rows, bag_weights in zip(
            indices.split(chunk), weights.split(chunk))
    ])
    return out.view(bs, num_queries, heads * channels)


class GatherMultiScaleDeformableAttention(MultiScaleDeformableAttention):
    """mmcv's ``MultiScaleDeformableAttention`` with
    :func:`gather_deformable_attn` for CPU inference.

    Same parameters, initialisation and state dict as mmcv's module (the
    forward is re-written because mmcv's calls its sampling function
    directly); only the sampling back-end is chosen differently, see
    :meth:`sample`. Supports what Mask DINO uses: ``batch_first=True``,
    reference points or boxes, an optional key padding mask.
    """

    def forward(self,
                query: Tensor,
                key: Optional[Tensor] = None,
                value: Optional[Tensor] = None,
                identity: Optional[Tensor] = None,
                query_pos: Optional[Tensor] = None,
                key_padding_mask: Optional[Tensor] = None,
                reference_points: Optional[Tensor] = None,
                spatial_shapes: Optional[Tensor] = None,
                level_start_index: Optional[Tensor] = None,
                **kwargs) -> Tensor:
        """Deformable attention of ``query`` over ``value``.

        Args:
            query (Tensor): ``(bs, nq, D)``.
            key (Tensor, optional): Unused (as in mmcv).
            value (Tensor, optional): ``(bs, num_keys, D)``; the query if
                None.
            identity (Tensor, optional): Residual; the query if None.
            query_pos (Tensor, optional): ``(bs, nq, D)`` added to the query.
            key_padding_mask (Tensor, optional): ``(bs, num_keys)`` bool,
                True = padded (value zeroed).
            reference_points (Tensor): ``(bs, nq, levels, 2)`` points or
                ``(bs, nq, levels, 4)`` cxcywh boxes, normalised.
            spatial_shapes (Tensor): ``(levels, 2)`` ``(h, w)``.
            level_start_index (Tensor): ``(levels,)`` first key of each level.

        Returns:
            Tensor: ``(bs, nq, D)``: projected output plus ``identity``.
        """
        assert self.batch_first, 'only batch_first=True is supported'
        value = query if value is None else value
        identity = query if identity is None else identity
        if query_pos is not None:
            query = query + query_pos
        bs, num_queries, _ = query.shape
        num_keys = value.shape[1]
        assert int(spatial_shapes.prod(-1).sum()) == num_keys

        value = self.value_proj(value)
        if key_padding_mask is not None:
            value = value.masked_fill(key_padding_mask[..., None], 0.0)
        value = value.view(bs, num_keys, self.num_heads, -1)
        offsets = self.sampling_offsets(query).view(bs, num_queries,
                                                    self.num_heads,
                                                    self.num_levels,
                                                    self.num_points, 2)
        weights = self.attention_weights(query).view(
            bs, num_queries, self.num_heads,
            self.num_levels * self.num_points).softmax(-1).view(
                bs, num_queries, self.num_heads, self.num_levels,
                self.num_points)
        locations = self.sampling_locations(reference_points, offsets,
                                            spatial_shapes)
        output = self.sample(value, spatial_shapes, level_start_index,
                             locations, weights)
        return self.dropout(self.output_proj(output)) + identity

    def sampling_locations(self, reference_points: Tensor, offsets: Tensor,
                           spatial_shapes: Tensor) -> Tensor:
        """Normalised sampling points, as mmcv computes them.

        Args:
            reference_points (Tensor): ``(bs, nq, levels, 2 or 4)``.
            offsets (Tensor): ``(bs, nq, heads, levels, points, 2)``.
            spatial_shapes (Tensor): ``(levels, 2)``.

        Returns:
            Tensor: ``(bs, nq, heads, levels, points, 2)`` ``(x, y)``.
        """
        if reference_points.shape[-1] == 2:
            # the per-level factors and the reference points laid out as a
            # contiguous (levels, points, 2) block: broadcasting them over
            # the two innermost values was several times slower
            bs, num_queries, _, num_levels, num_points, _ = offsets.shape
            normalizer = spatial_shapes.flip(-1)[:, None].expand(
                num_levels, num_points, 2).contiguous()
            reference = reference_points[:, :, None, :, None, :].expand(
                bs, num_queries, 1, num_levels, num_points, 2).contiguous()
            return reference + offsets / normalizer
        if reference_points.shape[-1] == 4:
            return (reference_points[:, :, None, :, None, :2] +
                    offsets / self.num_points *
                    reference_points[:, :, None, :, None, 2:] * 0.5)
        raise ValueError('Last dim of reference_points must be 2 or 4, got '
                         f'{reference_points.shape[-1]}')

    def sample(self, value: Tensor, spatial_shapes: Tensor,
               level_start_index: Tensor, locations: Tensor,
               weights: Tensor) -> Tensor:
        """Sampling back-end: mmcv's CUDA kernel on CUDA;
        :func:`export_deformable_attn` in ONNX export;
        :func:`grid_sample_deformable_attn` under autograd; otherwise
        :func:`gather_deformable_attn`.

        Returns:
            Tensor: ``(bs, nq, D)``.
        """
        if value.is_cuda:
            return MultiScaleDeformableAttnFunction.apply(
                value, spatial_shapes, level_start_index, locations, weights,
                self.im2col_step)
        if torch.onnx.is_in_onnx_export():
            return export_deformable_attn(value, spatial_shapes, locations,
                                          weights)
        if torch.is_grad_enabled() and any(
                t.requires_grad for t in (value, locations, weights)):
            return grid_sample_deformable_attn(value, spatial_shapes,
                                               locations, weights)
        return gather_deformable_attn(value, spatial_shapes, locations,
                                      weights)


def use_gather_attention(module: nn.Module) -> None:
    """Replace every mmcv ``MultiScaleDeformableAttention`` in ``module`` by
    :class:`GatherMultiScaleDeformableAttention` with the same weights.

    mmdet's deformable-DETR layers construct mmcv's class directly. The
    replacement is built without consuming the global random stream, so a
    seeded model draws the same weights as with mmcv's layers.
    """
    for name, child in list(module.named_children()):
        if type(child) is MultiScaleDeformableAttention:
            with torch.random.fork_rng(devices=[]):
                new = GatherMultiScaleDeformableAttention(
                    embed_dims=child.embed_dims,
                    num_heads=child.num_heads,
                    num_levels=child.num_levels,
                    num_points=child.num_points,
                    im2col_step=child.im2col_step,
                    dropout=child.dropout.p,
                    batch_first=child.batch_first)
            new.load_state_dict(child.state_dict())
            setattr(module, name, new)
        else:
            use_gather_attention(child)
