# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
"""Tests of :class:`MaskDINOHead`: targets, losses and input checks."""
import numpy as np
import pytest
import torch

from tests.test_models.utils import (IGNORE_INDEX, IMG_SIZE, all_finite,
                                     batch_for, build_tiny_model, empty_sample,
                                     expected_loss_keys, head_loss,
                                     instance_batch, make_data_sample,
                                     model_classes, one_thread, render_images)

_ = one_thread  # autouse module fixture: one CPU thread
LOSS_NAMES = ('loss_cls', 'loss_mask', 'loss_dice', 'loss_bbox', 'loss_iou')


@pytest.fixture(scope='module')
def instance_model():
    """Tiny instance model (two-stage, mask2box, DN) in train mode."""
    return build_tiny_model(
        'instance', predictor=dict(initialize_box_type='mask2box')).train()


@pytest.fixture(scope='module')
def panoptic_model():
    """Tiny panoptic model (5 things, 3 stuff) in train mode."""
    return build_tiny_model('panoptic').train()


def _rect_mask(shape, x0, y0, x1, y1) -> np.ndarray:
    """A ``(1, h, w)`` uint8 mask of the rectangle ``[x0, x1) x [y0, y1)``."""
    mask = np.zeros((1, *shape), dtype=np.uint8)
    mask[0, y0:y1, x0:x1] = 1
    return mask


# ----------------------------------------------------------------- targets


def test_targets_are_normalised_to_the_padded_input(instance_model):
    """Boxes become cxcywh / (W_pad, H_pad); masks arrive zero-padded by the
    data preprocessor (``pad_mask``), which sets ``batch_input_shape``."""
    mask = _rect_mask((48, 56), 8, 4, 24, 20)
    sample = make_data_sample(np.array([3]), mask, img_shape=(48, 56))
    with pytest.raises(
            ValueError,
            match=r'GT masks .* \(48, 56\), the padded '
            r'batch input is \(64, 64\).*pad_mask=True'):
        sample.set_metainfo(dict(batch_input_shape=(64, 64)))
        instance_model.panoptic_head.get_targets([sample], torch.device('cpu'))
    data = instance_model.data_preprocessor(
        dict(
            inputs=[torch.zeros(3, 48, 56, dtype=torch.uint8)],
            data_samples=[sample]),
        training=True)
    (sample, ) = data['data_samples']
    assert sample.batch_input_shape == (64, 64)
    target = instance_model.panoptic_head.get_targets([sample],
                                                      torch.device('cpu'))[0]
    assert target.labels.tolist() == [3]
    torch.testing.assert_close(target.bboxes,
                               torch.tensor([[0.25, 0.1875, 0.25, 0.25]]))
    assert target.masks.shape == (1, 64, 64)
    assert target.masks.dtype == torch.float32
    assert target.masks.sum().item() == 16 * 16
    assert target.masks[0, 4:20, 8:24].min().item() == 1.0
    assert target.masks[:, 48:].sum().item() == 0
    assert target.masks[:, :, 56:].sum().item() == 0


def test_box_only_targets_have_no_masks(instance_model):
    """A sample without ``gt_instances.masks`` gives targets without masks."""
    sample = make_data_sample(
        np.array([1, 2]),
        None,
        boxes=np.array([[0, 0, 32, 16], [16, 16, 48, 64]], dtype=np.float32))
    target = instance_model.panoptic_head.get_targets([sample],
                                                      torch.device('cpu'))[0]
    assert 'masks' not in target
    torch.testing.assert_close(
        target.bboxes,
        torch.tensor([[0.25, 0.125, 0.5, 0.25], [0.5, 0.625, 0.5, 0.75]]))


def test_stuff_targets_from_sem_seg(panoptic_model):
    """Each stuff class present in ``gt_sem_seg`` becomes one target after
    the things; ignore (255) and thing ids of the map are not stuff."""
    num_things, num_stuff = model_classes(panoptic_model)
    sky, water = num_things, num_things + num_stuff - 1
    thing = _rect_mask((IMG_SIZE, IMG_SIZE), 40, 40, 50, 50)
    sem = np.full((IMG_SIZE, IMG_SIZE), sky, dtype=np.int64)
    sem[32:] = water
    sem[:2] = IGNORE_INDEX
    sem[thing[0] > 0] = 0
    sample = make_data_sample(np.array([0]), thing, sem_seg=sem)
    target = panoptic_model.panoptic_head.get_targets([sample],
                                                      torch.device('cpu'))[0]
    assert target.labels.tolist() == [0, sky, water]
    assert target.masks.shape == (3, IMG_SIZE, IMG_SIZE)
    assert target.masks.sum((1, 2)).tolist() == [100, 30 * 64, 32 * 64 - 100]
    # stuff boxes: mask2bbox with exclusive right/bottom edge
    torch.testing.assert_close(
        target.bboxes[1:] * IMG_SIZE,
        torch.tensor([[32.0, 17.0, 64.0, 30.0], [32.0, 48.0, 64.0, 32.0]]))


# ------------------------------------------------------------------ losses


@pytest.mark.parametrize('task', ['instance', 'panoptic', 'semantic'])
def test_loss_keys_finite_with_an_empty_image(task):
    """One image without GT next to one with GT: every key, all finite,
    denoising active (non-zero DN class loss)."""
    model = build_tiny_model(task).train()
    samples = batch_for(model, num_objects=(2, 2))
    samples[0] = empty_sample(with_sem_seg=model_classes(model)[1] > 0)
    targets = model.panoptic_head.get_targets(samples, torch.device('cpu'))
    assert len(targets[0]) == 0 and len(targets[1]) > 0
    losses = head_loss(model, samples)
    assert set(losses) == expected_loss_keys(model)
    assert all_finite(losses)
    assert losses['dn_loss_cls'].item() > 0
    assert all(losses[name].item() > 0 for name in LOSS_NAMES)


@pytest.mark.parametrize('task', ['instance', 'semantic'])
def test_loss_all_images_empty(task):
    """No GT anywhere: finite losses; DN is skipped but its keys are still
    present and exactly zero; box and mask terms are zero, the class loss
    (all queries -> no object) is positive and differentiable."""
    model = build_tiny_model(task).train()
    with_sem_seg = model_classes(model)[1] > 0
    losses = head_loss(model, [empty_sample(with_sem_seg=with_sem_seg)] * 2)
    assert set(losses) == expected_loss_keys(model)
    assert all_finite(losses)
    dn_keys = [k for k in losses if 'dn_' in k]
    assert dn_keys and all(losses[k].item() == 0 for k in dn_keys)
    for name in ('loss_bbox', 'loss_iou', 'loss_mask', 'loss_dice'):
        assert losses[name].item() == 0
    assert losses['loss_cls'].item() > 0
    assert losses['loss_cls'].requires_grad


def test_loss_box_only_batch():
    """Only box-only images: mask and dice terms are exactly zero in every
    prediction set while the box and class terms are positive."""
    model = build_tiny_model('det').train()
    samples = [
        make_data_sample(
            s.gt_instances.labels.numpy(),
            None,
            boxes=s.gt_instances.bboxes.tensor.numpy())
        for s in instance_batch(5, num_objects=(2, 3))
    ]
    losses = head_loss(model, samples)
    assert set(losses) == expected_loss_keys(model)
    assert all_finite(losses)
    for key, value in losses.items():
        if key.endswith(('loss_mask', 'loss_dice')):
            assert value.item() == 0, key
        else:
            assert value.item() > 0, key


def test_loss_mixed_box_only_and_masked_images(instance_model):
    """A box-only image next to an image with masks: mask terms come from
    the masked image only and stay finite and positive."""
    masked, boxed = instance_batch(5, num_objects=(2, 2))
    box_only = make_data_sample(
        boxed.gt_instances.labels.numpy(),
        None,
        boxes=boxed.gt_instances.bboxes.tensor.numpy())
    losses = head_loss(instance_model, [box_only, masked])
    assert all_finite(losses)
    assert losses['loss_mask'].item() > 0
    assert losses['loss_dice'].item() > 0
    assert losses['loss_bbox'].item() > 0


# ------------------------------------------------------------- bad inputs


def test_label_out_of_range_raises_clear_error(instance_model):
    """A GT label >= num_classes is reported with the label and the class
    count instead of failing inside a tensor op."""
    samples = instance_batch(5, num_objects=(1, 2))
    samples[1].gt_instances.labels[0] = 5
    with pytest.raises(ValueError, match=r'5.*num_classes=5'):
        head_loss(instance_model, samples)


# ----------------------------------------------------------------- devices
FACTORIES = (torch.zeros, torch.ones, torch.empty, torch.full, torch.arange,
             torch.tensor, torch.as_tensor, torch.eye, torch.linspace,
             torch.rand, torch.randn, torch.randint, torch.randperm)


class FactoriesWithoutDevice(torch.overrides.TorchFunctionMode):
    """Records every tensor factory called without an explicit ``device``:
    such a tensor lands on the CPU whatever the inputs' device is."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in FACTORIES and kwargs.get('device') is None:
            self.calls.append(func.__name__)
        return func(*args, **kwargs)


@pytest.mark.parametrize('task', ['instance', 'panoptic', 'semantic', 'det'])
def test_targets_and_loss_create_no_tensor_on_a_fixed_device(task):
    """Targets (also of images without boxes: every semantic sample) and the
    whole loss create tensors only with ``device=`` taken from the inputs,
    so a CUDA batch never meets CPU targets."""
    model = build_tiny_model(task).train()
    samples = batch_for(model, num_objects=(0, 2))
    feats = model.extract_feat(render_images(samples))
    with FactoriesWithoutDevice() as mode:
        targets = model.panoptic_head.get_targets(samples, feats[0].device)
        losses = model.panoptic_head.loss(feats, samples)
    assert mode.calls == []
    assert all_finite(losses)
    assert len(targets) == 2


def test_targets_follow_the_requested_device(instance_model, monkeypatch):
    """Targets are built on the device passed in (here ``meta``), also for
    an image without boxes (semantic data, no objects), where the device
    cannot be taken from the boxes. (The label range check reads values,
    which meta tensors do not have: it is switched off here.)"""
    monkeypatch.setattr(instance_model.panoptic_head, '_check_labels',
                        lambda *args: None)
    sample = empty_sample()
    gt = sample.gt_instances
    sample.gt_instances = type(gt)(labels=gt.labels.to('meta'), masks=gt.masks)
    (target, ) = instance_model.panoptic_head.get_targets([sample],
                                                          torch.device('meta'))
    assert target.labels.device.type == 'meta'
    assert target.bboxes.device.type == 'meta'
    assert target.masks.device.type == 'meta'
    assert target.bboxes.shape == (0, 4)
