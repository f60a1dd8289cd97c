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
PIXEL_DECODER_RULES: List[Rule] = [
    (r'input_proj\.(\d+)\.0\.(weight|bias)', r'input_proj.\1.conv.\2'),
    (r'input_proj\.(\d+)\.1\.(weight|bias)', r'input_proj.\1.gn.\2'),
    (r'transformer\.level_embed', 'level_embed'),
    (r'transformer\.encoder\.layers\.(\d+)\.self_attn\.(.+)',
     r'encoder.layers.\1.self_attn.\2'),
    (r'transformer\.encoder\.layers\.(\d+)\.linear1\.(weight|bias)',
     r'encoder.layers.\1.ffn.layers.0.0.\2'),
    (r'transformer\.encoder\.layers\.(\d+)\.linear2\.(weight|bias)',
     r'encoder.layers.\1.ffn.layers.1.\2'),
    (r'transformer\.encoder\.layers\.(\d+)\.norm1\.(weight|bias)',
     r'encoder.layers.\1.norms.0.\2'),
    (r'transformer\.encoder\.layers\.(\d+)\.norm2\.(weight|bias)',
     r'encoder.layers.\1.norms.1.\2'),
    # official adapter_{i+1} / layer_{i+1} act on backbone map i
    *[rule for i in range(4) for rule in (
        (rf'adapter_{i + 1}\.weight', f'lateral_convs.{i}.conv.weight'),
        (rf'adapter_{i + 1}\.norm\.(weight|bias)', rf'lateral_convs.{i}.gn.\1'),
        (rf'layer_{i + 1}\.weight', f'output_convs.{i}.conv.weight'),
        (rf'layer_{i + 1}\.norm\.(weight|bias)', rf'output_convs.{i}.gn.\1'),
    )],
]

# Rules for keys under ``sem_seg_head.predictor.`` (already stripped of that prefix).
PREDICTOR_RULES: List[Rule] = [
    # aliases: `decoder_norm` is `decoder.norm`; the box MLP is kept once, from `_bbox_embed`
    (r'decoder_norm\..*', None),
    (r'(decoder\.)?bbox_embed\.\d+\..*', None),
    (r'_bbox_embed\.(.*)', r'bbox_embed.\1'),
    (r'label_enc\.(.*)', r'denoising.label_enc.\1'),
    # nn.MultiheadAttention sits under mmcv's MultiheadAttention wrapper as `attn`
    (r'(decoder\.layers\.\d+)\.self_attn\.(.*)', r'\1.self_attn.attn.\2'),
    # official norm2 / norm1 / norm3 follow self-attn / cross-attn / FFN
    (r'(decoder\.layers\.\d+)\.norm2\.(.*)', r'\1.norms.0.\2'),
    (r'(decoder\.layers\.\d+)\.norm1\.(.*)', r'\1.norms.1.\2'),
    (r'(decoder\.layers\.\d+)\.norm3\.(.*)', r'\1.norms.2.\2'),
    (r'(decoder\.layers\.\d+)\.linear1\.(.*)', r'\1.ffn.layers.0.0.\2'),
    (r'(decoder\.layers\.\d+)\.linear2\.(.*)', r'\1.ffn.layers.1.\2'),
]

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
