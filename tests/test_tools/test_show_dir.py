# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
"""Visual outputs: ``tools/test.py --show-dir`` and training log backends."""
import importlib.util
import json
import subprocess
import sys

import mmcv
import pytest
from mmengine.config import Config

from mmmaskdino.apis import dataset_meta_from_config
from tests.conftest import REPO_ROOT
from tests.test_apis.utils import (changed_pixels, save_random_checkpoint,
                                   shapes_config)

CONFIG = 'maskdino_r18-tiny_1xb4-2.2k_shapes'


@pytest.fixture(scope='module')
def tiny(shapes_root, tmp_path_factory) -> tuple:
    """Config file and random checkpoint of a tiny instance model."""
    root = tmp_path_factory.mktemp('show_dir')
    cfg = shapes_config(CONFIG, shapes_root)
    cfg_file = root / 'tiny.py'
    cfg.dump(str(cfg_file))
    ckpt = save_random_checkpoint(cfg, root / 'tiny.pth',
                                  dataset_meta_from_config(cfg))
    return cfg_file, ckpt


def run_tool(tool: str, *args: str) -> None:
    """Run ``tools/<tool>.py`` in a fresh process."""
    proc = subprocess.run(
        [sys.executable,
         str(REPO_ROOT / 'tools' / tool), *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_show_dir_writes_drawn_predictions(tiny, shapes_root, tmp_path):
    cfg_file, ckpt = tiny
    run_tool('test.py', str(cfg_file), str(ckpt), '--work-dir', str(tmp_path),
             '--show-dir', 'vis')
    drawn = sorted(tmp_path.glob('*/vis/*.png'))
    val_images = sorted((shapes_root / 'images/val').glob('*.png'))
    assert [p.name for p in drawn] == [p.name for p in val_images]
    for image, vis in zip(val_images, drawn):
        original, vis = mmcv.imread(image), mmcv.imread(vis)
        width = original.shape[1]
        # ground truth on the left, predictions on the right
        assert vis.shape[1] == 2 * width
        assert changed_pixels(original, vis[:, width:]) > 100


def test_training_logs_go_to_local_and_tensorboard(tiny, tmp_path):
    pytest.importorskip('tensorboard')
    cfg_file, _ = tiny
    run_tool('train.py', str(cfg_file), '--work-dir', str(tmp_path),
             '--cfg-options', 'train_cfg.max_iters=2',
             'default_hooks.logger.interval=1')
    vis_data = next(tmp_path.glob('*/vis_data'))
    records = [
        json.loads(line)
        for line in (vis_data / 'scalars.json').read_text().splitlines()
        if '"loss"' in line
    ]
    assert [r['iter'] for r in records] == [1, 2]
    for record in records:
        assert record['loss'] > 0 and record['loss_mask'] >= 0
        assert record['lr'] > 0
    events = list(vis_data.glob('events.out.tfevents.*'))
    assert len(events) == 1 and events[0].stat().st_size > 100


def test_tensorboard_backend_only_when_installed(monkeypatch):
    path = str(REPO_ROOT / 'configs/maskdino' / f'{CONFIG}.py')
    installed = Config.fromfile(path).visualizer.vis_backends
    monkeypatch.setattr(sys, 'meta_path', [])  # nothing can be found
    missing = Config.fromfile(path).visualizer.vis_backends
    assert [b['type'] for b in missing] == ['LocalVisBackend']
    assert installed[0] == missing[0]
    has_tensorboard = importlib.util.find_spec('tensorboard') is not None
    assert len(installed) == 1 + has_tensorboard
