# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
from .official_checkpoints import (dataset_meta_for_class_count,
                                   official_dataset_meta)

__all__ = ['dataset_meta_for_class_count', 'official_dataset_meta']
