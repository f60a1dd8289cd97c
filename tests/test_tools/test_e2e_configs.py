# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
"""Every shipped config, end to end, the way a user runs it.

For each config under ``configs/maskdino``: ``tools/train.py`` for 2
iterations with a validation at the end, then ``tools/test.py`` on the
checkpoint with ``--out``, both as subprocesses, on bundled data in the
config's real on-disk format (:mod:`mmmaskdino.datasets.bundled_formats`, or
the shapes dataset for the ``*_shapes*`` configs) found through
``--data-root``. Only the model is shrunk (``tests/test_tools/e2e_utils.py``);
datasets, pipelines, batch augments and metrics are the shipped ones, which
:func:`test_tiny_config_keeps_data_and_metrics` checks.
"""
import json
import math
import pickle
from pathlib import Path

import pytest
from mmengine.config import Config

from mmmaskdino.datasets.bundled_formats import FORMAT_DIRS
from mmmaskdino.utils.tool_utils import redirect_data_root
from tests.conftest import BUNDLED_VAL, SHAPES_NUM_VAL
from tests.test_tools.e2e_utils import (REPO, TRAIN_ITERS, run_python,
                                        write_tiny_config)

CONFIGS = sorted((REPO / 'configs/maskdino').glob('*.py'))
DATA_KEYS = ('train_dataloader', 'val_dataloader', 'test_dataloader',
             'val_evaluator', 'test_evaluator')


def data_format(config: Path) -> str:
    """Which bundled dataset a config reads."""
    name = config.stem
    for key in ('shapes', 'custom', 'ade20k', 'cityscapes', 'coco'):
        if key in name:
            return key
    raise AssertionError(f'no bundled data for {name}')


def data_root_of(config: Path, bundled_root: Path, shapes_root: Path) -> Path:
    kind = data_format(config)
    if kind == 'shapes':
        return shapes_root
    return bundled_root / FORMAT_DIRS[kind]


def expected_metric_keys(cfg: Config) -> set:
    """The metric names the config's evaluators report."""
    evaluators = cfg.test_evaluator
    if isinstance(evaluators, dict):
        evaluators = [evaluators]
    keys = set()
    for evaluator in evaluators:
        if evaluator.type == 'CocoMetric':
            metrics = evaluator.get('metric', 'bbox')
            metrics = [metrics] if isinstance(metrics, str) else metrics
            keys |= {f'coco/{m}_mAP' for m in metrics}
        elif evaluator.type == 'CocoPanopticMetric':
            keys |= {
                'coco_panoptic/PQ', 'coco_panoptic/SQ', 'coco_panoptic/RQ'
            }
        elif evaluator.type == 'SemSegMetric':
            keys |= {'mIoU'}
        else:
            raise AssertionError(f'unexpected evaluator {evaluator.type}')
    return keys


def scalars(work_dir: Path) -> list:
    """The records of the run's ``vis_data/scalars.json``."""
    (path, ) = work_dir.glob('*/vis_data/scalars.json')
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_every_config_is_covered():
    assert len(CONFIGS) == 18  # 9 full-size, 4 custom templates, 5 shapes
    assert {data_format(c)
            for c in CONFIGS
            } == {'shapes', 'custom', 'ade20k', 'cityscapes', 'coco'}


@pytest.mark.parametrize('config', CONFIGS, ids=lambda p: p.stem)
def test_tiny_config_keeps_data_and_metrics(config, tmp_path):
    """The derived config changes the model and schedule only."""
    shipped = Config.fromfile(config)
    tiny = Config.fromfile(write_tiny_config(config, tmp_path))
    redirect_data_root(shipped, '/elsewhere')
    redirect_data_root(tiny, '/elsewhere')
    for key in DATA_KEYS:
        assert tiny[key] == shipped[key], key
    assert tiny.model.data_preprocessor == shipped.model.data_preprocessor
    assert tiny.model.test_cfg == shipped.model.test_cfg
    assert tiny.model.panoptic_head.num_things_classes == (
        shipped.model.panoptic_head.num_things_classes)
    assert tiny.model.backbone.depth == 18
    assert tiny.train_cfg.max_iters == TRAIN_ITERS


@pytest.mark.parametrize('config', CONFIGS, ids=lambda p: p.stem)
def test_config_trains_and_tests_end_to_end(config, tmp_path, bundled_root,
                                            shapes_root):
    tiny = write_tiny_config(config, tmp_path)
    data_root = str(data_root_of(config, bundled_root, shapes_root)) + '/'
    work_dir = tmp_path / 'work'
    run_python('tools/train.py', str(tiny), '--work-dir', str(work_dir),
               '--data-root', data_root)
    records = scalars(work_dir)
    losses = [r for r in records if 'loss' in r]
    assert [r['iter'] for r in losses] == list(range(1, TRAIN_ITERS + 1))
    assert all(math.isfinite(r['loss']) and r['loss'] > 0 for r in losses)
    keys = expected_metric_keys(Config.fromfile(tiny))
    (val, ) = [r for r in records if keys & set(r)]
    assert keys <= set(val)
    assert all(0 <= val[k] <= 100 for k in keys)

    print(f'E2E {config.stem}: dataset '
          f'{Config.fromfile(tiny).train_dataloader.dataset.type}, loss '
          f'after {TRAIN_ITERS} iterations {losses[-1]["loss"]:.4f}, ' +
          ', '.join(f'{k}={val[k]}' for k in sorted(keys)))
    checkpoint = work_dir / f'iter_{TRAIN_ITERS}.pth'
    out = tmp_path / 'results.pkl'
    test_dir = tmp_path / 'test'
    run_python('tools/test.py', str(tiny), str(checkpoint), '--work-dir',
               str(test_dir), '--data-root', data_root, '--out', str(out))
    test_metrics = json.loads(next(test_dir.glob('*/*.json')).read_text())
    assert keys <= set(test_metrics)
    for key in keys:  # the same weights on the same data
        assert test_metrics[key] == pytest.approx(val[key], abs=1e-6)
    with open(out, 'rb') as f:
        results = pickle.load(f)
    assert len(results) == (
        SHAPES_NUM_VAL if data_format(config) == 'shapes' else BUNDLED_VAL)
    for result in results:
        assert 'gt_instances' not in result
        if 'pred_instances' in result and 'masks' in result['pred_instances']:
            masks = result['pred_instances']['masks']
            assert all(isinstance(m['counts'], (str, bytes)) for m in masks)
