# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
"""The GPU path of the full-size R50 configs (skipped without CUDA).

Run on a GPU machine with ``python -m pytest tests/test_cuda -v`` after
``make install`` with a CUDA build of torch and mmcv (README, "GPU install").

* One training step, fp32 and ``--amp``, through ``tools/train.py`` for the
  instance, panoptic and semantic configs on the bundled real-format data
  (semantic samples have no boxes: their targets must still be built on the
  GPU).
* One prediction of each task (instance, panoptic, semantic, boxes-only) on
  the CPU and on CUDA with the same random weights and the same 320x320
  input: mmcv's CUDA deformable-attention kernel against its PyTorch CPU
  path. With TF32 off, the raw outputs agree within ``ATOL`` (class and mask
  logits) and ``BOX_ATOL`` (normalised boxes); float32 sums in another order
  differ by about 1e-5 per layer, and the 6 encoder and 9 decoder layers
  compound that.
"""
import copy
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmdet.utils import register_all_modules
from mmengine.config import Config

from mmmaskdino.datasets.bundled_formats import FORMAT_DIRS
from mmmaskdino.utils.tool_utils import use_fp32_optim_wrapper

pytestmark = pytest.mark.skipif(
    not torch.cuda.is_available(), reason='needs a CUDA device')

REPO = Path(__file__).resolve().parents[2]
CONFIGS = dict(
    instance='configs/maskdino/maskdino_r50_4xb4-lsj-50e_coco.py',
    panoptic='configs/maskdino/maskdino_r50_4xb4-lsj-50e_coco-panoptic.py',
    semantic='configs/maskdino/maskdino_r50_4xb4-160k_ade20k-512x512.py',
    boxes='configs/maskdino/maskdino_r50_4xb4-lsj-50e_coco-det.py')
DATA = dict(instance='coco', panoptic='coco', semantic='ade20k')
ATOL = 1e-3
BOX_ATOL = 1e-4
SIZE = 320


def fp32_config(task: str, out_dir: Path) -> str:
    """The task's config with plain fp32 training (the COCO configs train
    with AMP by default, as officially)."""
    cfg = Config.fromfile(REPO / CONFIGS[task])
    use_fp32_optim_wrapper(cfg)
    path = out_dir / f'{task}_fp32.py'
    cfg.dump(str(path))
    return str(path)


@pytest.mark.parametrize('amp', [False, True], ids=['fp32', 'amp'])
@pytest.mark.parametrize('task', sorted(DATA))
def test_one_training_step_on_cuda(task, amp, bundled_root, tmp_path):
    work_dir = tmp_path / 'work'
    config = CONFIGS[task] if amp else fp32_config(task, tmp_path)
    cmd = [
        sys.executable, 'tools/train.py', config, '--work-dir',
        str(work_dir), '--data-root',
        str(bundled_root / FORMAT_DIRS[DATA[task]]), '--cfg-options',
        'model.backbone.init_cfg=None', 'train_cfg.max_iters=1',
        'train_cfg.val_interval=10', 'default_hooks.logger.interval=1'
    ] + (['--amp'] if amp else [])
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-5000:]
    (scalars, ) = work_dir.glob('*/vis_data/scalars.json')
    (record, ) = [
        json.loads(line) for line in scalars.read_text().splitlines()
    ]
    assert math.isfinite(record['loss']) and record['loss'] > 0


def build_model(task: str) -> torch.nn.Module:
    register_all_modules()
    cfg = Config.fromfile(REPO / CONFIGS[task])
    cfg.model.backbone.init_cfg = None
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    return model.eval()


def one_image_batch() -> dict:
    torch.manual_seed(1)
    image = torch.randint(0, 256, (3, SIZE, SIZE), dtype=torch.uint8)
    sample = DetDataSample(
        metainfo=dict(
            img_shape=(SIZE, SIZE),
            ori_shape=(SIZE, SIZE),
            scale_factor=(1, 1),
            batch_input_shape=(SIZE, SIZE),
            pad_shape=(SIZE, SIZE)))
    return dict(inputs=[image], data_samples=[sample])


@pytest.mark.parametrize('task', sorted(CONFIGS))
def test_cuda_prediction_matches_cpu(task):
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    model = build_model(task)
    outputs, results = {}, {}
    for device in ('cpu', 'cuda'):
        model = model.to(device)
        with torch.no_grad():
            data = model.data_preprocessor(copy.deepcopy(one_image_batch()))
            outputs[device] = [
                t.cpu()
                for t in model._forward(data['inputs'], data['data_samples'])
            ]
            results[device] = model.test_step(one_image_batch())[0].cpu()
    (logits, masks, boxes), (c_logits, c_masks, c_boxes) = (outputs['cpu'],
                                                            outputs['cuda'])
    torch.testing.assert_close(c_logits, logits, atol=ATOL, rtol=0)
    torch.testing.assert_close(c_masks, masks, atol=ATOL, rtol=0)
    torch.testing.assert_close(c_boxes, boxes, atol=BOX_ATOL, rtol=0)
    for field in ('pred_instances', 'pred_panoptic_seg', 'pred_sem_seg'):
        assert (field in results['cpu']) == (field in results['cuda'])
    if 'pred_instances' in results['cpu']:
        cpu, cuda = (results[d].pred_instances for d in ('cpu', 'cuda'))
        assert len(cpu) == len(cuda)
        torch.testing.assert_close(cuda.scores, cpu.scores, atol=ATOL, rtol=0)
