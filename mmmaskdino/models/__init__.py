# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
from . import (dense_heads, detectors, layers, losses, necks,  # noqa: F401
               seg_heads, task_modules)
