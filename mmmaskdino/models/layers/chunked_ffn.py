# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
"""mmcv's ``FFN`` computed in row chunks on the CPU, for the pixel decoder.

The pixel decoder's FFN (256 -> 2048 -> 256, ReLU) runs over every token of
the 1/8 .. 1/64 maps: 43520 tokens for two 1024 x 1024 training images, so
its hidden activation is a 356 MB tensor per layer. On the CPU each such
fresh tensor is mapped anew by the allocator and page-faulted page by page,
in the forward pass (linear, ReLU) and again in the backward pass (the ReLU
gradient, the hidden gradient and its copies): per step these cost about as
much as the FFN's matrix products themselves.

:class:`ChunkedFFN` computes the same two linear layers in chunks of rows
whose temporaries stay below glibc's largest mmap threshold (so freed chunks
are reused), recomputes each chunk's hidden activation in the backward pass
instead of keeping it, and writes the gradients chunk by chunk. Same
parameters, state dict and math as mmcv's ``FFN``; results equal up to float
rounding. It is used on the CPU in fp32 without autocast; on other devices,
under autocast and in ONNX export the module is mmcv's ``FFN``.
"""
from typing import List, Optional, Tuple

import torch
from mmcv.cnn.bricks.transformer import FFN
from torch import Tensor, nn

# Elements of one chunk of the hidden activation: 16 MiB in fp32, below
# glibc's largest mmap threshold (32 MiB).
HIDDEN_PER_CHUNK = 2**22


def _row_chunks(num_rows: int, hidden_dim: int) -> List[slice]:
    rows = max(1, HIDDEN_PER_CHUNK // hidden_dim)
    return [
        slice(s, min(s + rows, num_rows)) for s in range(0, num_rows, rows)
    ]


def _hidden_buffer(x: Tensor, chunks: List[slice], hidden_dim: int) -> Tensor:
    """``(rows of the largest chunk, F)`` buffer for one chunk at a time:
    a fresh tensor per chunk would be page-faulted anew."""
    rows = chunks[0].stop - chunks[0].start if chunks else 0
    return x.new_empty(rows, hidden_dim)


def relu_mlp_rows(x: Tensor, w1: Tensor, b1: Tensor, w2: Tensor,
                  b2: Tensor) -> Tensor:
    """``linear(relu(linear(x, w1, b1)), w2, b2)`` in row chunks.

    Args:
        x (Tensor): ``(n, D)``.
        w1, b1 (Tensor): ``(F, D)``, ``(F,)``.
        w2, b2 (Tensor): ``(D_out, F)``, ``(D_out,)``.

    Returns:
        Tensor: ``(n, D_out)``.
    """
    out = x.new_empty(x.shape[0], w2.shape[0])
    chunks = _row_chunks(x.shape[0], w1.shape[0])
    buffer = _hidden_buffer(x, chunks, w1.shape[0])
    for rows in chunks:
        hidden = buffer[:rows.stop - rows.start]
        torch.addmm(b1, x[rows], w1.t(), out=hidden).relu_()
        torch.addmm(b2, hidden, w2.t(), out=out[rows])
    return out


class _ChunkedReLUMLP(torch.autograd.Function):
    """Autograd of :func:`relu_mlp_rows` with chunked gradients.

    The backward pass recomputes each chunk's hidden activation instead of
    keeping the ``(n, F)`` activation from the forward pass: one more
    ``(chunk, D) x (D, F)`` product per chunk, against a 356 MB tensor per
    layer at the training size that is written once, page-faulted page by
    page, and held until the backward pass.
    """

    @staticmethod
    def forward(ctx, x: Tensor, w1: Tensor, b1: Tensor, w2: Tensor,
                b2: Tensor) -> Tensor:
        ctx.save_for_backward(x, w1, b1, w2)
        return relu_mlp_rows(x, w1, b1, w2, b2)

    @staticmethod
    def backward(ctx, grad_out: Tensor) -> Tuple[Tensor, ...]:
        x, w1, b1, w2 = ctx.saved_tensors
        grad_out = grad_out.contiguous()
        grad_x = torch.empty_like(x)
        grad_w1 = torch.zeros_like(w1)
        grad_b1 = torch.zeros_like(b1)
        grad_w2 = torch.zeros_like(w2)
        chunks = _row_chunks(x.shape[0], w1.shape[0])
        hidden_buffer = _hidden_buffer(x, chunks, w1.shape[0])
        grad_buffer = torch.empty_like(hidden_buffer)
        for rows in chunks:
            hidden = hidden_buffer[:rows.stop - rows.start]
            grad_h = grad_buffer[:rows.stop - rows.start]
            torch.addmm(b1, x[rows], w1.t(), out=hidden).relu_()
            grad_w2.addmm_(grad_out[rows].t(), hidden)
            torch.mm(grad_out[rows], w2, out=grad_h)
            torch.ops.aten.threshold_backward.grad_input(  # ReLU'
                grad_h, hidden, 0, grad_input=grad_h)
            torch.mm(grad_h, w1, out=grad_x[rows])
            grad_w1.addmm_(grad_h.t(), x[rows])
            grad_b1 += grad_h.sum(0)
        return grad_x, grad_w1, grad_b1, grad_w2, grad_out.sum(0)


class ChunkedFFN(FFN):
    """mmcv's ``FFN`` (two linear layers, ReLU, no dropout, identity added)
    with :func:`relu_mlp_rows` on the CPU; see the module docstring."""

    def forward(self, x: Tensor, identity: Optional[Tensor] = None) -> Tensor:
        """``identity + fc2(relu(fc1(x)))``; ``identity`` is ``x`` if None.

        Args:
            x (Tensor): ``(..., D)``.
            identity (Tensor, optional): ``(..., D)`` residual.

        Returns:
            Tensor: ``(..., D)``.
        """
        if (x.device.type != 'cpu' or x.dtype != torch.float32
                or torch.is_autocast_enabled('cpu')
                or torch.onnx.is_in_onnx_export()):
            return super().forward(x, identity)
        fc1, fc2 = self.layers[0][0], self.layers[1]
        args = (x.reshape(-1, x.shape[-1]), fc1.weight, fc1.bias, fc2.weight,
                fc2.bias)
        if torch.is_grad_enabled() and any(t.requires_grad for t in args):
            out = _ChunkedReLUMLP.apply(*args)
        else:
            out = relu_mlp_rows(*args)
        return (x if identity is None else identity) + out.view(
            *x.shape[:-1], out.shape[-1])


def _is_plain_relu_ffn(module: nn.Module) -> bool:
    """Whether ``module`` is mmcv's ``FFN`` exactly as :class:`ChunkedFFN`
    computes it."""
    if type(module) is not FFN or module.num_fcs != 2:
        return False
    first, fc2, last_drop = module.layers
    return (isinstance(first[1], nn.ReLU) and first[2].p == 0.0
            and last_drop.p == 0.0 and fc2.bias is not None
            and isinstance(module.gamma2, nn.Identity)
            and isinstance(module.dropout_layer, nn.Identity)
            and module.add_identity)


def use_chunked_ffn(module: nn.Module) -> None:
    """Turn every plain ReLU ``FFN`` of ``module`` into :class:`ChunkedFFN`.

    The class is swapped in place: the parameters, their initialisation and
    the random stream stay as they are.
    """
    for child in module.modules():
        if _is_plain_relu_ffn(child):
            child.__class__ = ChunkedFFN
