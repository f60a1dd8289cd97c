# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
from . import (data_preprocessors, dense_heads, detectors,  # noqa: F401
               layers, losses, necks, seg_heads, task_modules)
