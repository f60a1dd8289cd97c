# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
"""The ``make_bundled_dataset.py`` command line: writes once, then skips."""
import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(
    __file__).resolve().parents[2] / 'tools/misc/make_bundled_dataset.py'


def run_cli(out: Path, *extra: str) -> str:
    """Run the script with 3 train and 2 val scenes; returns its stdout."""
    cmd = [
        sys.executable,
        str(SCRIPT), '--out',
        str(out), '--num-train', '3', '--num-val', '2', *extra
    ]
    return subprocess.run(
        cmd, check=True, capture_output=True, text=True).stdout


def test_second_run_skips_and_new_params_regenerate(tmp_path):
    out = tmp_path / 'shapes'
    first = run_cli(out)
    assert first.startswith(f'wrote {out}')
    assert 'train: images=3' in first and 'val: images=2' in first
    stamp = out / 'generation.json'
    mtime = stamp.stat().st_mtime_ns
    assert 'up to date' in run_cli(out)
    assert stamp.stat().st_mtime_ns == mtime
    (out / 'semantic/val/000000.png').unlink()
    assert run_cli(out).startswith('wrote')  # incomplete copies are redone
    assert run_cli(out, '--seed', '1').startswith('wrote')
    assert json.loads(stamp.read_text())['seed'] == 1
    assert len(list((out / 'images/train').glob('*.png'))) == 3
