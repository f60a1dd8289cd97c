# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
"""Tiny Mask DINO models and hand-made data samples for the model tests.

The shapes configs are shrunk further (ResNet-18 with 16 base channels,
hidden size 32, 2 encoder / 2 decoder layers, 10 queries, 256 mask points)
so that a forward/backward pass on two 64x64 images takes a fraction of a
second on the CPU.
"""
import logging
from typing import Optional, Sequence, Tuple

import numpy as np
import pytest
import torch
from mmdet.structures import DetDataSample
from mmdet.structures.bbox import HorizontalBoxes
from mmdet.structures.mask import BitmapMasks
from mmengine.config import Config
from mmengine.logging import MMLogger
from mmengine.structures import InstanceData, PixelData
from torch import nn

from tests.conftest import REPO_ROOT

CONFIG_FILES = dict(
    instance='maskdino_r18-tiny_1xb4-2.2k_shapes.py',
    panoptic='maskdino_r18-tiny_1xb4-2k_shapes-panoptic.py',
    semantic='maskdino_r18-tiny_1xb4-2k_shapes-semantic.py',
    det='maskdino_r18-tiny_1xb4-2k_shapes-det.py')
TINY_QUERIES = 10
TINY_DEC_LAYERS = 2
TINY_HIDDEN = 32
TINY_POINTS = 256
IMG_SIZE = 64
IGNORE_INDEX = 255


@pytest.fixture(autouse=True, scope='module')
def one_thread():
    """Run a test module on one CPU thread (the tensors are tiny; more
    threads only add overhead and contend with other processes)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_config(task: str,
                predictor: Optional[dict] = None,
                **test_cfg) -> Config:
    """The shapes config of ``task`` shrunk to a test-sized model.

    Args:
        task (str): One of ``CONFIG_FILES``.
        predictor (dict, optional): Further overrides of the predictor
            (e.g. ``initialize_box_type``).
        **test_cfg: Overrides of ``model.test_cfg`` (e.g. ``instance_on``).

    Returns:
        Config: The full config; ``cfg.model`` is ready for ``MODELS.build``.
    """
    cfg = Config.fromfile(
        str(REPO_ROOT / 'configs' / 'maskdino' / CONFIG_FILES[task]))
    tiny = dict(
        backbone=dict(base_channels=16),
        panoptic_head=dict(
            pixel_decoder=dict(
                in_channels=[16, 32, 64, 128],
                feat_channels=TINY_HIDDEN,
                mask_dim=TINY_HIDDEN,
                ffn_channels=64),
            predictor=dict(
                hidden_dim=TINY_HIDDEN,
                num_queries=TINY_QUERIES,
                ffn_dim=64,
                num_layers=TINY_DEC_LAYERS,
                mask_dim=TINY_HIDDEN,
                denoising=dict(dn_num=TINY_QUERIES),
                **(predictor or {})),
            criterion=dict(num_points=TINY_POINTS)),
        test_cfg=test_cfg)
    cfg.merge_from_dict(dict(model=tiny))
    return cfg


def build_tiny_model(task: str,
                     predictor: Optional[dict] = None,
                     **test_cfg) -> nn.Module:
    """Build (and initialise) the tiny model of ``task``; see
    :func:`tiny_config`."""
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules

    import mmmaskdino  # noqa: F401  (registers the Mask DINO modules)
    register_all_modules()
    model = MODELS.build(tiny_config(task, predictor, **test_cfg).model)
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.WARNING)  # init_weights logs every parameter
    try:
        model.init_weights()
    finally:
        logger.setLevel(level)
    return model


def model_classes(model: nn.Module) -> Tuple[int, int]:
    """``(num_things_classes, num_stuff_classes)`` of a built model."""
    head = model.panoptic_head
    return head.num_things_classes, head.num_stuff_classes


def _box_of(mask: np.ndarray) -> Tuple[float, float, float, float]:
    """Tight xyxy box (exclusive right/bottom edge) of a binary mask."""
    ys, xs = np.nonzero(mask)
    return float(xs.min()), float(ys.min()), float(xs.max() +
                                                   1), float(ys.max() + 1)


def random_objects(rng: np.random.Generator, num_objects: int, num_things: int,
                   img_shape: Sequence[int]) -> Tuple[np.ndarray, np.ndarray]:
    """``num_objects`` random rectangles with random thing labels.

    Returns:
        tuple: ``labels (n,)`` int64 and ``masks (n, h, w)`` uint8.
    """
    h, w = img_shape
    masks = np.zeros((num_objects, h, w), dtype=np.uint8)
    for i in range(num_objects):
        x0, y0 = rng.integers(0, w - 16), rng.integers(0, h - 16)
        bw, bh = rng.integers(8, 16), rng.integers(8, 16)
        masks[i, y0:y0 + bh, x0:x0 + bw] = 1
    labels = rng.integers(0, num_things, size=num_objects)
    return labels.astype(np.int64), masks


def make_data_sample(labels: np.ndarray,
                     masks: Optional[np.ndarray],
                     img_shape: Sequence[int] = (IMG_SIZE, IMG_SIZE),
                     ori_shape: Optional[Sequence[int]] = None,
                     batch_input_shape: Optional[Sequence[int]] = None,
                     boxes: Optional[np.ndarray] = None,
                     sem_seg: Optional[np.ndarray] = None) -> DetDataSample:
    """A hand-made :class:`DetDataSample`.

    Args:
        labels (np.ndarray): ``(n,)`` contiguous class ids.
        masks (np.ndarray, optional): ``(n, h, w)`` binary masks at
            ``img_shape``; None makes a box-only sample (then ``boxes``
            must be given).
        img_shape, ori_shape, batch_input_shape: Metainfo; ``ori_shape``
            and ``batch_input_shape`` default to ``img_shape``.
        boxes (np.ndarray, optional): ``(n, 4)`` xyxy pixels; by default the
            tight boxes of ``masks``.
        sem_seg (np.ndarray, optional): ``(h, w)`` label map (255 = ignore)
            stored as ``gt_sem_seg``.

    Returns:
        DetDataSample: With ``gt_instances`` (``labels``, ``bboxes`` as
        :class:`HorizontalBoxes`, ``masks`` as :class:`BitmapMasks` unless
        box-only) and, if given, ``gt_sem_seg``.
    """
    img_shape = tuple(img_shape)
    batch_input_shape = tuple(batch_input_shape or img_shape)
    sample = DetDataSample(
        metainfo=dict(
            img_shape=img_shape,
            ori_shape=tuple(ori_shape or img_shape),
            batch_input_shape=batch_input_shape,
            pad_shape=batch_input_shape))
    if boxes is None:
        boxes = np.array([_box_of(m) for m in masks],
                         dtype=np.float32).reshape(-1, 4)
    gt = InstanceData(
        labels=torch.as_tensor(labels, dtype=torch.long),
        bboxes=HorizontalBoxes(torch.as_tensor(boxes, dtype=torch.float32)))
    if masks is not None:
        gt.masks = BitmapMasks(masks, *img_shape)
    sample.gt_instances = gt
    if sem_seg is not None:
        sample.gt_sem_seg = PixelData(
            sem_seg=torch.as_tensor(sem_seg, dtype=torch.long)[None])
    return sample


def empty_sample(img_shape: Sequence[int] = (IMG_SIZE, IMG_SIZE),
                 with_sem_seg: bool = False) -> DetDataSample:
    """A sample without any GT object: an empty mask field and, if
    ``with_sem_seg``, a label map that is all ignore (255)."""
    sem_seg = np.full(img_shape, IGNORE_INDEX) if with_sem_seg else None
    return make_data_sample(
        np.zeros(0, dtype=np.int64),
        np.zeros((0, *img_shape), dtype=np.uint8),
        img_shape,
        boxes=np.zeros((0, 4), dtype=np.float32),
        sem_seg=sem_seg)


def stuff_label_map(labels: np.ndarray, masks: np.ndarray, num_things: int,
                    num_stuff: int) -> np.ndarray:
    """Label map: top half stuff ``num_things``, bottom half the last stuff
    class, things painted on top, a 255 ignore border of two pixels."""
    h, w = masks.shape[-2:]
    sem = np.full((h, w), num_things, dtype=np.int64)
    sem[h // 2:] = num_things + num_stuff - 1
    for label, mask in zip(labels, masks):
        sem[mask > 0] = label
    sem[:2] = IGNORE_INDEX
    return sem


def render_images(samples: Sequence[DetDataSample],
                  seed: int = 0,
                  noise: float = 0.1) -> torch.Tensor:
    """Normalised ``(bs, 3, H_pad, W_pad)`` inputs where every GT object is
    painted with a class-dependent colour over weak noise."""
    gen = torch.Generator().manual_seed(seed)
    pad_h, pad_w = samples[0].metainfo['batch_input_shape']
    images = noise * torch.randn(len(samples), 3, pad_h, pad_w, generator=gen)
    palette = torch.linspace(-1.5, 1.5, 9)
    for img, sample in zip(images, samples):
        gt = sample.gt_instances
        if 'masks' not in gt:
            continue
        masks = gt.masks.to_tensor(dtype=torch.bool, device='cpu')
        for label, mask in zip(gt.labels.tolist(), masks):
            h, w = mask.shape
            colour = torch.stack(
                [palette[label], -palette[label], palette[(label * 3) % 9]])
            img[:, :h, :w][:, mask] = colour[:, None]
    return images


def instance_batch(num_things: int,
                   num_objects: Sequence[int] = (1, 3),
                   seed: int = 0,
                   **sample_kwargs) -> list:
    """Samples with ``num_objects[i]`` random rectangles in image ``i``."""
    rng = np.random.default_rng(seed)
    samples = []
    for n in num_objects:
        labels, masks = random_objects(rng, n, num_things,
                                       (IMG_SIZE, IMG_SIZE))
        samples.append(make_data_sample(labels, masks, **sample_kwargs))
    return samples


def panoptic_batch(num_things: int,
                   num_stuff: int,
                   num_objects: Sequence[int] = (1, 2),
                   seed: int = 0) -> list:
    """Instance samples plus a ``gt_sem_seg`` with stuff regions and ignore
    pixels (see :func:`stuff_label_map`)."""
    rng = np.random.default_rng(seed)
    samples = []
    for n in num_objects:
        labels, masks = random_objects(rng, n, max(num_things, 1),
                                       (IMG_SIZE, IMG_SIZE))
        if num_things == 0:
            labels, masks = labels[:0], masks[:0]
        sem = stuff_label_map(labels, masks, num_things, num_stuff)
        samples.append(make_data_sample(labels, masks, sem_seg=sem))
    return samples


def batch_for(model: nn.Module, seed: int = 0, **kwargs) -> list:
    """A two-image training batch suited to the model's class split."""
    num_things, num_stuff = model_classes(model)
    if num_stuff:
        return panoptic_batch(num_things, num_stuff, seed=seed, **kwargs)
    return instance_batch(num_things, seed=seed, **kwargs)


def head_loss(model, samples, seed: int = 0) -> dict:
    """``panoptic_head.loss`` on the backbone features of rendered images."""
    torch.manual_seed(seed)
    feats = model.extract_feat(render_images(samples))
    return model.panoptic_head.loss(feats, samples)


def all_finite(losses: dict) -> bool:
    """Whether every loss value is a finite tensor."""
    return all(bool(torch.isfinite(v).all()) for v in losses.values())


def total_loss(losses: dict) -> torch.Tensor:
    """Sum of every loss term."""
    return sum(losses.values())


def expected_loss_keys(model: nn.Module) -> set:
    """Loss keys of a training step with denoising: final, ``d{i}.`` for
    the aux sets (initial prediction + all but the last decoder layer),
    ``enc_`` with two-stage selection and the matching ``dn_`` keys (the DN
    initial prediction is supervised only with two-stage selection)."""
    predictor = model.panoptic_head.predictor
    num_aux = predictor.num_layers - 1 + int(predictor.initial_pred)
    prefixes = [''] + [f'd{i}.' for i in range(num_aux)] + ['dn_']
    dn_start = 0 if predictor.two_stage else 1
    prefixes += [f'd{i}.dn_' for i in range(dn_start, num_aux)]
    if predictor.two_stage:
        prefixes.append('enc_')
    names = ('loss_cls', 'loss_mask', 'loss_dice', 'loss_bbox', 'loss_iou')
    return {p + n for p in prefixes for n in names}
