# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
"""DetInferencer, ``mmmaskdino.apis`` and the demos on tiny shapes models."""
import re
import runpy
import sys
from pathlib import Path

import cv2
import mmcv
import numpy as np
import pytest
import torch
from mmdet.apis import DetInferencer
from mmdet.registry import MODELS
from mmengine.config import Config

from mmmaskdino.apis import (dataset_meta_from_config, get_model_info,
                             inference_on_folder, inference_on_video,
                             init_maskdino, list_models)
from tests.conftest import REPO_ROOT
from tests.test_apis.utils import (changed_pixels, save_random_checkpoint,
                                   shapes_config)

TASK_CONFIGS = {
    'instance': 'maskdino_r18-tiny_1xb4-2.2k_shapes',
    'panoptic': 'maskdino_r18-tiny_1xb4-2k_shapes-panoptic',
    'semantic': 'maskdino_r18-tiny_1xb4-2k_shapes-semantic',
}


@pytest.fixture(scope='module')
def tiny_models(shapes_root, tmp_path_factory) -> dict:
    """``task -> (config, checkpoint)`` of randomly initialised tiny models
    whose checkpoints carry the dataset's class names and palette."""
    ckpt_dir = tmp_path_factory.mktemp('ckpts')
    models = {}
    for task, name in TASK_CONFIGS.items():
        cfg = shapes_config(name, shapes_root)
        # untrained masks overlap everywhere: keep every segment
        cfg.model.test_cfg.iou_thr = 0.0
        ckpt = save_random_checkpoint(cfg, ckpt_dir / f'{task}.pth',
                                      dataset_meta_from_config(cfg))
        models[task] = (cfg, ckpt)
    return models


def _val_images(shapes_root: Path, num: int) -> list:
    return sorted((shapes_root / 'images/val').glob('*.png'))[:num]


@pytest.mark.parametrize('task', sorted(TASK_CONFIGS))
def test_det_inferencer_draws_every_task(task, tiny_models, shapes_root,
                                         tmp_path):
    cfg, ckpt = tiny_models[task]
    image = _val_images(shapes_root, 1)[0]
    inferencer = DetInferencer(model=cfg, weights=str(ckpt), device='cpu')
    assert inferencer.model.dataset_meta['classes'] == tuple(
        dataset_meta_from_config(cfg)['classes'])
    out = inferencer(
        str(image),
        out_dir=str(tmp_path),
        pred_score_thr=0.0,
        return_datasamples=True)
    sample = out['predictions'][0]
    drawn = mmcv.imread(tmp_path / 'vis' / image.name)
    original = mmcv.imread(image)
    h, w = original.shape[:2]
    if task == 'instance':
        masks = sample.pred_instances.masks
        assert masks.shape[1:] == (h, w) and len(masks) == 100
        scores = sample.pred_instances.scores
        assert ((scores >= 0) & (scores <= 1)).all()
        covered = masks.any(0).numpy()
        diff = np.abs(original.astype(int) - drawn).sum(-1) > 0
        # masks are blended into the image wherever they are
        assert diff[covered].mean() > 0.9 and covered.sum() > 100
    elif task == 'panoptic':
        pan = sample.pred_panoptic_seg.sem_seg[0]
        assert pan.shape == (h, w)
        # every pixel is a segment of one of the 8 classes or void (= 8)
        assert ((pan % 1000) <= 8).all()
        covered = (pan % 1000 < 8).numpy()
        diff = np.abs(original.astype(int) - drawn).sum(-1) > 0
        assert covered.sum() > 100 and diff[covered].mean() > 0.9
    else:
        sem = sample.pred_sem_seg.sem_seg[0]
        assert sem.shape == (h, w) and int(sem.max()) < 8
        # every pixel belongs to a drawn class region
        assert changed_pixels(original, drawn) > 0.9 * h * w


def test_metafile_names_resolve():
    models = list_models()
    assert len(models) == 8
    assert all(Path(m['config']).is_file() for m in models.values())
    info = get_model_info('maskdino_r50_4xb4-lsj-50e_coco')
    assert Path(info['config']).is_file()
    assert info['weights'].endswith('mask46.3ap_box51.7ap.pth')
    assert {r['Metrics'].get('box AP') for r in info['results']} >= {51.7}
    with pytest.raises(KeyError, match='known models'):
        get_model_info('maskdino_unknown')


def test_init_maskdino_by_name_takes_classes_from_config(tmp_path):
    """A checkpoint without dataset_meta (like the official ones) gets the
    config's COCO panoptic class names, not DetInferencer's 80 defaults."""
    name = 'maskdino_r50_4xb4-lsj-50e_coco-panoptic'
    cfg = Config.fromfile(get_model_info(name)['config'])
    cfg.model.backbone.init_cfg = None
    ckpt = tmp_path / 'no_meta.pth'
    torch.save({'state_dict': MODELS.build(cfg.model).state_dict()}, ckpt)
    inferencer = init_maskdino(name, weights=str(ckpt), task='panoptic')
    meta = inferencer.model.dataset_meta
    assert (len(meta['thing_classes']), len(meta['stuff_classes']),
            len(meta['classes'])) == (80, 53, 133)
    assert inferencer.visualizer.dataset_meta is meta
    test_cfg = inferencer.cfg.model.test_cfg
    assert (test_cfg.panoptic_on, test_cfg.instance_on,
            test_cfg.semantic_on) == (True, False, False)
    with pytest.raises(ValueError, match='task must be one of'):
        init_maskdino(inferencer.cfg, str(ckpt), task='depth')


def test_inference_on_folder_in_batches(tiny_models, shapes_root, tmp_path,
                                        capsys):
    cfg, ckpt = tiny_models['instance']
    images = _val_images(shapes_root, 3)
    folder = tmp_path / 'images'
    folder.mkdir()
    for image in images:
        (folder / image.name).write_bytes(image.read_bytes())
    inferencer = init_maskdino(cfg, str(ckpt), task='instance')
    results = inference_on_folder(
        inferencer,
        str(folder),
        str(tmp_path / 'out'),
        batch_size=2,
        pred_score_thr=0.0)
    assert '3/3' in capsys.readouterr().out  # the progress bar
    assert len(results) == 3
    assert all(len(r['scores']) == 100 for r in results)
    for image in images:
        drawn = mmcv.imread(tmp_path / 'out/vis' / image.name)
        assert changed_pixels(mmcv.imread(image), drawn) > 100
        assert (tmp_path / 'out/preds' / f'{image.stem}.json').is_file()


def test_empty_panoptic_result_is_drawn_as_nothing(tiny_models, shapes_root,
                                                   tmp_path):
    """A model that finds nothing (class prior 1e-4) gives an all-void
    panoptic map, which MMDetection's visualizer cannot draw."""
    cfg, _ = tiny_models['panoptic']
    ckpt = save_random_checkpoint(
        cfg,
        tmp_path / 'empty.pth',
        dataset_meta_from_config(cfg),
        class_bias=-9.0)
    image = _val_images(shapes_root, 1)[0]
    inferencer = init_maskdino(cfg, str(ckpt), task='panoptic')
    result = inference_on_folder(
        inferencer,
        str(image),
        str(tmp_path / 'out'),
        save_pred=False,
        show_progress=False)[0]
    assert (result['panoptic_seg'] == 0).all()  # VOID everywhere
    drawn = mmcv.imread(tmp_path / 'out/vis' / image.name)
    assert changed_pixels(mmcv.imread(image), drawn) == 0


def _run_demo(script: str, argv: list, monkeypatch) -> None:
    monkeypatch.setattr(sys, 'argv', [script] + argv)
    runpy.run_path(str(REPO_ROOT / 'demo' / script), run_name='__main__')


@pytest.mark.parametrize('task', ['panoptic', 'semantic'])
def test_image_demo(task, tiny_models, shapes_root, tmp_path, monkeypatch,
                    capsys):
    cfg, ckpt = tiny_models[task]
    cfg_file = tmp_path / 'cfg.py'
    cfg.dump(str(cfg_file))
    image = _val_images(shapes_root, 1)[0]
    _run_demo('image_demo.py', [
        str(image),
        str(cfg_file), '--weights',
        str(ckpt), '--task', task, '--out-dir',
        str(tmp_path / 'out'), '--pred-score-thr', '0.5'
    ], monkeypatch)
    speed = re.search(r'1 images in ([\d.]+) s: ([\d.]+) images/s',
                      capsys.readouterr().out)
    assert speed and float(speed.group(2)) > 0
    drawn = mmcv.imread(tmp_path / 'out/vis' / image.name)
    original = mmcv.imread(image)
    seg = mmcv.imread(tmp_path / 'out/preds' / f'{image.stem}_{task}_seg.png')
    assert seg.shape[:2] == original.shape[:2]
    # panoptic: non-void pixels (void is black); semantic: every pixel
    covered = seg.any(-1) if task == 'panoptic' else np.ones(seg.shape[:2])
    diff = np.abs(original.astype(int) - drawn).sum(-1) > 0
    assert covered.sum() > 100 and diff[covered.astype(bool)].mean() > 0.9


def test_video_demo(tiny_models, shapes_root, tmp_path, monkeypatch):
    cfg, ckpt = tiny_models['instance']
    cfg_file = tmp_path / 'cfg.py'
    cfg.dump(str(cfg_file))
    frame = mmcv.imread(_val_images(shapes_root, 1)[0])
    frame = mmcv.imresize(frame, (128, 96))
    video = tmp_path / 'in.avi'
    writer = cv2.VideoWriter(
        str(video), cv2.VideoWriter_fourcc(*'MJPG'), 5, (128, 96))
    for _ in range(3):
        writer.write(frame)
    writer.release()
    out = tmp_path / 'out.avi'
    _run_demo('video_demo.py', [
        str(video),
        str(cfg_file), '--weights',
        str(ckpt), '--out',
        str(out), '--fourcc', 'MJPG', '--pred-score-thr', '0'
    ], monkeypatch)
    frames = list(mmcv.VideoReader(str(out)))
    inputs = list(mmcv.VideoReader(str(video)))
    assert len(frames) == 3
    assert all(changed_pixels(a, b) > 1000 for a, b in zip(inputs, frames))
    # the helper itself returns the number of frames written
    inferencer = init_maskdino(cfg, str(ckpt))
    assert inference_on_video(
        inferencer,
        str(video),
        str(tmp_path / 'o.avi'),
        fourcc='MJPG',
        show_progress=False) == 3
