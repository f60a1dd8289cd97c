# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
"""Ground truth scored as predictions: the bundled data and MMDetection's
metrics agree (100), and a perturbed copy scores clearly less."""
from pathlib import Path
from typing import List

import pytest
import torch
from mmdet.evaluation.functional import INSTANCE_OFFSET
from mmdet.structures import DetDataSample
from mmengine import Config
from mmengine.evaluator import Evaluator
from mmengine.structures import InstanceData, PixelData

from tests.test_datasets.conftest import CFG_DIR, build_shapes_dataset

NUM_THINGS, NUM_CLASSES = 5, 8


def evaluate(task: str, root: Path, perturb: bool) -> dict:
    """Score the val split of ``task`` with predictions made from its ground
    truth (as the config's test pipeline yields it), perturbed or not."""
    dataset = build_shapes_dataset(task, 'val', root)
    cfg = Config.fromfile(str(CFG_DIR / f'shapes_{task}.py'))
    metric_cfgs = cfg.val_evaluator
    if not isinstance(metric_cfgs, list):
        metric_cfgs = [metric_cfgs]
    for metric_cfg in metric_cfgs:
        for key in ('ann_file', 'seg_prefix'):
            if key in metric_cfg:
                metric_cfg[key] = metric_cfg[key].replace(
                    'data/shapes', str(root), 1)
        if metric_cfg.type == 'CocoPanopticMetric':
            metric_cfg.nproc = 1
    evaluator = Evaluator(list(metric_cfgs))
    evaluator.dataset_meta = dataset.metainfo
    samples = []
    for idx in range(len(dataset)):
        sample = dataset[idx]['data_samples']
        PRED_FNS[task](sample, perturb)
        samples.append(sample)
    evaluator.process(samples)
    return evaluator.evaluate(len(samples))


def _instance_pred(sample: DetDataSample, perturb: bool) -> None:
    """``pred_instances`` equal to the non-crowd ground truth; with
    ``perturb``, of every four instances one is dropped, one relabelled and
    one shifted by 40% of its width with its mask shrunk."""
    gt = sample.gt_instances
    boxes = gt.bboxes.tensor.clone()
    labels = gt.labels.clone()
    pred = InstanceData()
    if 'masks' in gt:
        pred.masks = torch.from_numpy(gt.masks.to_ndarray()).bool()
    keep = torch.ones(len(gt), dtype=torch.bool)
    for k in range(len(gt) if perturb else 0):
        if k % 4 == 0:
            keep[k] = False
        elif k % 4 == 1:
            labels[k] = (labels[k] + 1) % NUM_THINGS
        elif k % 4 == 2:
            shift = int(0.4 * (boxes[k, 2] - boxes[k, 0]))
            boxes[k, 0::2] += shift
            if 'masks' in pred:
                pred.masks[k] = _erode(pred.masks[k].roll(shift, dims=1), 2)
    pred.bboxes, pred.labels = boxes, labels
    pred.scores = torch.ones(len(gt))
    sample.pred_instances = pred[keep]


def _erode(mask: torch.Tensor, steps: int) -> torch.Tensor:
    """Binary erosion by a 3x3 cross, ``steps`` times."""
    for _ in range(steps):
        shrunk = mask.clone()
        for dim in (0, 1):
            for shift in (1, -1):
                shrunk &= mask.roll(shift, dims=dim)
        mask = shrunk
    return mask


def _panoptic_pred(sample: DetDataSample, perturb: bool) -> None:
    """``pred_panoptic_seg`` in MMDetection's encoding (``label + id *
    INSTANCE_OFFSET``, void = number of classes) built from the ground
    truth; crowd regions are left void. With ``perturb``, one thing in three
    is relabelled, one dropped, and every other scene swaps sky and grass.
    ``pred_instances`` come from :func:`_instance_pred`."""
    _instance_pred(sample, perturb)
    sem = sample.gt_sem_seg.sem_seg[0].long()
    pan = torch.full_like(sem, NUM_CLASSES)
    stuff = (sem >= NUM_THINGS) & (sem < NUM_CLASSES)
    pan[stuff] = sem[stuff]
    if perturb and sample.img_id % 2:
        sky, grass = NUM_THINGS, NUM_THINGS + 1
        pan[sem == sky], pan[sem == grass] = grass, sky
    gt = sample.gt_instances
    masks = torch.from_numpy(gt.masks.to_ndarray()).bool()
    for k, (mask, label) in enumerate(zip(masks, gt.labels.tolist())):
        if perturb and k % 3 == 0:
            label = (label + 1) % NUM_THINGS
        elif perturb and k % 3 == 1:
            continue
        pan[mask] = label + (k + 1) * INSTANCE_OFFSET
    sample.pred_panoptic_seg = PixelData(sem_seg=pan[None])


def _semantic_pred(sample: DetDataSample, perturb: bool) -> None:
    """``pred_sem_seg`` equal to the ground truth; with ``perturb``, shifted
    by 8 pixels and with circles and squares swapped."""
    sem = sample.gt_sem_seg.sem_seg.clone()
    if perturb:
        sem = sem.roll(8, dims=2)
        circle, square = sem == 0, sem == 1
        sem[circle], sem[square] = 1, 0
    sample.pred_sem_seg = PixelData(sem_seg=sem)


PRED_FNS = dict(
    instance=_instance_pred,
    detection=_instance_pred,
    panoptic=_panoptic_pred,
    semantic=_semantic_pred)
EXPECTED_KEYS = dict(
    instance=['coco/bbox_mAP', 'coco/segm_mAP'],
    detection=['coco/bbox_mAP'],
    panoptic=['coco_panoptic/PQ', 'coco/bbox_mAP', 'coco/segm_mAP'],
    semantic=['mIoU'])


def _percent(results: dict, keys: List[str]) -> List[float]:
    """The named results in percent (COCO AP comes as a fraction)."""
    return [results[k] * (100 if k.startswith('coco/') else 1) for k in keys]


@pytest.mark.parametrize('task', list(PRED_FNS))
def test_ground_truth_scores_100(shapes_root, task):
    results = evaluate(task, shapes_root, perturb=False)
    scores = _percent(results, EXPECTED_KEYS[task])
    assert all(score >= 99.9 for score in scores), results


@pytest.mark.parametrize('task', list(PRED_FNS))
def test_perturbed_ground_truth_scores_less(shapes_root, task):
    results = evaluate(task, shapes_root, perturb=True)
    scores = _percent(results, EXPECTED_KEYS[task])
    assert all(score < 90 for score in scores), results
