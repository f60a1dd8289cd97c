# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
"""Tests of MaskDINOFusionHead against the official post-processing."""
import itertools

import numpy as np
import pytest
import torch
from mmdet.evaluation.functional import INSTANCE_OFFSET
from mmdet.registry import MODELS

from mmmaskdino.models.seg_heads.maskdino_fusion_head import MaskDINOFusionHead
from tests.conftest import load_parity_fixture
from tests.parity_utils import (assert_instances_match, assert_panoptic_match,
                                assert_semantic_match, fixture_metas,
                                resized_mask_logits)

PANOPTIC_CFG = dict(
    panoptic_on=True,
    instance_on=True,
    semantic_on=True,
    object_mask_thr=0.25,
    iou_thr=0.8,
    max_per_image=100,
    pano_temperature=0.06,
    pano_transform_eval=True)
INSTANCE_CFG = dict(PANOPTIC_CFG, panoptic_on=False, semantic_on=False)
SEMANTIC_CFG = dict(
    PANOPTIC_CFG, panoptic_on=False, instance_on=False, semantic_ce=True)
HEAD_SETTINGS = dict(
    instance=(7, 0, INSTANCE_CFG),
    panoptic=(6, 3, PANOPTIC_CFG),
    semantic=(0, 5, SEMANTIC_CFG))


def _head(variant: str) -> MaskDINOFusionHead:
    things, stuff, cfg = HEAD_SETTINGS[variant]
    return MODELS.build(
        dict(
            type='MaskDINOFusionHead',
            num_things_classes=things,
            num_stuff_classes=stuff,
            test_cfg=cfg))


def _predict(variant: str):
    fx = load_parity_fixture(variant)
    out = fx['outputs']
    with torch.no_grad():
        results = _head(variant).predict(out['pred_logits'], out['pred_masks'],
                                         out['pred_boxes'], fixture_metas(fx))
    return fx, results


def test_build_from_registry():
    head = _head('panoptic')
    assert isinstance(head, MaskDINOFusionHead)
    assert head.num_classes == 9
    assert head.loss() == {}


@pytest.mark.parametrize('variant', ['instance', 'panoptic'])
def test_instance_parity(variant):
    fx, results = _predict(variant)
    num_classes = fx['outputs']['pred_logits'].shape[-1]
    for expected, result in zip(fx['postprocess'], results):
        assert_instances_match(expected, result['ins_results'], num_classes)


def test_instance_thing_filter():
    fx, results = _predict('panoptic')
    for result in results:
        ins = result['ins_results']
        assert (ins.labels < 6).all()
        assert ins.bboxes.shape == (len(ins), 4)
    assert [len(r['ins_results']) for r in results] == [58, 76]


def test_panoptic_parity():
    fx = load_parity_fixture('panoptic')
    head = _head('panoptic')
    for i, expected in enumerate(fx['postprocess']):
        masks = resized_mask_logits(head, fx['outputs']['pred_masks'][i],
                                    fixture_metas(fx)[i])
        seg, info = head.panoptic_inference(fx['outputs']['pred_logits'][i],
                                            masks)
        assert seg.dtype == torch.int32
        assert_panoptic_match(expected, seg, info)


def test_panoptic_encoding_decodes_to_official_segments():
    fx, results = _predict('panoptic')
    num_classes = 9
    for expected, result in zip(fx['postprocess'], results):
        pan = result['pan_results'].sem_seg
        assert pan.shape == (1, *expected['original_size'])
        assert pan.dtype == torch.int32
        pan = pan[0]
        official = expected['panoptic_seg']
        certain = torch.ones_like(official, dtype=torch.bool)
        ys, xs = expected['panoptic_uncertain_pixels'].unbind(-1)
        certain[ys, xs] = False

        assert (pan[(official == 0) & certain] == num_classes).all()
        # decode as CocoPanopticMetric does: one segment per unique value
        codes = [
            c for c in pan.unique().tolist()
            if c % INSTANCE_OFFSET != num_classes
        ]
        assert len(codes) == len(expected['segments_info'])
        for seg in expected['segments_info']:
            values = pan[(official == seg['id']) & certain].unique().tolist()
            assert len(values) == 1
            code = values[0]
            assert code % INSTANCE_OFFSET == seg['category_id']
            assert (code // INSTANCE_OFFSET > 0) == seg['isthing']
            if seg['isthing']:
                assert code // INSTANCE_OFFSET == seg['id']


def test_panoptic_synthetic():
    fx = load_parity_fixture('panoptic')
    syn = fx['postprocess_synthetic']
    head = _head('panoptic')
    seg, info = head.panoptic_inference(syn['mask_cls'], syn['mask_pred'])
    assert info == syn['segments_info']
    assert torch.equal(seg, syn['panoptic_seg'])
    encoded = head.encode_panoptic(seg, info)
    assert (encoded[seg == 0] == 9).all()
    assert (encoded[seg == 1] == 1 + INSTANCE_OFFSET).all()
    assert (encoded[seg == 2] == 7).all()
    assert (encoded[seg == 3] == 5 + 3 * INSTANCE_OFFSET).all()


@pytest.mark.parametrize('variant', ['panoptic', 'semantic'])
def test_semantic_parity(variant):
    fx, results = _predict(variant)
    for expected, result in zip(fx['postprocess'], results):
        sem = result['sem_results']
        assert_semantic_match(expected, sem)
        assert torch.equal(sem.sem_seg[0], sem.seg_logits.argmax(0))


def test_focus_on_box_uses_class_scores():
    fx = load_parity_fixture('instance')
    head = MaskDINOFusionHead(
        num_things_classes=7,
        num_stuff_classes=0,
        test_cfg=dict(INSTANCE_CFG, focus_on_box=True, max_per_image=10))
    out = fx['outputs']
    result = head.predict(out['pred_logits'][:1], out['pred_masks'][:1],
                          out['pred_boxes'][:1],
                          fixture_metas(fx)[:1])[0]
    ins = result['ins_results']
    expected = out['pred_logits'][0].sigmoid().flatten().topk(10).values
    torch.testing.assert_close(ins.scores, expected, rtol=0, atol=0)
    assert len(ins) == 10


@pytest.mark.parametrize(
    'instance_on,panoptic_on,semantic_on,rescale',
    [(*flags, rescale) for flags in itertools.product([False, True], repeat=3)
     for rescale in (True, False)])
def test_task_keys_and_shapes(instance_on, panoptic_on, semantic_on, rescale):
    torch.manual_seed(0)
    bs, num_queries, things, stuff = 2, 6, 3, 2
    head = MaskDINOFusionHead(
        num_things_classes=things,
        num_stuff_classes=stuff,
        test_cfg=dict(
            instance_on=instance_on,
            panoptic_on=panoptic_on,
            semantic_on=semantic_on,
            max_per_image=8))
    metas = [
        dict(
            batch_input_shape=(64, 96), img_shape=(50, 96),
            ori_shape=(25, 48)),
        dict(
            batch_input_shape=(64, 96), img_shape=(64, 70),
            ori_shape=(90, 98)),
    ]
    results = head.predict(
        torch.randn(bs, num_queries, things + stuff) * 3,
        torch.randn(bs, num_queries, 16, 24) * 3,
        torch.rand(bs, num_queries, 4),
        metas,
        rescale=rescale)

    expected_keys = {
        key
        for key, on in [('ins_results',
                         instance_on), (
                             'pan_results',
                             panoptic_on), ('sem_results', semantic_on)] if on
    }
    assert len(results) == bs
    for meta, result in zip(metas, results):
        assert set(result) == expected_keys
        h, w = meta['ori_shape'] if rescale else meta['img_shape']
        if instance_on:
            ins = result['ins_results']
            assert len(ins) <= 8
            assert ins.masks.shape == (len(ins), h, w)
            assert ins.bboxes.shape == (len(ins), 4)
            assert (ins.labels < things).all()
        if panoptic_on:
            pan = result['pan_results'].sem_seg
            assert pan.shape == (1, h, w)
            assert ((pan % INSTANCE_OFFSET) <= things + stuff).all()
        if semantic_on:
            sem = result['sem_results']
            assert sem.sem_seg.shape == (1, h, w)
            assert sem.seg_logits.shape == (things + stuff, h, w)


def test_box_rescale_formula():
    boxes = torch.tensor([[0.5, 0.25, 0.2, 0.1]])
    out = MaskDINOFusionHead.rescale_boxes(boxes, (128, 160), (107, 160),
                                           (50, 75))
    scale_h = 128 / 107 * 50
    expected = torch.tensor(
        [[0.4 * 75, 0.2 * scale_h, 0.6 * 75, 0.3 * scale_h]])
    torch.testing.assert_close(out, expected, rtol=1e-6, atol=1e-5)
    assert np.isclose(scale_h, 59.813, atol=1e-3)


def _random_outputs(num_queries: int, num_classes: int):
    torch.manual_seed(0)
    metas = [
        dict(
            batch_input_shape=(64, 96),
            img_shape=(50, 96),
            ori_shape=(75, 144)),
        dict(
            batch_input_shape=(64, 96), img_shape=(64, 70),
            ori_shape=(64, 70)),
    ]
    return (torch.randn(2, num_queries, num_classes) * 2 - 2,
            torch.randn(2, num_queries, 16, 24) * 4,
            torch.rand(2, num_queries, 4), metas)


@pytest.mark.parametrize('semantic_on', [False, True])
def test_only_needed_masks_are_resized_with_identical_results(
        monkeypatch, semantic_on):
    """Instance and panoptic results from the resized masks of the needed
    queries only (taken from the semantic map's chunks when it is on) equal
    those computed from all Q resized masks."""
    import mmmaskdino.models.seg_heads.maskdino_fusion_head as fusion
    monkeypatch.setattr(fusion, 'SEMANTIC_CHUNK', 16)
    num_queries, things, stuff = 40, 4, 3
    cls, masks, boxes, metas = _random_outputs(num_queries, things + stuff)
    head = MaskDINOFusionHead(
        num_things_classes=things,
        num_stuff_classes=stuff,
        test_cfg=dict(
            PANOPTIC_CFG,
            semantic_on=semantic_on,
            object_mask_thr=0.85,
            iou_thr=0.2,
            max_per_image=10))
    resized_rows = []
    resize_masks = MaskDINOFusionHead.resize_masks
    monkeypatch.setattr(
        MaskDINOFusionHead, 'resize_masks',
        lambda self, maps, *a: resized_rows.append(len(maps)) or resize_masks(
            self, maps, *a))
    with torch.no_grad():
        results = head.predict(cls, masks, boxes, metas)
    needed = [len(head.needed_queries(c)) for c in cls]
    assert all(0 < n < num_queries for n in needed)
    assert resized_rows == ([16, 16, 8] * 2 if semantic_on else needed)
    for i, (result, meta) in enumerate(zip(results, metas)):
        shapes = (meta['batch_input_shape'], meta['img_shape'],
                  meta['ori_shape'])
        all_masks = head.resize_masks(masks[i], *shapes, True)
        pan = head.panoptic_postprocess(cls[i], all_masks).sem_seg
        ins = head.instance_postprocess(cls[i], all_masks,
                                        head.rescale_boxes(boxes[i], *shapes))
        assert len(pan.unique()) > 2
        assert torch.equal(result['pan_results'].sem_seg, pan)
        assert 0 < len(ins) <= 10
        for key in ('labels', 'scores', 'bboxes', 'masks', 'query_indices'):
            assert torch.equal(result['ins_results'].get(key),
                               ins.get(key)), key


@pytest.mark.parametrize('resize_first', [True, False])
def test_semantic_map_summed_over_query_chunks(monkeypatch, resize_first):
    """The semantic map accumulated over chunks of queries equals
    :meth:`semantic_inference` over all queries at once."""
    import mmmaskdino.models.seg_heads.maskdino_fusion_head as fusion
    monkeypatch.setattr(fusion, 'SEMANTIC_CHUNK', 7)
    cls, masks, boxes, metas = _random_outputs(30, 6)  # 5 classes + 1
    head = MaskDINOFusionHead(
        num_things_classes=0,
        num_stuff_classes=5,
        test_cfg=dict(
            SEMANTIC_CFG, sem_seg_postprocess_before_inference=resize_first))
    with torch.no_grad():
        results = head.predict(cls, masks, boxes, metas)
    for i, (result, meta) in enumerate(zip(results, metas)):
        shapes = (meta['batch_input_shape'], meta['img_shape'],
                  meta['ori_shape'])
        all_masks = head.resize_masks(masks[i], *shapes, resize_first)
        expected = head.semantic_inference(cls[i], all_masks)
        if not resize_first:
            expected = head.crop_and_resize(expected, *shapes[1:])
        sem = result['sem_results']
        assert sem.seg_logits.shape == (5, *meta['ori_shape'])
        torch.testing.assert_close(
            sem.seg_logits, expected, rtol=1e-6, atol=1e-5)
        assert torch.equal(sem.sem_seg[0], expected.argmax(0))


def test_resizing_shortcuts_equal_interpolate():
    """Resizing to the cropped size itself returns the crop, bit for bit
    what bilinear ``F.interpolate`` gives, and upsampling into a buffer
    equals ``F.interpolate``."""
    import torch.nn.functional as F
    torch.manual_seed(0)
    maps = torch.randn(3, 64, 96) * 10
    crop = MaskDINOFusionHead.crop_and_resize(maps, (50, 70), (50, 70))
    assert crop.data_ptr() == maps.data_ptr()  # a view, nothing resized
    expected = F.interpolate(
        maps[None, :, :50, :70],
        size=(50, 70),
        mode='bilinear',
        align_corners=False)[0]
    assert torch.equal(crop, expected)
    head = MaskDINOFusionHead(num_things_classes=2, num_stuff_classes=0)
    low = torch.randn(3, 16, 24)
    buffer = torch.full((3, 64, 96), float('nan'))
    into_buffer = head.resize_masks(low, (64, 96), (50, 70), (75, 105), False,
                                    buffer)
    assert into_buffer.data_ptr() == buffer.data_ptr()
    assert torch.equal(
        into_buffer,
        head.resize_masks(low, (64, 96), (50, 70), (75, 105), False))


def test_winning_query_is_the_first_argmax():
    """The running maximum equals the argmax of the product, ties included
    (the first plane wins, as ``argmax`` returns the first maximum); the
    areas count probabilities >= 0.5 of the selected rows."""
    torch.manual_seed(0)
    logits = torch.randn(8, 20, 30)
    logits[6] = logits[1]  # exact ties between kept planes 1 and 4
    logits[2, :4] = 0.0  # probability exactly 0.5 counts as foreground
    rows = torch.tensor([0, 1, 2, 3, 6, 7])
    scores = torch.tensor([0.3, 0.9, 0.5, 0.7, 0.9, 0.2])
    before = logits.clone()
    winner, areas = MaskDINOFusionHead.winning_query(scores, logits, rows)
    probs = logits[rows].sigmoid()
    expected = (scores.view(-1, 1, 1) * probs).argmax(0)
    assert torch.equal(winner, expected)
    assert (winner == 1).any() and not (winner == 4).any()
    assert torch.equal(areas, (probs >= 0.5).sum((1, 2)))
    assert areas[2] == int((logits[2] >= 0).sum()) > int((logits[2] > 0).sum())
    assert torch.equal(logits, before)
    winner, areas = MaskDINOFusionHead.winning_query(scores[:1], logits,
                                                     rows[3:4])
    assert torch.equal(winner, torch.zeros(20, 30, dtype=torch.long))
    assert areas.tolist() == [int((logits[3] >= 0).sum())]


@pytest.mark.parametrize('with_quality', [True, False])
def test_binary_masks_of_selected_rows(with_quality):
    """Binary masks (logit > 0) of the selected rows of a cropped
    (non-contiguous) view and the mean sigmoid inside each; the logits are
    not modified."""
    masks = torch.randn(5, 6, 9, generator=torch.Generator().manual_seed(0))
    masks = masks[:, :, :7]
    masks[3] = -1.0  # an empty mask has quality 0
    before = masks.clone()
    rows = torch.tensor([0, 2, 3, 4])
    binary, quality = MaskDINOFusionHead.binary_masks(masks, rows,
                                                      with_quality)
    expected_binary = masks[rows] > 0
    assert binary.dtype == torch.bool
    assert torch.equal(binary, expected_binary)
    assert torch.equal(masks, before)
    if with_quality:
        probs = masks[rows].sigmoid() * expected_binary
        expected = probs.sum((1, 2)) / (expected_binary.sum((1, 2)) + 1e-6)
        torch.testing.assert_close(quality, expected)
        assert quality[2] == 0
    else:
        assert quality is None
    binary, quality = MaskDINOFusionHead.binary_masks(masks, rows[:0], True)
    assert binary.shape == (0, 6, 7) and quality.shape == (0, )
