# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
"""Mixed-precision training on the CPU."""
from contextlib import contextmanager
from typing import Iterator, Union

import torch
from mmdet.registry import OPTIM_WRAPPERS
from mmengine.optim import OptimWrapper
from torch import nn


@OPTIM_WRAPPERS.register_module()
class CPUAmpOptimWrapper(OptimWrapper):
    """Automatic mixed precision on the CPU: bfloat16 autocast, no loss
    scaling.

    mmengine's ``AmpOptimWrapper`` refuses to start without CUDA/NPU/MLU, so
    ``tools/train.py --amp`` selects this wrapper on CPU-only machines (and
    mmengine's ``AmpOptimWrapper`` with float16 and a dynamic ``GradScaler``
    otherwise). bfloat16 has the exponent range of float32, so gradients do
    not underflow and no scaler is needed. Modules that must stay in float32
    (the deformable encoder and decoder, the Hungarian matching) disable
    autocast themselves.

    Args:
        dtype (str or torch.dtype): Autocast dtype, ``'bfloat16'`` (default)
            or ``'float16'``.
        **kwargs: Arguments of :class:`mmengine.optim.OptimWrapper`
            (``optimizer``, ``clip_grad``, ``accumulative_counts``).
    """

    valid_dtypes = ('bfloat16', 'float16')

    def __init__(self,
                 dtype: Union[str, torch.dtype] = 'bfloat16',
                 **kwargs) -> None:
        super().__init__(**kwargs)
        if isinstance(dtype, str):
            if dtype not in self.valid_dtypes:
                raise ValueError(f'optim_wrapper.dtype must be one of '
                                 f'{self.valid_dtypes}, got {dtype!r}')
            dtype = getattr(torch, dtype)
        self.cast_dtype = dtype

    @contextmanager
    def optim_context(self, model: nn.Module) -> Iterator[None]:
        """Gradient-accumulation context of the parent plus CPU autocast."""
        with super().optim_context(model), torch.autocast(
                device_type='cpu', dtype=self.cast_dtype):
            yield
