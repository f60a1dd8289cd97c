# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
"""Tests of the :class:`MaskDINO` detector: outputs, training, gradients."""
import re
from typing import Dict, Sequence

import pytest
import torch
from mmdet.evaluation.functional import INSTANCE_OFFSET
from mmdet.structures import DetDataSample

from tests.conftest import REPO_ROOT
from tests.test_models.utils import (TINY_QUERIES, batch_for, build_tiny_model,
                                     model_classes, one_thread, render_images,
                                     total_loss)

_ = one_thread  # autouse module fixture: one CPU thread
PAD = (64, 64)
# Two images of one padded batch: (img_shape, ori_shape); the original
# sizes differ from the resized ones (x1.5 and x0.75).
METAS = [((64, 56), (96, 84)), ((48, 64), (36, 48))]
PRED_FIELDS = dict(
    instance_on='pred_instances',
    panoptic_on='pred_panoptic_seg',
    semantic_on='pred_sem_seg')


def meta_samples(metas: Sequence = METAS) -> list:
    """Data samples with only the metainfo inference needs."""
    return [
        DetDataSample(
            metainfo=dict(
                img_shape=img_shape,
                ori_shape=ori_shape,
                batch_input_shape=PAD,
                pad_shape=PAD)) for img_shape, ori_shape in metas
    ]


def predict(model, rescale: bool = True, seed: int = 0) -> list:
    """``model.predict`` in eval mode on random inputs and fresh samples."""
    inputs = torch.randn(
        len(METAS), 3, *PAD, generator=torch.Generator().manual_seed(seed))
    model.eval()
    with torch.no_grad():
        return model.predict(inputs, meta_samples(), rescale=rescale)


def flags_of(model) -> Dict[str, bool]:
    """The three output flags of the fusion head's ``test_cfg``."""
    test_cfg = model.panoptic_fusion_head.test_cfg
    return {flag: bool(test_cfg.get(flag)) for flag in PRED_FIELDS}


def check_instances(results, num_things: int, out_shape) -> None:
    """``pred_instances`` of one image: one detection per (query, thing
    class) pair (max_per_image = 100 > Q * C), masks at ``out_shape``."""
    num_dets = TINY_QUERIES * num_things
    assert results.bboxes.shape == (num_dets, 4)
    assert results.scores.shape == results.labels.shape == (num_dets, )
    assert results.masks.shape == (num_dets, *out_shape)
    assert results.masks.dtype == torch.bool
    assert 0 <= results.scores.min() and results.scores.max() <= 1
    assert 0 <= results.labels.min() and results.labels.max() < num_things
    assert bool(torch.isfinite(results.bboxes).all())


def check_panoptic(results, num_classes: int, out_shape) -> None:
    """``pred_panoptic_seg``: (1, H0, W0) ids in mmdet's encoding."""
    assert results.sem_seg.shape == (1, *out_shape)
    labels = results.sem_seg % INSTANCE_OFFSET
    assert 0 <= labels.min() and labels.max() <= num_classes


def check_semantic(results, num_classes: int, out_shape) -> None:
    """``pred_sem_seg``: (1, H0, W0) argmax labels of (C, H0, W0) scores."""
    assert results.sem_seg.shape == (1, *out_shape)
    assert results.seg_logits.shape == (num_classes, *out_shape)
    assert 0 <= results.sem_seg.min() and results.sem_seg.max() < num_classes
    torch.testing.assert_close(results.sem_seg,
                               results.seg_logits.argmax(0, keepdim=True))


# ------------------------------------------------------------- inference


@pytest.mark.parametrize('task,test_cfg', [
    ('instance', dict()),
    ('instance', dict(instance_on=False, semantic_on=True)),
    ('panoptic', dict()),
    ('panoptic', dict(instance_on=False, semantic_on=False)),
    ('panoptic', dict(panoptic_on=False, semantic_on=False)),
    ('semantic', dict()),
    ('det', dict()),
])
def test_predict_fills_requested_fields(task, test_cfg):
    """``predict`` sets exactly the ``pred_*`` fields enabled in
    ``test_cfg``, each at the image's original size."""
    model = build_tiny_model(task, **test_cfg)
    flags = flags_of(model)
    num_things, num_stuff = model_classes(model)
    for sample, (_, ori_shape) in zip(predict(model), METAS):
        for flag, field in PRED_FIELDS.items():
            assert (field in sample) == flags[flag], field
        if flags['instance_on']:
            check_instances(sample.pred_instances, num_things, ori_shape)
        if flags['panoptic_on']:
            check_panoptic(sample.pred_panoptic_seg, num_things + num_stuff,
                           ori_shape)
        if flags['semantic_on']:
            check_semantic(sample.pred_sem_seg, num_things + num_stuff,
                           ori_shape)


def test_predict_config_flags():
    """The shipped configs request what their task needs."""
    expected = dict(
        instance=(True, False, False),
        panoptic=(True, True, True),
        semantic=(False, False, True),
        det=(True, False, False))
    for task, flags in expected.items():
        assert tuple(flags_of(build_tiny_model(task)).values()) == flags


def test_predict_without_rescale():
    """``rescale=False`` gives outputs at ``img_shape``; the same
    detections are kept and their boxes differ from the rescaled ones
    exactly by ``ori_shape / img_shape``."""
    model = build_tiny_model(
        'panoptic', instance_on=True, panoptic_on=True, semantic_on=True)
    rescaled, unscaled = predict(model, True), predict(model, False)
    for big, small, (img_shape, ori_shape) in zip(rescaled, unscaled, METAS):
        assert small.pred_instances.masks.shape[1:] == img_shape
        assert small.pred_panoptic_seg.sem_seg.shape[1:] == img_shape
        assert small.pred_sem_seg.sem_seg.shape[1:] == img_shape
        scale_h = ori_shape[0] / img_shape[0]
        scale_w = ori_shape[1] / img_shape[1]
        factor = torch.tensor([scale_w, scale_h, scale_w, scale_h])
        torch.testing.assert_close(big.pred_instances.bboxes,
                                   small.pred_instances.bboxes * factor)
        # ranking is on class scores (before mask rescoring at each size)
        assert torch.equal(big.pred_instances.labels,
                           small.pred_instances.labels)
        assert torch.equal(big.pred_instances.query_indices,
                           small.pred_instances.query_indices)


@pytest.mark.parametrize('task', ['instance', 'panoptic', 'semantic'])
def test_forward_returns_raw_predictions(task):
    """``_forward`` (``mode='tensor'``) returns class logits (K = C, or
    C + 1 for the CE semantic head), 1/4-resolution masks and normalised
    boxes."""
    model = build_tiny_model(task).eval()
    num_things, num_stuff = model_classes(model)
    num_logits = num_things + num_stuff + int(task == 'semantic')
    inputs = torch.randn(2, 3, *PAD)
    with torch.no_grad():
        logits, masks, boxes = model._forward(inputs)
        tensor_mode = model(inputs, meta_samples(), mode='tensor')
    assert logits.shape == (2, TINY_QUERIES, num_logits)
    assert masks.shape == (2, TINY_QUERIES, PAD[0] // 4, PAD[1] // 4)
    assert boxes.shape == (2, TINY_QUERIES, 4)
    assert 0 <= boxes.min() and boxes.max() <= 1
    for expected, actual in zip((logits, masks, boxes), tensor_mode):
        torch.testing.assert_close(actual, expected)


# --------------------------------------------------------------- training


def seeded_loss(model, inputs, samples, seed: int) -> torch.Tensor:
    """Total training loss with a fixed seed (DN noise, point sampling)."""
    torch.manual_seed(seed)
    return total_loss(model.loss(inputs, samples))


def test_overfits_a_single_batch():
    """40 AdamW steps on one fixed batch (2 images, 1 and 3 objects) at
    least halve the total loss (measured with the same seed)."""
    torch.manual_seed(0)
    model = build_tiny_model('instance').train()
    samples = batch_for(model, num_objects=(1, 3))
    inputs = render_images(samples)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    with torch.no_grad():
        initial = seeded_loss(model, inputs, samples, seed=1234).item()
    for step in range(40):
        loss = seeded_loss(model, inputs, samples, seed=step)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        final = seeded_loss(model, inputs, samples, seed=1234).item()
    assert final < 0.5 * initial, (initial, final)


# Parameters whose gradient is exactly zero at initialisation, by design:
# - backbone residual branches (``conv1``, ``bn1``, ``conv2`` of each
#   BasicBlock): mmdet's ResNet zero-initialises the last BN (``bn2``,
#   ``zero_init_residual=True``), so the branch output and everything before
#   ``bn2`` gets no gradient;
# - ``pixel_decoder.level_embed``: it only enters the encoder's deformable
#   attention through the query, whose ``sampling_offsets`` and
#   ``attention_weights`` weights are zero-initialised (official init);
# - ``predictor.bbox_embed.layers.0/1``: the last box-MLP layer is
#   zero-initialised (official init), which blocks the gradient before it.
ZERO_GRAD_AT_INIT = re.compile(
    r'backbone\.layer\d\.\d\.(conv1|bn1|conv2)\.|'
    r'panoptic_head\.pixel_decoder\.level_embed$|'
    r'panoptic_head\.predictor\.bbox_embed\.layers\.[01]\.')


def backward_once(model, inputs, samples) -> dict:
    """One backward of the total loss; returns the losses (detached)."""
    model.zero_grad()
    torch.manual_seed(0)
    losses = model.loss(inputs, samples)
    total_loss(losses).backward()
    return {k: v.detach() for k, v in losses.items()}


def test_every_trainable_parameter_gets_a_gradient():
    """Two-stage, mask2box, DN active: every trainable parameter (backbone
    and head) has a finite gradient; it is non-zero except for the
    documented ``ZERO_GRAD_AT_INIT``, which become non-zero after one
    optimiser step breaks the zero initialisation."""
    model = build_tiny_model(
        'instance', predictor=dict(initialize_box_type='mask2box')).train()
    predictor = model.panoptic_head.predictor
    assert predictor.two_stage and predictor.initialize_box_type == 'mask2box'
    samples = batch_for(model, num_objects=(2, 3))
    inputs = render_images(samples)
    losses = backward_once(model, inputs, samples)
    assert losses['dn_loss_cls'].item() > 0  # denoising active
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    assert any(n.startswith('backbone.') for n in params)
    assert all(p.grad is not None for p in params.values())
    assert all(bool(torch.isfinite(p.grad).all()) for p in params.values())
    zero = {n for n, p in params.items() if not p.grad.any()}
    expected_zero = {n for n in params if ZERO_GRAD_AT_INIT.match(n)}
    assert zero == expected_zero

    torch.optim.SGD(params.values(), lr=1e-2).step()
    backward_once(model, inputs, samples)
    zero = [n for n, p in params.items() if not p.grad.any()]
    assert zero == []


# ---------------------------------------------------------------- devices

CUDA_PATTERNS = re.compile(
    r'\.cuda\(|device\s*=\s*[\'"]cuda|torch\.cuda\.FloatTensor')


def test_cuda_patterns_match_hard_coded_devices():
    """The pattern catches the forms it is meant for and nothing else."""
    hits = [
        'x.cuda()', "t.to(device='cuda')", 'torch.zeros(1, device="cuda:0")',
        'torch.cuda.FloatTensor(2)'
    ]
    fine = ['torch.cuda.is_available()', 'device=x.device', "'cudart'"]
    assert all(CUDA_PATTERNS.search(line) for line in hits)
    assert not any(CUDA_PATTERNS.search(line) for line in fine)


def test_no_hard_coded_cuda_in_library():
    """No ``.cuda(``, ``device='cuda'`` or ``torch.cuda.FloatTensor`` in
    the library (``torch.cuda.is_available()`` is allowed)."""
    files = sorted(
        path for path in (REPO_ROOT / 'mmmaskdino').rglob('*.py')
        if '.mim' not in path.parts)  # mim's copies of tools/, not library
    assert len(files) > 10
    hits = [
        f'{path.relative_to(REPO_ROOT)}:{lineno}: {line.strip()}'
        for path in files for lineno, line in enumerate(
            path.read_text(encoding='utf-8').splitlines(), 1)
        if CUDA_PATTERNS.search(line)
    ]
    assert hits == []
