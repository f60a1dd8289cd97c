# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
"""Mask DINO for MMDetection 3.x.

Importing this package registers every Mask DINO component into MMDetection's
registries (``mmdet.registry.MODELS``, ``TASK_UTILS``, ``DATASETS``, ...), so
configs only need ``custom_imports = dict(imports=['mmmaskdino'])`` and
``default_scope = 'mmdet'``.
"""
from .version import __version__, version_info

try:
    import mmcv.ops  # noqa: F401
except ImportError as err:  # before the imports that would fail deep inside
    raise ImportError(
        'mmmaskdino needs mmcv>=2.0.0rc4,<2.2.0 with its compiled ops '
        '(mmcv-lite is not enough): `pip install -U openmim && mim install '
        '"mmcv==2.1.0"` (prebuilt for torch 2.1 + CUDA 11.8/12.1), or '
        '`MMCV_WITH_OPS=1 pip install --no-build-isolation mmcv==2.1.0`; see '
        f'README.md, "GPU install" ({err})') from err
from . import datasets, engine, models, utils  # noqa: F401,E402

__all__ = ['__version__', 'version_info']
