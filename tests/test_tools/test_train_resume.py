# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
"""tools/train.py with a stock MMDetection config: train, then --resume."""
import json
import subprocess
import sys
from pathlib import Path

import torch

from tests.conftest import REPO_ROOT

CONFIG = REPO_ROOT / 'tests/data/configs/retinanet_r18_shapes.py'


def run_train(work_dir: Path, data_root: Path, max_iters: int, *extra:
              str) -> None:
    cmd = [
        sys.executable,
        str(REPO_ROOT / 'tools/train.py'),
        str(CONFIG), '--work-dir',
        str(work_dir), *extra, '--cfg-options',
        f'train_dataloader.dataset.data_root={data_root}/',
        f'train_cfg.max_iters={max_iters}'
    ]
    subprocess.run(cmd, check=True, cwd=REPO_ROOT, capture_output=True)


def logged_iters(work_dir: Path) -> list:
    """Iterations logged by every run in ``work_dir`` (scalars.json)."""
    iters = []
    for scalars in sorted(work_dir.glob('*/vis_data/scalars.json')):
        for line in scalars.read_text().splitlines():
            record = json.loads(line)
            if 'loss' in record:
                iters.append(record['iter'])
    return iters


def test_train_then_resume_stock_mmdet_config(shapes_root, tmp_path):
    work_dir = tmp_path / 'work'
    run_train(work_dir, shapes_root, 4)
    assert (work_dir / 'iter_2.pth').is_file()
    assert (work_dir / 'iter_4.pth').is_file()
    assert logged_iters(work_dir) == [1, 2, 3, 4]

    run_train(work_dir, shapes_root, 6, '--resume')
    # the resumed run continues at iteration 5, not 1
    assert logged_iters(work_dir) == [1, 2, 3, 4, 5, 6]
    ckpt = torch.load(work_dir / 'iter_6.pth', weights_only=True)
    assert ckpt['meta']['iter'] == 6

    # --resume PATH resumes from an explicit (older) checkpoint
    run_train(work_dir, shapes_root, 3, '--resume',
              str(work_dir / 'iter_2.pth'))
    assert logged_iters(work_dir)[-1:] == [3]
