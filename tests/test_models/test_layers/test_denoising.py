# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
import math

import pytest
import torch
from mmdet.registry import MODELS
from mmengine.structures import InstanceData

from mmmaskdino.models.layers.denoising import MaskDINODenoising

NUM_CLASSES = 5
EMBED_DIMS = 32


def make_gt(num: int, seed: int = 0) -> InstanceData:
    g = torch.Generator().manual_seed(seed)
    centers = 0.3 + 0.4 * torch.rand(num, 2, generator=g)
    sizes = 0.05 + 0.2 * torch.rand(num, 2, generator=g)
    return InstanceData(
        labels=torch.randint(0, NUM_CLASSES, (num, ), generator=g),
        bboxes=torch.cat([centers, sizes], dim=1))


def build(dn_num: int = 10, noise_scale: float = 0.4) -> MaskDINODenoising:
    return MODELS.build(
        dict(
            type='MaskDINODenoising',
            num_classes=NUM_CLASSES,
            embed_dims=EMBED_DIMS,
            dn_num=dn_num,
            noise_scale=noise_scale))


def test_layout_shapes_and_unused_slots():
    dn = build(dn_num=10)
    assert tuple(dn.label_enc.weight.shape) == (NUM_CLASSES, EMBED_DIMS)
    out = dn([make_gt(3, 0), make_gt(1, 1)], num_queries=7)
    meta = out['dn_meta']
    assert meta == dict(pad_size=9, num_groups=3, single_pad=3)
    assert tuple(out['query'].shape) == (2, 9, EMBED_DIMS)
    assert tuple(out['ref_logits'].shape) == (2, 9, 4)
    assert tuple(out['attn_mask'].shape) == (16, 16)
    assert out['attn_mask'].dtype == torch.bool
    for g in range(3):
        # image 1 has one GT: slots 1, 2 of every group are unused
        for slot in (g * 3 + 1, g * 3 + 2):
            assert torch.count_nonzero(out['query'][1, slot]) == 0
            assert torch.count_nonzero(out['ref_logits'][1, slot]) == 0
        assert torch.count_nonzero(out['query'][1, g * 3]) == EMBED_DIMS
        assert torch.count_nonzero(out['query'][0, g * 3:g * 3 +
                                                3].abs().sum(-1)) == 3


def test_attention_mask_entries():
    dn = build(dn_num=10)
    pad, q = 9, 7
    mask = dn([make_gt(3), make_gt(2, 1)], num_queries=q)['attn_mask']
    assert mask[pad:, :pad].all()  # matching cannot see DN
    assert not mask[:pad, pad:].any()  # DN sees matching queries
    assert not mask[pad:, pad:].any()  # matching sees matching
    assert not mask[0, 2] and mask[0, 3] and mask[0, 8]
    assert mask[4, 1] and not mask[4, 5] and mask[4, 6]
    assert mask[8, 0] and not mask[8, 6]
    group = torch.arange(pad) // 3
    assert torch.equal(mask[:pad, :pad], group[:, None] != group[None, :])
    assert int(mask.sum()) == q * pad + pad * pad - 3 * 9


def test_skipped_without_gt_or_too_many_gt():
    dn = build(dn_num=10)
    assert dn([make_gt(0), make_gt(0, 1)], num_queries=5) is None
    assert dn([make_gt(11), make_gt(2, 1)], num_queries=5) is None
    out = dn([make_gt(10), make_gt(2, 1)], num_queries=5)
    assert out['dn_meta'] == dict(pad_size=10, num_groups=1, single_pad=10)


def test_label_flip_rate_and_box_noise_bounds():
    torch.manual_seed(0)
    num_gt = 500
    dn = build(dn_num=20000)
    gt = make_gt(num_gt, 3)
    out = dn([gt], num_queries=4)
    groups = out['dn_meta']['num_groups']
    assert groups == 40
    query = out['query'][0].view(groups, num_gt, EMBED_DIMS)
    weight = dn.label_enc.weight
    match = (query[:, :, None, :] == weight[None, None]).all(-1)  # (G, n, C)
    assert bool((match.sum(-1) == 1).all())
    noised = match.float().argmax(-1)
    changed = (noised != gt.labels[None]).float().mean().item()
    # flip p = 0.2 to a uniform label, which may equal the original one
    assert changed == pytest.approx(0.2 * (1 - 1 / NUM_CLASSES), abs=0.01)

    boxes = out['ref_logits'][0].view(groups, num_gt, 4).sigmoid()
    ref = gt.bboxes[None]
    rel_center = (boxes[..., :2] - ref[..., :2]) / (0.2 * ref[..., 2:])
    rel_size = boxes[..., 2:] / ref[..., 2:]
    assert rel_center.abs().max() <= 1 + 1e-3
    assert rel_center.abs().max() > 0.98
    assert rel_center.mean().abs() < 0.02
    assert rel_center.std().item() == pytest.approx(1 / math.sqrt(3), abs=0.01)
    assert rel_size.min() >= 0.6 - 1e-3 and rel_size.max() <= 1.4 + 1e-3
    assert rel_size.mean().item() == pytest.approx(1.0, abs=0.01)


def test_box_clamp_and_logit_eps():
    torch.manual_seed(1)
    dn = build(dn_num=1000)
    gt = InstanceData(
        labels=torch.tensor([0]),
        bboxes=torch.tensor([[0.99, 0.01, 0.9, 0.9]]))
    logits = dn([gt], num_queries=2)['ref_logits'][0]
    limit = math.log((1 - 1e-5) / 1e-5)
    assert logits.abs().max().item() <= limit + 1e-4
    # centre x + up to 0.18 clamps at 1 in about half of the groups, centre y -
    # ... at 0
    assert (logits[:, 0] > limit - 1e-3).float().mean() > 0.3
    assert (logits[:, 1] < -limit + 1e-3).float().mean() > 0.3


def test_seeded_runs_are_identical_and_embedding_gets_gradient():
    dn = build(dn_num=12)
    gts = [make_gt(4), make_gt(2, 1)]
    torch.manual_seed(7)
    first = dn(gts, num_queries=3)
    torch.manual_seed(7)
    second = dn(gts, num_queries=3)
    third = dn(gts, num_queries=3)
    assert torch.equal(first['query'], second['query'])
    assert torch.equal(first['ref_logits'], second['ref_logits'])
    assert not torch.equal(second['ref_logits'], third['ref_logits'])
    first['query'].sum().backward()
    assert dn.label_enc.weight.grad.abs().sum() > 0


def test_no_noise_keeps_gt():
    dn = build(dn_num=6, noise_scale=0.0)
    gt = make_gt(3)
    out = dn([gt], num_queries=2)
    torch.testing.assert_close(
        out['ref_logits'][0, 3:6].sigmoid(), gt.bboxes, atol=1e-5, rtol=0)
    torch.testing.assert_close(out['query'][0, :3], dn.label_enc(gt.labels))
