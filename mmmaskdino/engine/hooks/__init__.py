# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
from .rng_state_hook import RNGStateHook
from .weights_only_checkpoint_hook import WeightsOnlyCheckpointHook

__all__ = ['RNGStateHook', 'WeightsOnlyCheckpointHook']
