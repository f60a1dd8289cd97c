# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
"""Map official Mask DINO (detectron2) state-dict keys onto mmmaskdino's module tree.

Each part of the model owns one ordered list of ``(pattern, replacement)`` regex rules
applied with ``re.sub`` to keys that start with the part's official prefix. A rule whose
replacement is ``None`` drops the key (used for aliased tensors that the official model
stores several times).
"""
import re
from collections import OrderedDict
from typing import Dict, List, Optional, Tuple

import torch

Rule = Tuple[str, Optional[str]]

# Rules for keys under ``sem_seg_head.pixel_decoder.`` (already stripped of that prefix).
PIXEL_DECODER_RULES: List[Rule] = []

# Rules for keys under ``sem_seg_head.predictor.`` (already stripped of that prefix).
PREDICTOR_RULES: List[Rule] = []

PART_PREFIXES = (
    ('sem_seg_head.pixel_decoder.', 'panoptic_head.pixel_decoder.',
     PIXEL_DECODER_RULES),
    ('sem_seg_head.predictor.', 'panoptic_head.predictor.', PREDICTOR_RULES),
)


def _apply_rules(key: str, rules: List[Rule]) -> Optional[str]:
    for pattern, repl in rules:
        if re.fullmatch(pattern, key):
            return None if repl is None else re.sub(pattern, repl, key)
    return key


def convert_head_state_dict(
        state_dict: Dict[str, torch.Tensor]) -> 'OrderedDict[str, torch.Tensor]':
    """Convert the head part (pixel decoder + predictor) of an official state dict.

    Keys outside the head (backbone, ``criterion.*``) are ignored here.
    """
    out = OrderedDict()
    for key, value in state_dict.items():
        for src, dst, rules in PART_PREFIXES:
            if key.startswith(src):
                new = _apply_rules(key[len(src):], rules)
                if new is not None:
                    out[dst + new] = value
                break
    return out
