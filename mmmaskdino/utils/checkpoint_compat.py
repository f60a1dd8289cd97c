# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
"""Make MMEngine Runner checkpoints loadable under ``torch.load(weights_only=True)``.

torch >= 2.6 unpickles with ``weights_only=True`` by default and mmengine 0.10.7
calls ``torch.load`` without that argument, so resuming (``resume=True``) and
``load_from`` fail on the checkpoints mmengine's own Runner writes. Two things
in those files are not plain tensors/containers:

1. numpy scalars and arrays in ``meta`` and the message hub
   (``numpy.dtype``, ``numpy.ndarray``, ``numpy._core.multiarray.scalar`` and
   ``_reconstruct``, the per-dtype classes). They are allow-listed here: they
   only rebuild numeric data.
2. ``mmengine.logging.HistoryBuffer`` objects, whose default pickle also stores
   ``getattr(HistoryBuffer, 'min')``-style references that would need
   ``builtins.getattr`` in the allow-list. Instead, HistoryBuffer is given a
   ``__reduce__`` that pickles only its numeric history, and the class itself
   is allow-listed. Checkpoints written with this patch load weights-only;
   ones written before it need ``weights_only=False`` from a trusted source.

Weights-only loading itself is never switched off: a file that holds any other
object (for example arbitrary code in a downloaded checkpoint) is still refused.
"""
from typing import List

import numpy as np
import torch
from mmengine.logging import HistoryBuffer


def _reduce_history_buffer(buffer: HistoryBuffer) -> tuple:
    log_history, count_history = buffer.data
    return (HistoryBuffer, (log_history.tolist(), count_history.tolist(),
                            buffer.max_length))


def _numpy_safe_globals() -> List[object]:
    numpy_core = getattr(np, '_core', None) or np.core
    dtype_classes = [
        type(np.dtype(name)) for name in
        ('bool', 'int8', 'int16', 'int32', 'int64', 'uint8', 'uint16',
         'uint32', 'uint64', 'float16', 'float32', 'float64', 'str')
    ]
    return [
        np.dtype, np.ndarray, numpy_core.multiarray.scalar,
        numpy_core.multiarray._reconstruct, *dtype_classes
    ]


def register_checkpoint_safe_globals() -> None:
    """Allow-list the types that MMEngine Runner checkpoints contain.

    Idempotent; called once when :mod:`mmmaskdino` is imported.
    """
    HistoryBuffer.__reduce__ = _reduce_history_buffer
    add_safe_globals = getattr(torch.serialization, 'add_safe_globals', None)
    if add_safe_globals is not None:  # torch < 2.4 loads without weights_only
        add_safe_globals([HistoryBuffer, *_numpy_safe_globals()])
