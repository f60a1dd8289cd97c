# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
"""``tools/analysis_tools/ablations.py``: each variant really switches its
component, and the command trains, evaluates and reports on a tiny
budget."""
import json
import sys

import pytest
import torch
from mmdet.registry import MODELS
from mmdet.utils import register_all_modules

from tests.conftest import REPO_ROOT
from tests.test_models.utils import batch_for, head_loss
from tests.test_tools.e2e_utils import run_python

sys.path.insert(0, str(REPO_ROOT / 'tools' / 'analysis_tools'))
import ablations  # noqa: E402

register_all_modules()

BOX_TERMS = ('loss_bbox', 'loss_iou')
MASK_TERMS = ('loss_mask', 'loss_dice')


def _model(name: str):
    cfg = ablations.variant_config(name, iters=10, seed=0)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    return model.train()


def _losses(model) -> dict:
    torch.manual_seed(0)
    return head_loss(model, batch_for(model, num_objects=(2, 3)))


def _cost_types(model) -> set:
    costs = model.panoptic_head.criterion.assigner.match_costs
    return {type(c).__name__ for c in costs}


def test_shipped_variant_is_the_shipped_config():
    model = _model('shipped')
    assert _cost_types(model) == {
        'FocalLossCost', *ablations.BOX_COSTS, *ablations.MASK_COSTS
    }
    losses = _losses(model)
    assert all(losses['dn_' + k] > 0 for k in MASK_TERMS + BOX_TERMS)


def test_box_only_denoising_has_no_mask_term_in_the_dn_loss():
    losses = _losses(_model('box-only denoising'))
    assert not any(k.endswith(MASK_TERMS) for k in losses if 'dn_' in k)
    assert losses['dn_loss_cls'] > 0 and losses['dn_loss_bbox'] > 0
    assert losses['loss_mask'] > 0  # matching sets keep their mask terms


def test_learned_queries_are_in_the_state_dict():
    keys = _model('learned queries').state_dict().keys()
    assert 'panoptic_head.predictor.query_feat.weight' in keys
    assert 'panoptic_head.predictor.query_embed.weight' in keys
    assert not any('enc_output' in k for k in keys)


def test_mask_enhanced_anchors_are_on():
    predictor = _model('mask-enhanced anchors on').panoptic_head.predictor
    assert predictor.initialize_box_type == 'mask2box'


@pytest.mark.parametrize('name, dropped', [
    ('mask-only matching', ablations.BOX_COSTS),
    ('box-only matching', ablations.MASK_COSTS),
])
def test_hybrid_matching_ablations_drop_costs(name, dropped):
    types = _cost_types(_model(name))
    assert 'FocalLossCost' in types and not types & set(dropped)


@pytest.mark.parametrize('name, zero, kept', [
    ('detection only', MASK_TERMS, BOX_TERMS),
    ('segmentation only', BOX_TERMS, MASK_TERMS),
])
def test_single_task_training_zeroes_the_other_task(name, zero, kept):
    losses = _losses(_model(name))
    for key, value in losses.items():
        if key.endswith(zero):
            assert value == 0, key
    assert all(losses[k] > 0 for k in kept)


def test_ablation_command_on_a_tiny_budget(shapes_root, tmp_path):
    """Two variants, one seed, 2 iterations: the JSON, table and plot."""
    out = tmp_path / 'ablations'
    stdout = run_python('tools/analysis_tools/ablations.py', '--iters', '2',
                        '--seeds', '0', '--only', 'shipped',
                        'box-only denoising', '--work-dir', str(out),
                        '--data-root', f'{shapes_root}/')
    results = json.loads((out / 'ablations.json').read_text())
    assert results['iters'] == 2
    assert set(results['results']) == {'shipped', 'box-only denoising'}
    for runs in results['results'].values():
        (run, ) = runs
        assert run['seed'] == 0 and run['seconds'] > 0
        assert 0 <= run['coco/segm_mAP'] <= 1
        assert 0 <= run['coco/bbox_mAP'] <= 1
    table = (out / 'ablations.md').read_text()
    assert '| shipped | 1 |' in table and '| box-only denoising | 1 |' in table
    assert 'segm AP should go down' in table
    assert table.strip() in stdout
    assert (out / 'ablations.png').stat().st_size > 1000
