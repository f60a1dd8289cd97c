# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
"""Training-loss parity with the official implementation.

``../shared/parity/train_{instance,panoptic,semantic}.pt`` hold the official
weighted loss terms, Hungarian matchings, denoising layout and train-mode
predictions for small random-weight models with fixed GT (the deterministic
cases: denoising noise 0 and ``torch.rand`` replaced by the closed-form
``hash-rand-v1``). The model is built from our configs and loaded from the
official weights; the fixture's backbone maps go through
``MaskDINOHead.loss``. The one allowed deviation is GIoU's epsilon
convention (mmdet's ``bbox_overlaps`` clamps the union and the enclosing area
at 1e-6, the official code adds 1e-6): GIoU terms get the bound
``weight * 2e-6 / min GT box area``.
"""
import math

import numpy as np
import pytest
import torch
from mmdet.structures import DetDataSample
from mmdet.structures.bbox import HorizontalBoxes
from mmdet.structures.mask import BitmapMasks
from mmengine.structures import InstanceData

from tests.conftest import load_parity_fixture
from tests.test_models.test_detectors.test_parity import _loaded_model

DETERMINISTIC = ('two_images', 'empty_image', 'no_gt')
M32 = np.uint64(0xFFFFFFFF)


def fmix32(x):
    x = np.asarray(x, dtype=np.uint64) & M32
    x ^= x >> np.uint64(16)
    x = (x * np.uint64(0x85EBCA6B)) & M32
    x ^= x >> np.uint64(13)
    x = (x * np.uint64(0xC2B2AE35)) & M32
    return x ^ (x >> np.uint64(16))


def hash_rand(*size, **kwargs) -> torch.Tensor:
    """``hash-rand-v1`` (TRAINING.md section 3): values depend only on the
    trailing shape; every index of a leading dimension gets the same row."""
    if len(size) == 1 and isinstance(size[0], (tuple, list, torch.Size)):
        size = tuple(size[0])
    size = tuple(int(s) for s in size)
    tail = size[1:] if len(size) >= 2 else size
    salt = fmix32(len(tail))
    for d in tail:
        salt = fmix32(salt ^ np.uint64(d))
    j = np.arange(math.prod(tail), dtype=np.uint64)
    h = fmix32((j * np.uint64(0x9E3779B9) + salt) & M32)
    row = torch.from_numpy(((h >> np.uint64(8)).astype(np.float64) /
                            2.0**24).astype(np.float32)).reshape(tail)
    out = row.expand(size[0], *tail).contiguous() if len(size) >= 2 else row
    return out.to(
        device=kwargs.get('device'),
        dtype=kwargs.get('dtype') or torch.float32)


def test_hash_rand_reproduces_the_recipe_vectors():
    fx = load_parity_fixture('train_instance')
    for vector in fx['rand_recipe']['test_vectors']:
        row = hash_rand(*vector['size'])
        row = row[0] if len(vector['size']) >= 2 else row
        torch.testing.assert_close(
            row.flatten()[:6], vector['first_values'].float(), rtol=0, atol=0)
        assert row.double().sum().item() == pytest.approx(
            vector['row_sum_float64'], abs=1e-9)


def samples_of(case: dict, size) -> list:
    """Data samples with the case's GT (stuff segments as ordinary GT)."""
    samples = []
    for target in case['targets']:
        meta = dict(
            img_shape=size,
            pad_shape=size,
            batch_input_shape=size,
            ori_shape=size)
        masks = target['masks'].numpy().astype(np.uint8)
        sample = DetDataSample(metainfo=meta)
        sample.gt_instances = InstanceData(
            labels=target['labels'],
            bboxes=HorizontalBoxes(target['boxes_xyxy']),
            masks=BitmapMasks(masks, *size))
        samples.append(sample)
    return samples


def giou_allowance(fx: dict, case: dict, name: str) -> float:
    """TRAINING.md section 6: weight * 2e-6 / smallest normalised GT area."""
    boxes = [t['boxes'] for t in case['targets'] if len(t['boxes'])]
    if not boxes:
        return 0.0
    areas = torch.cat(boxes)[:, 2:].prod(1)
    return fx['loss_weights'][name] * 2e-6 / areas.min().item()


SET_NAMES = {'final output': 'final', 'interm output': 'interm'}


def run_case(fx: dict, case_name: str, tmp_path, monkeypatch):
    """Our losses, matchings, DN layout and predictions for one case."""
    model = _loaded_model(fx, tmp_path).train()
    head = model.panoptic_head
    head.predictor.denoising.noise_scale = 0.0
    case = fx['cases'][case_name]
    size = tuple(fx['padded_size'])
    record = dict(matching={}, dn_meta=None, outputs=None)
    criterion = head.criterion
    match, forward = criterion._match, criterion.forward

    def recording_match(preds, gts, name):
        result = match(preds, gts, name)
        key = SET_NAMES.get(name, name.replace('aux output ', 'aux_'))
        record['matching'][key] = result
        return result

    def recording_forward(outputs, dn_outputs, dn_meta, gts):
        record.update(
            outputs=outputs,
            dn_outputs=dn_outputs,
            dn_meta=dn_meta,
            targets=gts)
        return forward(outputs, dn_outputs, dn_meta, gts)

    monkeypatch.setattr(criterion, '_match', recording_match)
    monkeypatch.setattr(criterion, 'forward', recording_forward)
    monkeypatch.setattr(torch, 'rand', hash_rand)
    feats = [fx['inputs'][k] for k in ('res2', 'res3', 'res4', 'res5')]
    with torch.no_grad():
        losses = head.loss(feats, samples_of(case, size))
    return case, losses, record


@pytest.mark.parametrize('case_name', DETERMINISTIC)
@pytest.mark.parametrize('variant', ['instance', 'panoptic', 'semantic'])
def test_loss_terms_matching_and_dn_layout(variant, case_name, tmp_path,
                                           monkeypatch):
    fx = load_parity_fixture(f'train_{variant}')
    torch.set_num_threads(1)
    case, losses, record = run_case(fx, case_name, tmp_path, monkeypatch)

    # targets: labels and the official normalised boxes
    for ours, target in zip(record['targets'], case['targets']):
        assert torch.equal(ours.labels, target['labels'])
        torch.testing.assert_close(
            ours.bboxes, target['boxes'], rtol=0, atol=1e-7)

    # every term, and no other
    expected = {fx['loss_name_map'][k]: v for k, v in case['losses'].items()}
    assert set(losses) == set(expected)
    official_names = {v: k for k, v in fx['loss_name_map'].items()}
    for name, value in expected.items():
        tol = 1e-5 + 1e-4 * abs(value)
        if name.endswith('loss_iou'):
            tol += giou_allowance(fx, case, official_names[name])
        assert losses[name].item() == pytest.approx(value, abs=tol), name

    # Hungarian matching of every matched set, per image
    assert set(record['matching']) == set(case['matching'])
    for set_name, per_image in case['matching'].items():
        batch_idx, pred_idx, gt_idx = record['matching'][set_name]
        for b, pairs in enumerate(per_image):
            mine = batch_idx == b
            assert torch.equal(pred_idx[mine], pairs['pred']), set_name
            assert torch.equal(gt_idx[mine], pairs['gt']), set_name

    # denoising layout
    dn = case['dn']
    if dn is None:
        assert record['dn_meta'] is None
    else:
        meta = record['dn_meta']
        assert (meta['num_groups'], meta['pad_size'],
                meta['single_pad']) == (dn['num_groups'], dn['pad_size'],
                                        dn['single_pad'])
        batch_idx, pred_idx, gt_idx = criterion_dn_assignment(record)
        for b, pairs in enumerate(dn['assignment']):
            mine = batch_idx == b
            assert torch.equal(pred_idx[mine], pairs['pred'])
            assert torch.equal(gt_idx[mine], pairs['gt'])

    # train-mode predictions the criterion received
    outputs = case['outputs']
    for ours, key in ((record['outputs']['pred_logits'], 'pred_logits'),
                      (record['outputs']['pred_boxes'], 'pred_boxes')):
        official = outputs[key]
        torch.testing.assert_close(
            ours,
            official,
            rtol=0,
            atol=1e-4 + 1e-4 * official.abs().max().item())
    if dn is not None:
        official = case['dn_outputs']['pred_logits']
        torch.testing.assert_close(
            record['dn_outputs']['pred_logits'],
            official,
            rtol=0,
            atol=1e-4 + 1e-4 * official.abs().max().item())


def criterion_dn_assignment(record: dict):
    """The DN pairs our criterion supervises (no matching)."""
    from mmmaskdino.models.losses.maskdino_loss import MaskDINOLoss
    return MaskDINOLoss._dn_assignment(record['targets'], record['dn_meta'])
