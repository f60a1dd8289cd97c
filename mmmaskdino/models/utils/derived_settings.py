# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
"""Settings that follow from one switch of the config, filled in once.

The class counts are written in ``panoptic_head`` only, and whether the
class head has a "no object" logit (the official ``SEMANTIC_CE_LOSS``)
follows from ``criterion.loss_cls.use_sigmoid`` only. :class:`MaskDINOHead`
and :class:`MaskDINO` fill them into the predictor, the criterion and the
fusion head with :func:`fill_derived`, so that a config cannot contradict
itself.
"""
from typing import Any, Mapping

from mmdet.registry import MODELS
from mmengine.config import ConfigDict


def uses_softmax_classes(criterion: Mapping) -> bool:
    """Whether the class loss is a softmax cross-entropy with a "no object"
    class (``C + 1`` class logits, semantic models) rather than the sigmoid
    focal loss (``C`` logits).

    Args:
        criterion (Mapping): Config of :class:`MaskDINOLoss`.
    """
    loss_cls = criterion.get('loss_cls')
    if loss_cls is None:  # MaskDINOLoss's default: sigmoid focal loss
        return False
    return not MODELS.build(loss_cls).use_sigmoid


def fill_derived(cfg: Mapping, source: str, **values: Any) -> ConfigDict:
    """``cfg`` with ``values`` filled in.

    Args:
        cfg (Mapping): A module config.
        source (str): Where the values come from, for the error message.
        **values: The derived settings.

    Returns:
        ConfigDict: A copy of ``cfg`` with ``values`` set.

    Raises:
        ValueError: If ``cfg`` already sets one of them to another value.
    """
    for key, value in values.items():
        if key in cfg and cfg[key] != value:
            name = cfg.get('type', 'the config')
            raise ValueError(
                f'{name} sets {key}={cfg[key]!r}, but {source} gives '
                f'{key}={value!r}: remove {key} from the config, it is '
                f'filled in from {source}')
    return ConfigDict(cfg, **values)
