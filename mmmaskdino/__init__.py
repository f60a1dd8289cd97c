# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
"""Mask DINO for MMDetection 3.x.

Importing this package registers every Mask DINO component into MMDetection's
registries (``mmdet.registry.MODELS``, ``TASK_UTILS``, ``DATASETS``, ...), so
configs only need ``custom_imports = dict(imports=['mmmaskdino'])`` and
``default_scope = 'mmdet'``.
"""
from .version import __version__, version_info
from . import utils  # noqa: F401,E402  (compat patches first)
from . import datasets, evaluation, models  # noqa: F401,E402
from . import engine  # noqa: F401,E402

__all__ = ['__version__', 'version_info']
