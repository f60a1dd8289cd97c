# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
"""The session-wide shapes dataset fixture of ``tests/test_datasets``."""
from tests.test_datasets.conftest import shapes_root  # noqa: F401
