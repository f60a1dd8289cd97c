# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
"""Runner checkpoints that ``torch.load(weights_only=True)`` accepts."""
from typing import Any

import numpy as np
from mmdet.registry import HOOKS
from mmengine.hooks import Hook
from mmengine.logging import HistoryBuffer

HISTORY_BUFFER_KEY = '__history_buffer__'


def to_weights_only(obj: Any) -> Any:
    """``obj`` with every ``HistoryBuffer`` replaced by a plain dict of its
    numeric history and numpy scalars/arrays by Python numbers/lists.

    Containers are copied, never changed in place (the runner's message hub
    is still in use).
    """
    if isinstance(obj, HistoryBuffer):
        log_history, count_history = obj.data
        return {
            HISTORY_BUFFER_KEY: True,
            'log_history': log_history.tolist(),
            'count_history': count_history.tolist(),
            'max_length': obj.max_length
        }
    if isinstance(obj, (np.ndarray, np.generic)):
        return obj.tolist()
    if isinstance(obj, dict):
        return type(obj)((k, to_weights_only(v)) for k, v in obj.items())
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_weights_only(v) for v in obj)
    return obj


def from_weights_only(obj: Any) -> Any:
    """Inverse of :func:`to_weights_only` for the ``HistoryBuffer`` s."""
    if isinstance(obj, dict):
        if obj.get(HISTORY_BUFFER_KEY):
            return HistoryBuffer(obj['log_history'], obj['count_history'],
                                 obj['max_length'])
        return type(obj)((k, from_weights_only(v)) for k, v in obj.items())
    if isinstance(obj, (list, tuple)):
        return type(obj)(from_weights_only(v) for v in obj)
    return obj


@HOOKS.register_module()
class WeightsOnlyCheckpointHook(Hook):
    """Write the message hub and meta of checkpoints in plain types.

    torch >= 2.6 unpickles with ``weights_only=True`` by default, and
    MMEngine 0.10.7 calls ``torch.load`` without that argument. A Runner
    checkpoint then fails to load (``--resume``, ``load_from``,
    ``tools/test.py``): its message hub holds ``HistoryBuffer`` objects,
    whose pickle references ``getattr`` on the class, and numpy arrays and
    scalars. Rather than allow-listing those globals, this hook saves the
    histories as lists (``before_save_checkpoint``) and rebuilds the
    ``HistoryBuffer`` s when a checkpoint is loaded
    (``after_load_checkpoint``, which the runner calls before it restores
    the message hub). Weights-only loading stays on: a file holding any
    other object is still refused.
    """

    priority = 'VERY_LOW'

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        """Convert ``message_hub`` and ``meta`` to plain types."""
        for key in ('message_hub', 'meta'):
            if key in checkpoint:
                checkpoint[key] = to_weights_only(checkpoint[key])

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        """Rebuild the ``HistoryBuffer`` s of the message hub."""
        if 'message_hub' in checkpoint:
            checkpoint['message_hub'] = from_weights_only(
                checkpoint['message_hub'])
