# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
"""The override helper of the end-to-end config tests (and how they run tools).

:func:`write_tiny_config` derives, from a shipped config, a config that
differs in the model's size and the schedule's length only: a ResNet-18
backbone (its ``norm_cfg`` kept when the shipped backbone is a ResNet),
hidden size 32, one encoder and two decoder layers, 20 queries, 10 denoising
queries, 256 sampled mask points, 2 training iterations with a validation at
the end and a log line every iteration. Datasets, pipelines, batch augments,
data preprocessor settings and evaluators stay as shipped; the data root is
redirected by the tools' ``--data-root`` option.
"""
import subprocess
import sys
from pathlib import Path
from typing import Dict, Union

from mmengine.config import Config

REPO = Path(__file__).resolve().parents[2]

TRAIN_ITERS = 2
RESNET18_CHANNELS = [64, 128, 256, 512]


def tiny_model_overrides(cfg: Config) -> Dict:
    """Model overrides (mmengine merge syntax) that shrink ``cfg.model``."""
    backbone = cfg.model.backbone
    norm_cfg = (
        backbone.norm_cfg if backbone.type == 'ResNet' else dict(
            type='BN', requires_grad=True))
    predictor = dict(
        hidden_dim=32, num_queries=20, ffn_dim=64, num_layers=2, mask_dim=32)
    if cfg.model.panoptic_head.predictor.get('denoising'):
        predictor['denoising'] = dict(dn_num=10)
    return dict(
        backbone=dict(
            _delete_=True,
            type='ResNet',
            depth=18,
            num_stages=4,
            out_indices=(0, 1, 2, 3),
            frozen_stages=-1,
            norm_cfg=dict(norm_cfg),
            norm_eval=backbone.get('norm_eval', False),
            style='pytorch',
            init_cfg=None),
        panoptic_head=dict(
            pixel_decoder=dict(
                in_channels=RESNET18_CHANNELS,
                feat_channels=32,
                mask_dim=32,
                num_encoder_layers=1,
                ffn_channels=64),
            predictor=predictor,
            criterion=dict(num_points=256)))


def write_tiny_config(shipped: Union[str, Path], out_dir: Path) -> Path:
    """Write ``<out_dir>/<name>.py``: ``shipped`` with a tiny model and a
    2-iteration schedule (see the module docstring). ``load_from`` is
    cleared: the templates' pretrained weights are not downloaded."""
    shipped = Path(shipped).resolve()
    cfg = Config.fromfile(shipped)
    text = '\n'.join([
        f'_base_ = [{str(shipped)!r}]',
        f'model = {tiny_model_overrides(cfg)!r}',
        'train_cfg = ' +
        repr(dict(max_iters=TRAIN_ITERS, val_interval=TRAIN_ITERS)),
        'default_hooks = ' + repr(dict(logger=dict(interval=1))),
        'load_from = None',
        '',
    ])
    out = out_dir / shipped.name
    out.write_text(text)
    return out


def run_python(*args: str, timeout: float = 900) -> str:
    """``python ARGS`` from the repository root, as a user runs a tool;
    fails with the output's tail, returns stdout + stderr."""
    proc = subprocess.run([sys.executable, *args],
                          cwd=REPO,
                          capture_output=True,
                          text=True,
                          timeout=timeout)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, f'{" ".join(args)} failed:\n{output[-6000:]}'
    return output
