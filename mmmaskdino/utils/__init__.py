# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
from .checkpoint_compat import register_checkpoint_safe_globals

register_checkpoint_safe_globals()

__all__ = ['register_checkpoint_safe_globals']
