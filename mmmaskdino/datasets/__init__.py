# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
from . import transforms  # noqa: F401  (registers the training transforms)
