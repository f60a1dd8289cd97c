# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
from .checkpoint_compat import register_checkpoint_safe_globals
from .official_checkpoints import (dataset_meta_for_class_count,
                                    official_dataset_meta)

register_checkpoint_safe_globals()

__all__ = [
    'register_checkpoint_safe_globals', 'dataset_meta_for_class_count',
    'official_dataset_meta'
]
