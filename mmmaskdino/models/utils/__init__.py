# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
from .derived_settings import fill_derived, uses_softmax_classes
from .layer_configs import deformable_attention_cfg, ffn_cfg

__all__ = [
    'fill_derived', 'uses_softmax_classes', 'deformable_attention_cfg',
    'ffn_cfg'
]
