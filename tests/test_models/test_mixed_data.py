# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
"""Mixed box-only + mask training (shapes-mixed config) on the fixture data."""
import json

import numpy as np
import pytest
import torch
from mmdet.registry import DATASETS, MODELS
from mmengine.dataset import pseudo_collate
from mmengine.runner import Runner

from tests.test_apis.utils import shapes_config

CONFIG = 'maskdino_r18-tiny_1xb4-2.2k_shapes-mixed'
MASK_KEYS = ('loss_mask', 'loss_dice')


@pytest.fixture(scope='module')
def cfg(shapes_root):
    return shapes_config(CONFIG, shapes_root)


def _sample_with_gt(dataset, indices) -> dict:
    """First item among ``indices`` whose random crop keeps some GT."""
    for idx in indices:
        item = dataset[idx]
        if len(item['data_samples'].gt_instances) > 0:
            return item
    raise AssertionError('no sample with GT')


@pytest.fixture(scope='module')
def batches(cfg):
    """A box-only and a mask sample from the ConcatDataset of the config."""
    np.random.seed(0)
    dataset = DATASETS.build(cfg.train_dataloader.dataset)
    num_box = len(dataset.datasets[0])
    assert (num_box, len(dataset.datasets[1])) == (4, 4)
    box = _sample_with_gt(dataset, range(num_box))
    mask = _sample_with_gt(dataset, range(num_box, len(dataset)))
    assert 'masks' not in box['data_samples'].gt_instances
    assert 'masks' in mask['data_samples'].gt_instances
    return box, mask


@pytest.fixture(scope='module')
def model(cfg):
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    return model.train()


def _losses(model, items) -> dict:
    data = model.data_preprocessor(pseudo_collate(list(items)), True)
    return model.loss(data['inputs'], data['data_samples'])


def test_mask_loss_is_zero_exactly_for_box_only_images(model, batches):
    box, mask = batches
    torch.manual_seed(0)
    box_losses = _losses(model, [box, box])
    mask_terms = {k: v for k, v in box_losses.items() if k.endswith(MASK_KEYS)}
    # final, 2 decoder layers, initial prediction, encoder, and DN sets
    assert len(mask_terms) >= 10
    assert all(v.item() == 0.0 for v in mask_terms.values())
    assert box_losses['loss_bbox'].item() > 0
    assert box_losses['loss_cls'].item() > 0

    torch.manual_seed(0)
    mixed = _losses(model, [box, mask])
    assert all(mixed[k].item() > 0 for k in mask_terms)
    assert all(torch.isfinite(v) for v in mixed.values())


def test_mask_gradient_is_zero_for_the_box_only_image(model, batches):
    """In one mixed batch the mask terms give no gradient to the box-only
    image's mask predictions and a non-zero one to the other image's."""
    data = model.data_preprocessor(pseudo_collate(list(batches)), True)
    head = model.panoptic_head
    feats = model.extract_feat(data['inputs'])
    targets = head.get_targets(data['data_samples'], torch.device('cpu'))
    assert ['masks' in t for t in targets] == [False, True]
    mask_features, multi_scale = head.pixel_decoder(feats)
    dn = head.predictor.denoising_queries(targets)
    outputs, dn_outputs = head.predictor(multi_scale, mask_features, dn)
    # the final set's mask embeddings (training keeps the masks factorised)
    embeds = outputs['pred_masks'].embeds
    embeds.retain_grad()
    losses = head.criterion(outputs, dn_outputs,
                            None if dn is None else dn['dn_meta'], targets)
    (losses['loss_mask'] + losses['loss_dice']).backward()
    grad = embeds.grad
    assert grad[0].abs().max().item() == 0.0
    assert grad[1].abs().max().item() > 0.0


def test_mixed_training_reports_box_and_mask_ap(cfg, tmp_path):
    run_cfg = cfg.copy()
    run_cfg.work_dir = str(tmp_path)
    run_cfg.train_cfg.max_iters = 3
    run_cfg.train_cfg.val_interval = 1000
    run_cfg.train_dataloader.batch_size = 2
    run_cfg.default_hooks.logger.interval = 1
    run_cfg.visualizer.vis_backends = [dict(type='LocalVisBackend')]
    runner = Runner.from_cfg(run_cfg)
    runner.train()
    metrics = runner.val()
    for key in ('coco/bbox_mAP', 'coco/segm_mAP', 'coco/bbox_mAP_50',
                'coco/segm_mAP_50'):
        assert isinstance(metrics[key], float)
        assert 0.0 <= metrics[key] <= 1.0


def test_generator_splits_train_into_box_and_mask_halves(shapes_root):

    def load(part):
        path = shapes_root / f'annotations/instances_train_{part}.json'
        return json.loads(path.read_text())

    boxes, masks = load('boxes'), load('masks')
    full = json.loads(
        (shapes_root / 'annotations/instances_train.json').read_text())
    box_ids = [img['id'] for img in boxes['images']]
    assert box_ids == [img['id'] for img in full['images'][1::2]]
    assert sorted(box_ids + [img['id'] for img in masks['images']]) == \
        [img['id'] for img in full['images']]
    assert len(boxes['annotations']) + len(masks['annotations']) == len(
        full['annotations'])
    assert boxes['annotations'] and all(
        'segmentation' not in a and len(a['bbox']) == 4
        for a in boxes['annotations'])
    assert all('segmentation' in a for a in masks['annotations'])


def test_both_halves_share_the_augmentation(cfg):
    """The box-only and the mask half go through the same flip, scale jitter
    (0.75-1.5) and crop; only loading and filtering differ."""
    box, mask = cfg.train_dataloader.dataset.datasets
    assert box.ann_file == 'annotations/instances_train_boxes.json'
    assert mask.ann_file == 'annotations/instances_train_masks.json'
    assert box.pipeline[2:-2] == mask.pipeline[2:-2]
    assert [t['type'] for t in box.pipeline[2:-2]
            ] == ['RandomFlip', 'RandomResize', 'RandomCrop']
    assert box.pipeline[3]['ratio_range'] == (0.75, 1.5)
    assert box.pipeline[1] == dict(
        type='LoadAnnotations', with_bbox=True, with_mask=False)
    assert mask.pipeline[1]['with_mask'] is True
