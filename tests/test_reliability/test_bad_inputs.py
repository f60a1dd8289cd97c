# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
"""Bad input: every case either trains / predicts normally (finite losses,
outputs of the right shape) or stops with an error that names the file or
setting at fault.

Data-level cases write a small COCO dataset to ``tmp_path`` and run it through
the training pipeline of the reliability config (LSJ crop at 64x64) and the
tiny model of ``tests/test_models/utils.py``; model-level cases use that
module's hand-made samples.
"""
import json
import logging
from pathlib import Path
from typing import List, Optional, Sequence

import cv2
import numpy as np
import pytest
import torch
from mmdet.registry import DATASETS, TRANSFORMS
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.logging import MMLogger
from mmengine.runner import load_checkpoint
from pycocotools import mask as mask_utils

from tests.test_models.utils import (IMG_SIZE, TINY_QUERIES, all_finite,
                                     build_tiny_model, empty_sample,
                                     instance_batch, make_data_sample,
                                     one_thread, random_objects, render_images)
from tests.test_reliability.utils import CONFIG

__all__ = ['one_thread']  # the module-wide single-thread fixture

NUM_THINGS = 5
CATEGORIES = [
    dict(id=i + 1, name=n)
    for i, n in enumerate(('circle', 'square', 'triangle', 'star', 'ring'))
]


@pytest.fixture(scope='module')
def model():
    """The tiny instance model (5 thing classes, 10 queries, dn_num 10)."""
    torch.manual_seed(0)
    return build_tiny_model('instance').train()


def rect_ann(ann_id: int,
             img_id: int,
             box: Sequence[float],
             cat: int = 1,
             iscrowd: int = 0,
             shape: Optional[Sequence[int]] = None) -> dict:
    """A COCO annotation of the rectangle ``box`` (xywh) with an RLE mask of
    the image ``shape`` (h, w)."""
    x, y, w, h = box
    ann = dict(
        id=ann_id,
        image_id=img_id,
        category_id=cat,
        bbox=list(box),
        area=float(w * h),
        iscrowd=iscrowd)
    if shape is not None:
        m = np.zeros(shape, dtype=np.uint8, order='F')
        m[max(int(y), 0):max(int(y + h), 0),
          max(int(x), 0):max(int(x + w), 0)] = 1
        rle = mask_utils.encode(m)
        rle['counts'] = rle['counts'].decode()
        ann['segmentation'] = rle
    return ann


def write_coco(root: Path,
               images: List[np.ndarray],
               anns: List[dict],
               names: Optional[List[str]] = None,
               ext: str = 'png') -> Path:
    """Write ``images`` and a COCO json with ``anns`` under ``root``.

    Returns:
        Path: The annotation file.
    """
    (root / 'img').mkdir(parents=True, exist_ok=True)
    infos = []
    for i, img in enumerate(images):
        name = names[i] if names else f'{i}.{ext}'
        if img is not None:
            assert cv2.imwrite(str(root / 'img' / name), img)
        h, w = img.shape[:2] if img is not None else (64, 64)
        infos.append(dict(id=i + 1, file_name=name, height=h, width=w))
    ann_file = root / 'ann.json'
    ann_file.write_text(
        json.dumps(
            dict(images=infos, annotations=anns, categories=CATEGORIES)))
    return ann_file


def build_dataset(root: Path):
    """The reliability config's training dataset on ``root``."""
    cfg = Config.fromfile(str(CONFIG)).train_dataloader.dataset
    cfg.update(
        data_root=str(root) + '/',
        ann_file='ann.json',
        data_prefix=dict(img='img/'))
    return DATASETS.build(cfg)


def train_losses(model, item: dict) -> dict:
    """Losses of a training forward on a batch of two copies of a pipeline
    output (the tiny model's pixel decoder has one channel per GroupNorm
    group, which needs two values per group at its 1x1 coarsest level)."""
    data = model.data_preprocessor(pseudo_collate([item, item]), training=True)
    return model.loss(data['inputs'], data['data_samples'])


def scene(h: int = 96,
          w: int = 96,
          channels: int = 3,
          seed: int = 0,
          dtype=np.uint8) -> np.ndarray:
    """A random image (BGR / gray / BGRA)."""
    rng = np.random.default_rng(seed)
    top = 65535 if dtype == np.uint16 else 255
    shape = (h, w) if channels == 1 else (h, w, channels)
    return rng.integers(0, top, size=shape).astype(dtype)


def model_losses(model, samples: list) -> dict:
    """Training losses of hand-made samples (batches of two or more, see
    :func:`train_losses`)."""
    torch.manual_seed(0)
    return model.loss(render_images(samples), samples)


# ----------------------------------------------------------------- data level
def test_image_without_annotations_trains(model, tmp_path):
    write_coco(tmp_path, [scene()], [])
    item = build_dataset(tmp_path)[0]
    assert len(item['data_samples'].gt_instances) == 0
    losses = train_losses(model, item)
    assert all_finite(losses)
    assert float(losses['loss_bbox']) == 0.0


def test_only_crowd_annotations_are_ignored(model, tmp_path):
    anns = [
        rect_ann(1, 1, (10, 10, 30, 30), iscrowd=1, shape=(96, 96)),
        rect_ann(2, 1, (50, 50, 20, 20), iscrowd=1, shape=(96, 96))
    ]
    write_coco(tmp_path, [scene()], anns)
    dataset = build_dataset(tmp_path)
    instances = dataset.get_data_info(0)['instances']
    assert [inst['ignore_flag'] for inst in instances] == [1, 1]
    item = dataset[0]
    assert len(item['data_samples'].gt_instances) == 0
    assert all_finite(train_losses(model, item))


def test_zero_area_boxes_are_dropped(model, tmp_path):
    anns = [
        rect_ann(1, 1, (10, 10, 0, 20), shape=(96, 96)),
        rect_ann(2, 1, (10, 10, 20, 0), shape=(96, 96)),
        rect_ann(3, 1, (30, 30, 40, 40), cat=2, shape=(96, 96))
    ]
    write_coco(tmp_path, [scene()], anns)
    dataset = build_dataset(tmp_path)
    assert [i['bbox_label'] for i in dataset.get_data_info(0)['instances']] \
        == [1]
    assert all_finite(train_losses(model, dataset[0]))


def test_out_of_image_boxes(model, tmp_path):
    anns = [
        rect_ann(1, 1, (200, 200, 20, 20), shape=(96, 96)),  # outside
        rect_ann(2, 1, (-20, 70, 50, 50), cat=3, shape=(96, 96))
    ]  # partly
    write_coco(tmp_path, [scene()], anns)
    dataset = build_dataset(tmp_path)
    assert [i['bbox_label'] for i in dataset.get_data_info(0)['instances']] \
        == [2]
    item = dataset[0]
    boxes = item['data_samples'].gt_instances.bboxes.tensor
    h, w = item['data_samples'].img_shape
    # recomputed from the cropped masks: inside the image
    assert bool((boxes >= 0).all()) and bool((boxes[:, 2] <= w).all()) and \
        bool((boxes[:, 3] <= h).all())
    assert all_finite(train_losses(model, item))


def test_masks_vanishing_after_lsj_crop_are_filtered(model):
    crop = TRANSFORMS.build(
        dict(
            type='RandomCrop',
            crop_size=(64, 64),
            crop_type='absolute',
            recompute_bbox=True,
            allow_negative_crop=True))
    keep = TRANSFORMS.build(
        dict(
            type='FilterAnnotations',
            min_gt_bbox_wh=(1e-5, 1e-5),
            by_mask=True))
    from mmdet.structures.bbox import HorizontalBoxes
    from mmdet.structures.mask import BitmapMasks
    masks = np.zeros((1, 128, 128), dtype=np.uint8)
    masks[0, 124:128, 124:128] = 1  # survives only a crop at offset >= 61
    np.random.seed(0)
    results = crop(
        dict(
            img=scene(128, 128),
            img_shape=(128, 128),
            gt_bboxes=HorizontalBoxes(
                torch.tensor([[124., 124., 128., 128.]])),
            gt_bboxes_labels=np.array([1]),
            gt_ignore_flags=np.array([False]),
            gt_masks=BitmapMasks(masks, 128, 128)))
    assert results['gt_masks'].masks.sum() == 0  # the mask vanished
    results = keep(results)
    assert len(results['gt_masks']) == 0 and len(results['gt_bboxes']) == 0
    assert all_finite(model_losses(model, [empty_sample(), empty_sample()]))


@pytest.mark.parametrize('kind', ['gray', 'rgba', '16bit'])
def test_grayscale_rgba_16bit_images_load_as_3_channels(model, tmp_path, kind):
    img = dict(
        gray=scene(channels=1),
        rgba=scene(channels=4),
        **{'16bit': scene(dtype=np.uint16)})[kind]
    write_coco(tmp_path, [img],
               [rect_ann(1, 1, (20, 20, 40, 40), shape=(96, 96))])
    item = build_dataset(tmp_path)[0]
    inputs = item['inputs']
    assert inputs.shape[0] == 3
    # 16-bit data is converted to 8-bit by the colour decode
    assert 0 <= float(inputs.min()) and float(inputs.max()) <= 255
    assert all_finite(train_losses(model, item))


@pytest.mark.parametrize('hw', [(8, 8), (100, 4000), (4000, 100)])
def test_tiny_and_extreme_aspect_images_train_and_predict(model, tmp_path, hw):
    h, w = hw
    anns = [rect_ann(1, 1, (0, 0, w // 2, h // 2), shape=hw)]
    write_coco(tmp_path, [scene(h, w)], anns)
    item = build_dataset(tmp_path)[0]
    assert all_finite(train_losses(model, item))
    # inference on the original image size
    model.eval()
    try:
        sample = make_data_sample(
            np.zeros(0, dtype=np.int64),
            np.zeros((0, 64, 64), dtype=np.uint8),
            img_shape=(64, 64),
            ori_shape=hw)
        sample.set_metainfo(dict(scale_factor=(64 / w, 64 / h)))
        with torch.no_grad():
            out = model.predict(
                torch.zeros(2, 3, 64, 64), [sample, sample.clone()])[0]
    finally:
        model.train()
    pred = out.pred_instances
    assert pred.masks.shape[-2:] == hw
    assert bool(torch.isfinite(pred.scores).all())


def test_corrupt_image_error_names_the_file(tmp_path):
    write_coco(tmp_path, [scene()], [], names=['broken.png'])
    (tmp_path / 'img' / 'broken.png').write_bytes(b'\x89PNG\r\n\x1a\n garbage')
    dataset = build_dataset(tmp_path)
    with pytest.raises(
            AssertionError, match=r'failed to load image: .*'
            r'img/broken\.png'):
        dataset[0]


def test_missing_image_error_names_the_file(tmp_path):
    write_coco(tmp_path, [None], [], names=['missing.png'])
    dataset = build_dataset(tmp_path)
    with pytest.raises(FileNotFoundError, match=r'img/missing\.png'):
        dataset[0]


def test_missing_annotation_file_error_names_it(tmp_path):
    with pytest.raises(FileNotFoundError, match=r'ann\.json'):
        build_dataset(tmp_path)


def test_unknown_category_ids_are_dropped(model, tmp_path):
    """mmdet's ``CocoDataset`` keeps only annotations whose category is one of
    the dataset's classes (that is how class subsets are selected), so an id
    missing from ``categories`` drops that annotation; the rest trains."""
    anns = [
        rect_ann(1, 1, (10, 10, 30, 30), cat=99, shape=(96, 96)),
        rect_ann(2, 1, (50, 50, 30, 30), cat=4, shape=(96, 96))
    ]
    write_coco(tmp_path, [scene()], anns)
    dataset = build_dataset(tmp_path)
    assert [i['bbox_label'] for i in dataset.get_data_info(0)['instances']] \
        == [3]
    assert all_finite(train_losses(model, dataset[0]))


# ---------------------------------------------------------------- model level
def test_one_pixel_masks_train(model):
    masks = np.zeros((2, IMG_SIZE, IMG_SIZE), dtype=np.uint8)
    masks[0, 5, 5] = 1
    masks[1, 40, 63] = 1
    sample = make_data_sample(np.array([0, 3]), masks)
    losses = model_losses(model, [sample, sample])
    assert all_finite(losses)
    assert float(losses['loss_mask']) > 0


def test_empty_mask_with_box_trains(model):
    """A GT whose mask vanished but kept its box (no FilterAnnotations)."""
    masks = np.zeros((1, IMG_SIZE, IMG_SIZE), dtype=np.uint8)
    sample = make_data_sample(
        np.array([2]), masks, boxes=np.array([[10., 10., 20., 20.]]))
    assert all_finite(model_losses(model, [sample, sample]))


def test_more_gt_than_dn_num_skips_denoising(model):
    dn_num = model.panoptic_head.predictor.denoising.dn_num
    samples = instance_batch(NUM_THINGS, num_objects=(dn_num + 2, 1))
    losses = model_losses(model, samples)
    assert all_finite(losses)
    dn_terms = [v for k, v in losses.items() if 'dn_loss' in k]
    assert dn_terms and all(float(v) == 0.0 for v in dn_terms)
    assert float(losses['loss_cls']) > 0


def test_num_queries_smaller_than_objects_matches_all_queries(model):
    """Official behaviour: the Hungarian matcher assigns min(Q, #GT) pairs."""
    num_gt = TINY_QUERIES + 5
    criterion = model.panoptic_head.criterion
    matched = []
    match = criterion._match

    def counting_match(preds, gts, name):
        assignment = match(preds, gts, name)
        matched.append((name, assignment[0].numel()))
        return assignment

    criterion._match = counting_match
    try:
        losses = model_losses(
            model, instance_batch(NUM_THINGS, num_objects=(num_gt, num_gt)))
    finally:
        del criterion._match
    assert all_finite(losses)
    # two images, each with min(Q, #GT) = Q matched queries, in every set
    assert len(matched) == 4
    assert all(n == 2 * TINY_QUERIES for _, n in matched)


def test_box_only_image_in_mask_batch_trains(model):
    rng = np.random.default_rng(0)
    labels, masks = random_objects(rng, 2, NUM_THINGS, (IMG_SIZE, IMG_SIZE))
    box_only = make_data_sample(
        labels,
        None,
        boxes=np.array([[4., 4., 20., 20.], [30., 30., 60., 50.]]))
    losses = model_losses(model, [make_data_sample(labels, masks), box_only])
    assert all_finite(losses)


def test_gt_label_out_of_range_names_setting(model):
    samples = instance_batch(NUM_THINGS, num_objects=(1, 1))
    samples[1].gt_instances.labels[:] = NUM_THINGS + 2
    with pytest.raises(ValueError, match=r'GT label 7 .*num_classes=5'):
        model_losses(model, samples)


def test_non_finite_input_names_the_tensor(model):
    samples = instance_batch(NUM_THINGS, num_objects=(2, 2))
    images = render_images(samples)
    images[0, :, :8, :8] = float('nan')
    with pytest.raises(ValueError, match=r'pred_\w+ of .* contains NaN/inf'):
        model.loss(images, samples)


def test_checkpoint_with_wrong_class_count(model, tmp_path):
    """Fine-tuning path: the class-dependent tensors keep the model's shape,
    everything else is loaded, and a warning names both class counts."""
    other = build_tiny_model('instance')
    other.panoptic_head.predictor.class_embed = torch.nn.Linear(32, 7)
    state = {
        k: v + 1.0
        for k, v in other.state_dict().items() if v.is_floating_point()
    }
    path = tmp_path / 'seven_classes.pth'
    torch.save(dict(state_dict=state), path)
    target = build_tiny_model('instance')
    before = target.panoptic_head.predictor.class_embed.weight.clone()
    logger = MMLogger.get_current_instance()
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logger.addHandler(handler)
    try:
        load_checkpoint(target, str(path), map_location='cpu')
    finally:
        logger.removeHandler(handler)
    text = '\n'.join(r.getMessage() for r in records)
    assert 'class_embed.weight (7x32 -> 5x32)' in text
    assert 'class_embed.bias (7 -> 5)' in text
    assert torch.equal(target.panoptic_head.predictor.class_embed.weight,
                       before)
    key = 'panoptic_head.predictor.mask_embed.layers.0.weight'
    assert torch.equal(target.state_dict()[key], state[key])
