# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
"""Helpers of the reliability tests: run the tools in subprocesses on the
shrunk config ``configs/maskdino_tiny_reliability.py`` and read their logs."""
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Sequence

from tests.conftest import REPO_ROOT

CONFIG = Path(__file__).resolve().parent / 'configs' / \
    'maskdino_tiny_reliability.py'
TRAIN_PY = REPO_ROOT / 'tools' / 'train.py'


def tool_env() -> Dict[str, str]:
    """Environment of a tool subprocess: one OpenMP thread (the model is
    tiny; more threads only contend with other processes on the machine)."""
    return dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1')


def train_cmd(work_dir: Path,
              data_root: Path,
              *extra: str,
              cfg_options: Sequence[str] = ()) -> List[str]:
    """Command line of ``tools/train.py`` on the reliability config."""
    return [
        sys.executable,
        str(TRAIN_PY),
        str(CONFIG), '--work-dir',
        str(work_dir), *extra, '--cfg-options',
        f'train_dataloader.dataset.data_root={data_root}/', *cfg_options
    ]


def run_tool(cmd: Sequence[str], timeout: float = 240) -> str:
    """Run a tool, fail with its output if it fails; returns stdout+stderr."""
    proc = subprocess.run(
        list(cmd),
        cwd=REPO_ROOT,
        env=tool_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-4000:]
    return proc.stdout


def run_dirs(work_dir: Path) -> List[Path]:
    """The timestamped run folders of ``work_dir``, oldest first."""
    return sorted(
        p.parent.parent for p in work_dir.glob('*/vis_data/scalars.json'))


def train_records(run_dir: Path) -> Dict[int, dict]:
    """Training records of one run's ``scalars.json`` keyed by iteration."""
    records = {}
    for line in (run_dir / 'vis_data' /
                 'scalars.json').read_text().splitlines():
        record = json.loads(line)
        if 'loss' in record:
            records[record['iter']] = record
    return records


def loss_terms(record: dict) -> Dict[str, float]:
    """The loss entries (``loss`` and every ``*loss_*`` term) of a record."""
    return {k: v for k, v in record.items() if 'loss' in k}
