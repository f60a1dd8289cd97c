# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
"""Inference helpers on top of MMDetection's ``DetInferencer``.

``init_maskdino`` builds a :class:`~mmdet.apis.DetInferencer` from a metafile
name or a config path and restricts it to one task; ``inference_on_folder``
and ``inference_on_video`` run it over many images or a video file with a
progress bar and write the drawn predictions.

Instance scores are the sigmoid class probability times the mask quality
(the mean mask probability inside the predicted mask). Their scale is lower
than softmax scores; 0.3 is a sensible threshold for drawing.
"""
import copy
import os
import os.path as osp
import sys
import warnings
from typing import List, Optional, Sequence, Union

import cv2
import mmcv
import numpy as np
import torch.nn as nn
from mmdet.apis import DetInferencer
from mmdet.evaluation.functional import INSTANCE_OFFSET
from mmdet.structures import DetDataSample
from mmengine.config import Config, ConfigDict
from mmengine.utils import ProgressBar

from mmmaskdino.datasets.metainfo import dataset_metainfo
from .model_zoo import resolve_model

TASK_FLAGS = {
    'instance': dict(instance_on=True, panoptic_on=False, semantic_on=False),
    'panoptic': dict(instance_on=False, panoptic_on=True, semantic_on=False),
    'semantic': dict(instance_on=False, panoptic_on=False, semantic_on=True),
}
DEFAULT_SCORE_THR = 0.3


def dataset_meta_from_config(cfg: Union[Config, ConfigDict]) -> dict:
    """``metainfo`` of the config's test dataset (class names, palette),
    without reading its annotation file."""
    return dataset_metainfo(cfg.test_dataloader.dataset,
                            cfg.get('default_scope', 'mmdet'))


class MaskDINOInferencer(DetInferencer):
    """``DetInferencer`` that takes class names from the config.

    When the checkpoint carries no ``meta['dataset_meta']`` (an official
    checkpoint, or ``weights=None``), ``DetInferencer`` falls back to the 80
    COCO classes; this subclass uses the config's test dataset metainfo
    instead, so panoptic models get ``thing_classes``/``stuff_classes`` and
    custom datasets their own names.
    """

    def _load_weights_to_model(self, model: nn.Module,
                               checkpoint: Optional[dict],
                               cfg: Union[Config, ConfigDict]) -> None:
        has_meta = checkpoint is not None and 'dataset_meta' in checkpoint.get(
            'meta', {})
        with warnings.catch_warnings():
            if not has_meta:
                warnings.filterwarnings(
                    'ignore', message='.*COCO classes by default')
            super()._load_weights_to_model(model, checkpoint, cfg)
        if not has_meta:
            meta = dataset_meta_from_config(cfg)
            if self.palette != 'none':
                meta['palette'] = self.palette
            meta.setdefault('palette', 'random')
            model.dataset_meta = meta

    def visualize(self, inputs: list, preds: List[DetDataSample],
                  **kwargs) -> Optional[List[np.ndarray]]:
        """Draw ``preds``; an all-void panoptic result draws nothing.

        MMDetection 3.3's ``DetLocalVisualizer`` fails on a panoptic map
        without any segment, so such maps are left out of the drawing.
        """
        num_classes = len(self.model.dataset_meta['classes'])
        preds = [drawable_prediction(p, num_classes) for p in preds]
        return super().visualize(inputs, preds, **kwargs)


def drawable_prediction(sample: DetDataSample,
                        num_classes: int) -> DetDataSample:
    """``sample`` without ``pred_panoptic_seg`` if that has no segment
    (every pixel void, ``label == num_classes``); else ``sample`` itself."""
    if 'pred_panoptic_seg' not in sample:
        return sample
    labels = sample.pred_panoptic_seg.sem_seg % INSTANCE_OFFSET
    if (labels != num_classes).any():
        return sample
    sample = sample.clone()
    del sample.pred_panoptic_seg
    return sample


def init_maskdino(model: Union[str, Config],
                  weights: Optional[str] = None,
                  device: str = 'cpu',
                  task: Optional[str] = None,
                  palette: str = 'none',
                  show_progress: bool = False) -> DetInferencer:
    """Build a ``DetInferencer`` for a Mask DINO model.

    Args:
        model: a model name from ``configs/maskdino/metafile.yml`` (e.g.
            ``'maskdino_r50_4xb4-lsj-50e_coco'``), a config path or a
            :class:`~mmengine.config.Config`.
        weights: checkpoint path or URL. Defaults to the metafile's weights
            for a model name; a config without weights gives a randomly
            initialised model (with a warning).
        device: ``'cpu'``, ``'cuda:0'``, ...
        task: ``'instance'``, ``'panoptic'`` or ``'semantic'`` to produce and
            draw only that output; ``None`` keeps the config's ``test_cfg``.
        palette: colour palette for drawing (``'none'`` = from the checkpoint
            or config, else e.g. ``'random'``, ``'coco'``).
        show_progress: show DetInferencer's own progress bar on calls.

    Returns:
        DetInferencer: call it on images (paths, folders or arrays).
    """
    if isinstance(model, str):
        config_path, weights = resolve_model(model, weights)
        cfg = Config.fromfile(config_path)
    else:
        cfg = copy.deepcopy(model)
    if task is not None:
        if task not in TASK_FLAGS:
            raise ValueError(f'task must be one of {sorted(TASK_FLAGS)}, '
                             f'got {task!r}')
        cfg.model.test_cfg.update(TASK_FLAGS[task])
    return MaskDINOInferencer(
        model=cfg,
        weights=weights,
        device=device,
        palette=palette,
        show_progress=show_progress)


def _output_stem(source: Union[str, np.ndarray], index: int) -> str:
    """File stem for the outputs of one input."""
    if isinstance(source, str):
        return osp.splitext(osp.basename(source))[0]
    return f'{index:08d}'


def inference_on_folder(inferencer: DetInferencer,
                        inputs: Union[str, Sequence],
                        out_dir: str,
                        batch_size: int = 1,
                        pred_score_thr: float = DEFAULT_SCORE_THR,
                        save_pred: bool = True,
                        show_progress: bool = True) -> List[dict]:
    """Run ``inferencer`` on many images and save the drawn predictions.

    Images are processed ``batch_size`` at a time, so memory does not grow
    with the number of images. For each input ``<stem>`` it writes

    * ``out_dir/vis/<stem>.png``: the image with predictions drawn (masks,
      boxes, labels and scores; panoptic segments; semantic regions),
    * with ``save_pred``: ``out_dir/preds/<stem>.json`` (DetInferencer's
      format: labels, scores, boxes, RLE masks), ``<stem>_panoptic_seg.png``
      (panopticapi RGB ids) and ``<stem>_semantic_seg.png`` (class ids).

    Args:
        inferencer: e.g. from :func:`init_maskdino`.
        inputs: an image path, a folder of images, or a list of paths/arrays
            (arrays in BGR order).
        out_dir: output folder.
        batch_size: images per forward pass.
        pred_score_thr: instances scoring below it are not drawn.
        save_pred: also save the predictions.
        show_progress: show a progress bar.

    Returns:
        list[dict]: one prediction dict per image (``DetInferencer.pred2dict``
        format).
    """
    items = inferencer._inputs_to_list(inputs)
    vis_dir = osp.join(out_dir, 'vis')
    os.makedirs(vis_dir, exist_ok=True)
    pred_dir = out_dir if save_pred else ''
    progress = ProgressBar(
        len(items), file=sys.stdout) if show_progress else None
    results = []
    for start in range(0, len(items), batch_size):
        batch = items[start:start + batch_size]
        out = inferencer(
            batch,
            batch_size=len(batch),
            return_datasamples=True,
            return_vis=True,
            no_save_vis=True,
            pred_score_thr=pred_score_thr)
        for offset, (sample, vis) in enumerate(
                zip(out['predictions'], out['visualization'])):
            stem = _output_stem(batch[offset], start + offset)
            mmcv.imwrite(vis[..., ::-1], osp.join(vis_dir, f'{stem}.png'))
            results.append(inferencer.pred2dict(sample, pred_dir))
            if save_pred and 'pred_sem_seg' in sample:
                labels = sample.pred_sem_seg.sem_seg[0].cpu().numpy()
                mmcv.imwrite(
                    labels.astype(np.uint8),
                    osp.join(out_dir, 'preds', f'{stem}_semantic_seg.png'))
        if progress is not None:
            progress.update(len(batch))
    return results


def inference_on_video(inferencer: DetInferencer,
                       video: str,
                       out_file: str,
                       pred_score_thr: float = DEFAULT_SCORE_THR,
                       fourcc: str = 'mp4v',
                       show_progress: bool = True) -> int:
    """Run ``inferencer`` on every frame of ``video``; write a drawn video.

    Args:
        inferencer: e.g. from :func:`init_maskdino`.
        video: input video file (anything OpenCV reads).
        out_file: output video file.
        pred_score_thr: instances scoring below it are not drawn.
        fourcc: codec of the output (``'mp4v'`` for ``.mp4``, ``'MJPG'`` for
            ``.avi``).
        show_progress: show a progress bar.

    Returns:
        int: number of frames written.
    """
    reader = mmcv.VideoReader(video)
    os.makedirs(osp.dirname(osp.abspath(out_file)), exist_ok=True)
    writer = cv2.VideoWriter(out_file, cv2.VideoWriter_fourcc(*fourcc),
                             reader.fps, (reader.width, reader.height))
    progress = ProgressBar(
        len(reader), file=sys.stdout) if show_progress else None
    written = 0
    try:
        for frame in reader:
            sample = inferencer(
                frame, return_datasamples=True)['predictions'][0]
            inferencer.visualizer.add_datasample(
                'frame',
                mmcv.bgr2rgb(frame),
                drawable_prediction(
                    sample, len(inferencer.model.dataset_meta['classes'])),
                draw_gt=False,
                pred_score_thr=pred_score_thr)
            writer.write(mmcv.rgb2bgr(inferencer.visualizer.get_image()))
            written += 1
            if progress is not None:
                progress.update()
    finally:
        writer.release()
    return written
