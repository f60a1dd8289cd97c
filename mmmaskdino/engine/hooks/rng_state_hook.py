# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
"""Reproducible resumption of interrupted training."""
from typing import Dict, Optional

import torch
from mmdet.registry import HOOKS
from mmengine.hooks import Hook
from torch import Tensor

DATA_BATCH = Optional[dict]


def _get_state() -> Dict[str, Tensor]:
    """The global torch generator states (CPU and, if present, CUDA)."""
    state = dict(cpu=torch.get_rng_state())
    if torch.cuda.is_available():
        state['cuda'] = torch.cuda.get_rng_state()
    return state


def _set_state(state: Dict[str, Tensor]) -> None:
    """Install generator states returned by :func:`_get_state`."""
    torch.set_rng_state(state['cpu'])
    if 'cuda' in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state['cuda'])


@HOOKS.register_module()
class RNGStateHook(Hook):
    """Save the model's random stream in checkpoints so that ``--resume``
    continues bit-for-bit like the uninterrupted run.

    Mask DINO draws random numbers during every training step (denoising
    label/box noise, the points of the mask losses and of the matcher). They
    come from torch's global generator, which the data loader also draws from
    whenever it starts an epoch. mmengine checkpoints hold no generator
    state, and on resume ``IterBasedTrainLoop`` only replays the *data
    loading* of the finished iterations (which restores the sampler position
    and, with ``num_workers=0``, the numpy/python state used by the
    augmentations) -- not the model's draws.

    This hook gives the model its own stream: before each training iteration
    it sets the data-loading state of the global generator aside and installs
    the model stream, after the iteration it swaps them back. The model
    stream starts from ``torch.manual_seed(runner.seed + seed_offset)``, is
    written to every checkpoint (key ``model_rng_state``) and is restored
    when a checkpoint holding it is loaded. The data-loading stream needs no
    saving: the loop's replay reproduces it.

    Args:
        seed_offset (int): Offset of the model stream's seed from the
            runner's seed, so the two streams differ. Defaults to 1.
    """

    priority = 'VERY_HIGH'
    checkpoint_key = 'model_rng_state'

    def __init__(self, seed_offset: int = 1) -> None:
        self.seed_offset = seed_offset
        self._model_state: Optional[Dict[str, Tensor]] = None
        self._data_state: Optional[Dict[str, Tensor]] = None

    def before_train(self, runner) -> None:
        """Seed the model stream unless a resumed checkpoint provided it."""
        if self._model_state is None:
            data_state = _get_state()
            torch.manual_seed((runner.seed or 0) + self.seed_offset)
            self._model_state = _get_state()
            _set_state(data_state)

    def before_train_iter(self,
                          runner,
                          batch_idx: int,
                          data_batch: DATA_BATCH = None) -> None:
        """Put the data-loading state aside and install the model stream."""
        self._data_state = _get_state()
        _set_state(self._model_state)

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch: DATA_BATCH = None,
                         outputs: Optional[dict] = None) -> None:
        """Keep the advanced model stream, restore the data-loading state."""
        self._model_state = _get_state()
        _set_state(self._data_state)

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        """Write the model stream into the checkpoint."""
        if self._model_state is not None:
            checkpoint[self.checkpoint_key] = {
                k: v.clone()
                for k, v in self._model_state.items()
            }

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        """Continue the model stream saved in a loaded checkpoint."""
        if self.checkpoint_key in checkpoint:
            self._model_state = checkpoint[self.checkpoint_key]
