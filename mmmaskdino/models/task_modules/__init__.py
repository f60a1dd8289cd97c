# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
from .match_costs import (FastCrossEntropyLossCost, NormalizedBBoxL1Cost,
                          NormalizedGIoUCost)

__all__ = [
    'FastCrossEntropyLossCost', 'NormalizedBBoxL1Cost', 'NormalizedGIoUCost'
]
