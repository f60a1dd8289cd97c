# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
"""Training-engine components: a CPU mixed-precision optimizer wrapper and a
hook that makes resumed training reproduce the uninterrupted run."""
from .hooks import RNGStateHook
from .optim_wrapper import CPUAmpOptimWrapper

__all__ = ['CPUAmpOptimWrapper', 'RNGStateHook']
