# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
"""Training runs of the analysis studies (convergence, ablations): each run
is ``tools/train.py`` on a dumped config in a fresh process, and its metrics
are read back from MMEngine's ``scalars.json``."""
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, Sequence

from mmengine.config import Config

REPO_ROOT = Path(__file__).resolve().parents[2]


def train_in_subprocess(cfg: Config, work_dir: Path) -> float:
    """Dump ``cfg`` to ``WORK_DIR/config.py`` and run ``tools/train.py`` on
    it in a fresh process.

    Returns:
        float: Wall-clock seconds of the run (start-up included).
    """
    work_dir.mkdir(parents=True, exist_ok=True)
    path = work_dir / 'config.py'
    cfg.dump(str(path))
    start = time.perf_counter()
    subprocess.run([
        sys.executable,
        str(REPO_ROOT / 'tools' / 'train.py'),
        str(path), '--work-dir',
        str(work_dir)
    ],
                   cwd=REPO_ROOT,
                   check=True)
    return time.perf_counter() - start


def collect_metrics(work_dir: Path,
                    metrics: Sequence[str]) -> Dict[int, Dict[str, float]]:
    """The ``metrics`` of every validation of the newest run in
    ``work_dir``, by iteration.

    MMEngine logs the metrics of an iteration-based run with ``step`` 0;
    the k-th validation is after ``k * val_interval`` iterations (or the
    last one), read from the run's ``config.py``.
    """
    runs = sorted(work_dir.glob('*/vis_data/scalars.json'))
    if not runs:
        return {}
    train_cfg = Config.fromfile(str(work_dir / 'config.py')).train_cfg
    points: Dict[int, Dict[str, float]] = {}
    with open(runs[-1]) as f:
        for line in f:
            record = json.loads(line)
            if any(key in record for key in metrics):
                step = min((len(points) + 1) * train_cfg.val_interval,
                           train_cfg.max_iters)
                points[step] = {
                    key: record[key]
                    for key in metrics if key in record
                }
    return points
