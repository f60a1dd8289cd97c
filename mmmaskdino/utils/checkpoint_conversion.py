# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
"""Map official Mask DINO (detectron2) checkpoints onto mmmaskdino's module
tree.

An official checkpoint is ``{'model': OrderedDict(...), ...}`` whose keys are
``backbone.*`` (detectron2 ResNet or Mask2Former's ``D2SwinTransformer``),
``sem_seg_head.pixel_decoder.*``, ``sem_seg_head.predictor.*`` and
``criterion.empty_weight`` (the official ``SetCriterion`` buffer).
:func:`convert_official_state_dict` turns those weights into this repository's
``backbone.*`` / ``panoptic_head.*``
keys:

* each head part owns one ordered list of ``(pattern, replacement)`` regex
  rules applied with ``re.sub`` to the keys under the part's official prefix; a
  rule whose replacement is ``None`` drops the key. The aliased tensors (the
  box MLP stored as ``_bbox_embed``, ``bbox_embed.{i}`` and
  ``decoder.bbox_embed.{i}``; ``decoder_norm`` = ``decoder.norm``) are kept
  once, after checking that every copy holds the same values;
* detectron2 ResNet names follow :data:`RESNET_RULES` (FrozenBN statistics
  become BN buffers, ``num_batches_tracked`` is added); Swin names and the
  patch-merging channel order are converted by mmdet's own ``swin_converter``;
* ``criterion.empty_weight`` is dropped (derived from the class count here).

Two ways to use it:

1. ``tools/model_converters/maskdino_to_mmdet.py SRC DST --config CFG`` writes
   a converted checkpoint, checks that it fits the config
   (:func:`check_state_dict_fits`) and strict-loads it.
2. Direct loading: ``MaskDINO._load_from_state_dict`` calls
   :func:`prepare_state_dict` on the root state dict before any child module
   reads it. That recognises the detectron2 format (a ``model`` entry holding
   ``sem_seg_head.*`` weights, or those keys at the top level) and converts it
   in place, so ``load_from = <official .pth or URL>`` and ``tools/test.py CFG
   <official .pth>`` work as is. It also keeps the model's own class head and
   denoising label embedding when their shapes differ from the checkpoint's
   (fine-tuning to another class count) and says so in one log line.
"""
import logging
import re
from collections import OrderedDict
from typing import Dict, List, Mapping, MutableMapping, Optional, Tuple

import torch
from mmdet.models.backbones.swin import swin_converter
from mmengine.logging import print_log
from torch import nn

Rule = Tuple[str, Optional[str]]

# Rules for keys under ``sem_seg_head.pixel_decoder.`` (already stripped of
# that prefix).
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
    *[
        rule for i in range(4) for rule in (
            (rf'adapter_{i + 1}\.weight', f'lateral_convs.{i}.conv.weight'),
            (rf'adapter_{i + 1}\.norm\.(weight|bias)',
             rf'lateral_convs.{i}.gn.\1'),
            (rf'layer_{i + 1}\.weight', f'output_convs.{i}.conv.weight'),
            (rf'layer_{i + 1}\.norm\.(weight|bias)',
             rf'output_convs.{i}.gn.\1'),
        )
    ],
]

# Aliased tensors under ``sem_seg_head.predictor.``: (alias pattern, the key it
# duplicates).
PREDICTOR_ALIASES: List[Tuple[str, str]] = [
    (r'decoder_norm\.(.*)', r'decoder.norm.\1'),
    (r'(?:decoder\.)?bbox_embed\.\d+\.(.*)', r'_bbox_embed.\1'),
]

# Rules for keys under ``sem_seg_head.predictor.`` (already stripped of that
# prefix).
PREDICTOR_RULES: List[Rule] = [
    *[(alias, None) for alias, _ in PREDICTOR_ALIASES],
    (r'_bbox_embed\.(.*)', r'bbox_embed.\1'),
    (r'label_enc\.(.*)', r'denoising.label_enc.\1'),
    # nn.MultiheadAttention sits under mmcv's MultiheadAttention wrapper as
    # `attn`
    (r'(decoder\.layers\.\d+)\.self_attn\.(.*)', r'\1.self_attn.attn.\2'),
    # official norm2 / norm1 / norm3 follow self-attn / cross-attn / FFN
    (r'(decoder\.layers\.\d+)\.norm2\.(.*)', r'\1.norms.0.\2'),
    (r'(decoder\.layers\.\d+)\.norm1\.(.*)', r'\1.norms.1.\2'),
    (r'(decoder\.layers\.\d+)\.norm3\.(.*)', r'\1.norms.2.\2'),
    (r'(decoder\.layers\.\d+)\.linear1\.(.*)', r'\1.ffn.layers.0.0.\2'),
    (r'(decoder\.layers\.\d+)\.linear2\.(.*)', r'\1.ffn.layers.1.\2'),
]

# Rules for detectron2 ResNet keys under ``backbone.`` (already stripped of
# that prefix);
# detectron2 stage ``res{s}`` is mmdet's ``layer{s - 1}``.
RESNET_RULES: List[Rule] = [
    (r'stem\.conv1\.weight', 'conv1.weight'),
    (r'stem\.conv1\.norm\.(.*)', r'bn1.\1'),
    *[
        rule for s in range(2, 6) for rule in (
            (rf'res{s}\.(\d+)\.conv(\d)\.weight',
             rf'layer{s - 1}.\1.conv\2.weight'),
            (rf'res{s}\.(\d+)\.conv(\d)\.norm\.(.*)',
             rf'layer{s - 1}.\1.bn\2.\3'),
            (rf'res{s}\.(\d+)\.shortcut\.weight',
             rf'layer{s - 1}.\1.downsample.0.weight'),
            (rf'res{s}\.(\d+)\.shortcut\.norm\.(.*)',
             rf'layer{s - 1}.\1.downsample.1.\2'),
        )
    ],
]

PART_PREFIXES = (
    ('sem_seg_head.pixel_decoder.', 'panoptic_head.pixel_decoder.',
     PIXEL_DECODER_RULES),
    ('sem_seg_head.predictor.', 'panoptic_head.predictor.', PREDICTOR_RULES),
)
OFFICIAL_HEAD_PREFIX = 'sem_seg_head.'
DROPPED_PREFIXES = ('criterion.', )

# Tensors whose first dimension is the class count (``K = C`` or ``C + 1``).
CLASS_KEYS = ('panoptic_head.predictor.class_embed.weight',
              'panoptic_head.predictor.class_embed.bias',
              'panoptic_head.predictor.denoising.label_enc.weight')

# (converted key, what its first dimension ``{}`` sets, the config field behind
# it)
FIT_CHECKS = (
    ('panoptic_head.predictor.denoising.label_enc.weight', '{} classes',
     'num_things_classes + num_stuff_classes'),
    ('panoptic_head.pixel_decoder.level_embed', '{} feature levels',
     'num_feature_levels'),
    ('panoptic_head.pixel_decoder.encoder.layers.0.ffn.layers.0.0.weight',
     'encoder FFN width {}', 'pixel_decoder.ffn_channels'),
    ('panoptic_head.predictor.decoder.layers.0.ffn.layers.0.0.weight',
     'decoder FFN width {}', 'predictor.ffn_dim'),
    ('panoptic_head.predictor.decoder.norm.weight', 'hidden size {}',
     'predictor.hidden_dim'),
    ('panoptic_head.predictor.query_feat.weight', '{} learned queries',
     'predictor.num_queries'),
)


def _apply_rules(key: str, rules: List[Rule]) -> Optional[str]:
    for pattern, repl in rules:
        if re.fullmatch(pattern, key):
            return None if repl is None else re.sub(pattern, repl, key)
    return key


def _check_aliases(predictor: Mapping[str, torch.Tensor]) -> None:
    """Raise if an aliased predictor tensor differs from the one it duplicates.
    """
    for key, value in predictor.items():
        for alias, original in PREDICTOR_ALIASES:
            if re.fullmatch(alias, key):
                source = re.sub(alias, original, key)
                if source in predictor and not torch.equal(
                        value, predictor[source]):
                    raise ValueError(
                        f'sem_seg_head.predictor.{key} should be a copy of '
                        f'sem_seg_head.predictor.{source} but differs from it')


def convert_head_state_dict(
    state_dict: Mapping[str,
                        torch.Tensor]) -> 'OrderedDict[str, torch.Tensor]':
    """Convert the head part (pixel decoder + predictor) of an official state
    dict.

    Keys outside the head (backbone, ``criterion.*``) are ignored here.
    """
    predictor_prefix = PART_PREFIXES[1][0]
    _check_aliases({
        k[len(predictor_prefix):]: v
        for k, v in state_dict.items() if k.startswith(predictor_prefix)
    })
    out = OrderedDict()
    for key, value in state_dict.items():
        for src, dst, rules in PART_PREFIXES:
            if key.startswith(src):
                new = _apply_rules(key[len(src):], rules)
                if new is not None:
                    out[dst + new] = value
                break
    return out


def convert_resnet_state_dict(
    state_dict: Mapping[str,
                        torch.Tensor]) -> 'OrderedDict[str, torch.Tensor]':
    """Convert detectron2 ResNet keys (``stem.*``, ``res{2-5}.*``, without the
    ``backbone.`` prefix) to mmdet ``ResNet`` keys under ``backbone.``.

    detectron2 FrozenBN stores ``weight, bias, running_mean, running_var``; the
    matching mmdet BN also has ``num_batches_tracked``, added here as 0 when
    absent (SyncBN checkpoints already carry it).
    """
    out = OrderedDict()
    for key, value in state_dict.items():
        new = 'backbone.' + _apply_rules(key, RESNET_RULES)
        out[new] = value
        if new.endswith('.running_var'):
            tracked = new[:-len('running_var')] + 'num_batches_tracked'
            out[tracked] = state_dict.get(
                key[:-len('running_var')] + 'num_batches_tracked',
                torch.tensor(0, dtype=torch.long))
    return out


def convert_backbone_state_dict(
    state_dict: Mapping[str,
                        torch.Tensor]) -> 'OrderedDict[str, torch.Tensor]':
    """Convert official backbone keys (without the ``backbone.`` prefix).

    detectron2 ResNet (``stem.*``) goes through
    :func:`convert_resnet_state_dict`; Mask2Former's ``D2SwinTransformer``
    (``patch_embed.*``, ``layers.*``, ``norm{i}.*``) has the names of the
    original Swin code and goes through mmdet's ``swin_converter``, which also
    reorders the ``(4C)`` patch-merging channels from Swin's ``cat(x[0::2,
    0::2], x[1::2, 0::2], x[0::2, 1::2], x[1::2, 1::2])`` to the ``nn.Unfold``
    order of mmdet's ``PatchMerging``. Anything else is kept with the
    ``backbone.`` prefix (a strict load then reports it).
    """
    if any(k.startswith('stem.') for k in state_dict):
        return convert_resnet_state_dict(state_dict)
    if any(k.startswith('patch_embed.') for k in state_dict):
        return swin_converter(state_dict)
    return OrderedDict(('backbone.' + k, v) for k, v in state_dict.items())


def is_official_state_dict(state_dict: Mapping) -> bool:
    """Whether ``state_dict`` holds official (detectron2) Mask DINO weights."""
    return any(
        isinstance(k, str) and k.startswith(OFFICIAL_HEAD_PREFIX)
        for k in state_dict)


def official_weights(
        checkpoint: Mapping) -> Optional[Mapping[str, torch.Tensor]]:
    """The official weights in a loaded checkpoint, or None if it is not one.

    Accepts a detectron2 checkpoint (weights under ``model``) and the bare
    official state dict.
    """
    if is_official_state_dict(checkpoint):
        return checkpoint
    weights = checkpoint.get('model')
    if isinstance(weights, Mapping) and is_official_state_dict(weights):
        return weights
    return None


def convert_official_state_dict(
    state_dict: Mapping[str,
                        torch.Tensor]) -> 'OrderedDict[str, torch.Tensor]':
    """Convert a whole official state dict (``ckpt['model']``) to mmmaskdino
    keys.

    Returns:
        OrderedDict: ``backbone.*`` then ``panoptic_head.*`` tensors; aliases
        and ``criterion.*`` dropped; keys of no known part kept unchanged.
    """
    backbone = OrderedDict((k[len('backbone.'):], v)
                           for k, v in state_dict.items()
                           if k.startswith('backbone.'))
    out = convert_backbone_state_dict(backbone)
    out.update(convert_head_state_dict(state_dict))
    known = ('backbone.', *(src
                            for src, _, _ in PART_PREFIXES), *DROPPED_PREFIXES)
    out.update(
        (k, v) for k, v in state_dict.items() if not k.startswith(known))
    return out


def _shape(tensor: torch.Tensor) -> str:
    return 'x'.join(map(str, tensor.shape))


def check_state_dict_fits(state_dict: Mapping[str, torch.Tensor],
                          model_state: Mapping[str, torch.Tensor]) -> None:
    """Raise ``ValueError`` naming how a converted checkpoint and a model
    differ.

    Class count, feature levels, FFN widths, hidden size and query count are
    named with the config field to change; other shape differences are listed
    only when none of those explains them. Missing or unexpected keys are left
    to the strict load.

    Args:
        state_dict: Converted weights (:func:`convert_official_state_dict`).
        model_state: ``model.state_dict()`` of the model built from the config.
    """
    problems = []
    for key, what, field in FIT_CHECKS:
        if key in state_dict and key in model_state:
            ckpt, own = state_dict[key], model_state[key]
            if ckpt.shape[0] != own.shape[0]:
                problems.append(
                    f'checkpoint has {what.format(ckpt.shape[0])} '
                    f'({key[len("panoptic_head."):]} {_shape(ckpt)}) but the '
                    f'config has {what.format(own.shape[0])} ({field})')
    if not problems:
        problems = [
            f'{k}: checkpoint {_shape(v)}, model {_shape(model_state[k])}'
            for k, v in state_dict.items()
            if k in model_state and v.shape != model_state[k].shape
        ]
    if problems:
        raise ValueError('The checkpoint does not fit the config:\n  ' +
                         '\n  '.join(problems))


def skip_mismatched_class_tensors(state_dict: MutableMapping[str,
                                                             torch.Tensor],
                                  model: nn.Module,
                                  prefix: str = '') -> List[str]:
    """Keep the model's own class-dependent tensors where the checkpoint's
    differ in shape (fine-tuning to another class count).

    The checkpoint entries of :data:`CLASS_KEYS` whose shapes differ from the
    model's are replaced by the model's current tensors, so the load neither
    fails on a size mismatch nor reports them missing.

    Returns:
        list[str]: ``'name (checkpoint shape -> model shape)'`` per replaced
        key.
    """
    replaced = []
    params = dict(model.named_parameters())
    for key in CLASS_KEYS:
        full = prefix + key
        if full in state_dict and key in params and (state_dict[full].shape
                                                     != params[key].shape):
            name = key[len('panoptic_head.predictor.'):]
            replaced.append(f'{name} ({_shape(state_dict[full])} -> '
                            f'{_shape(params[key])})')
            state_dict[full] = params[key].detach()
    return replaced


def prepare_state_dict(state_dict: Dict,
                       model: nn.Module,
                       prefix: str = '') -> None:
    """Load-time hook of :class:`MaskDINO`: adapt ``state_dict`` in place.

    1. If the entries under ``prefix`` are an official checkpoint (see
       :func:`official_weights`), they are replaced by their conversion.
    2. Class-dependent tensors of another shape are replaced by the model's own
       (:func:`skip_mismatched_class_tensors`), with one log line.
    """
    local = {
        k[len(prefix):]: v
        for k, v in state_dict.items() if k.startswith(prefix)
    }
    weights = official_weights(local)
    if weights is not None:
        for key in local:
            del state_dict[prefix + key]
        converted = convert_official_state_dict(weights)
        state_dict.update((prefix + k, v) for k, v in converted.items())
        print_log(
            f'Converted an official Mask DINO (detectron2) checkpoint: '
            f'{len(weights)} tensors -> {len(converted)}',
            logger='current')
    replaced = skip_mismatched_class_tensors(state_dict, model, prefix)
    if replaced:
        print_log(
            'The checkpoint was trained for another class count: keeping this '
            'model\'s initial class-dependent tensors instead of ' +
            ', '.join(replaced),
            logger='current',
            level=logging.WARNING)
