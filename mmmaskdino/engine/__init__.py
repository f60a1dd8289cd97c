# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
"""Training-engine components: a CPU mixed-precision optimizer wrapper, a
hook that makes resumed training reproduce the uninterrupted run and one that
writes checkpoints loadable with ``weights_only=True``."""
from .hooks import RNGStateHook, WeightsOnlyCheckpointHook
from .optim_wrapper import CPUAmpOptimWrapper

__all__ = ['CPUAmpOptimWrapper', 'RNGStateHook', 'WeightsOnlyCheckpointHook']
