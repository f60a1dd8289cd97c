# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
"""``tools/analysis_tools/convergence.py``: the three models really share
the hidden size, each seed is its own run, and the command trains,
evaluates and reports on a tiny budget."""
import json
import sys

import pytest
import torch
from mmdet.registry import MODELS
from mmdet.utils import register_all_modules

from tests.conftest import REPO_ROOT
from tests.test_tools.e2e_utils import run_python

sys.path.insert(0, str(REPO_ROOT / 'tools' / 'analysis_tools'))
import convergence  # noqa: E402

register_all_modules()


def _hidden_sizes(model) -> set:
    """Sizes of every LayerNorm of the transformer parts."""
    return {
        m.normalized_shape[0]
        for name, m in model.named_modules()
        if isinstance(m, torch.nn.LayerNorm)
    }


@pytest.mark.parametrize('name', list(convergence.BUILDERS))
def test_models_share_hidden_size_256(name):
    cfg = convergence.study_config(name, iters=10, evals=2, hidden=256)
    model = MODELS.build(cfg.model)
    assert _hidden_sizes(model) == {256}
    ffn_widths = {
        m.out_features
        for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)
        and 'ffn' in n and m.out_features not in (256, )
    }
    assert ffn_widths == {1024}, ffn_widths
    assert cfg.train_cfg.max_iters == 10 and cfg.train_cfg.val_interval == 5


def test_hidden_64_is_the_shipped_tiny_config():
    cfg = convergence.study_config('maskdino', iters=10, evals=2, hidden=64)
    model = MODELS.build(cfg.model)
    assert _hidden_sizes(model) == {64}
    # DINO cannot shrink: it keeps 256 whatever the others use
    dino = MODELS.build(
        convergence.study_config('dino', iters=10, evals=2, hidden=64).model)
    assert _hidden_sizes(dino) == {256}


def test_summary_is_mean_and_half_spread_over_seeds():
    results = {
        'maskdino': {
            0: {
                5: {
                    'coco/segm_mAP': 0.30,
                    'coco/bbox_mAP': 0.20
                }
            },
            1: {
                5: {
                    'coco/segm_mAP': 0.40,
                    'coco/bbox_mAP': 0.10
                }
            }
        }
    }
    summary = convergence.summarise(results)
    mean, low, high, n = summary['maskdino'][5]['coco/segm_mAP']
    assert (round(mean, 6), low, high, n) == (0.35, 0.30, 0.40, 2)
    table = convergence.markdown_table(summary, {'maskdino': 0.5})
    assert '| maskdino | segm | 2 | 35.0 ± 5.0 | 0.500 |' in table
    assert '| maskdino | bbox | 2 | 15.0 ± 5.0 | 0.500 |' in table


def test_convergence_command_on_a_tiny_budget(shapes_root, tmp_path):
    """Mask DINO with two seeds run at once, 2 iterations, one evaluation,
    then timed: the JSON, table and plot."""
    out = tmp_path / 'convergence'
    stdout = run_python('tools/analysis_tools/convergence.py', '--iters', '2',
                        '--evals', '1', '--hidden', '64', '--seeds', '0', '1',
                        '--jobs', '2', '--time-iters', '1', '--only',
                        'maskdino', '--work-dir', str(out), '--data-root',
                        f'{shapes_root}/')
    report = json.loads((out / 'convergence.json').read_text())
    assert (report['iters'], report['hidden'], report['seeds']) == (2, 64,
                                                                    [0, 1])
    seeds = report['results']['maskdino']
    assert set(seeds) == {'0', '1'}
    for seed, points in seeds.items():
        config = (out / 'maskdino' / f'seed{seed}' / 'config.py').read_text()
        assert f'seed={seed}' in config
        (metrics, ) = points.values()
        assert 0 <= metrics['coco/segm_mAP'] <= 1
    timing = report['timings']['maskdino']
    assert timing['seconds_per_iter'] > 0 and len(timing['load_before']) == 3
    table = (out / 'convergence.md').read_text()
    assert '| maskdino | segm | 2 |' in table
    assert table.strip() in stdout
    assert (out / 'convergence.png').stat().st_size > 1000
