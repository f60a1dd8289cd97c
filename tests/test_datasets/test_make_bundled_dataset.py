# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
"""The ``make_bundled_dataset.py`` command line: writes once, then skips."""
import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(
    __file__).resolve().parents[2] / 'tools/misc/make_bundled_dataset.py'


def run_cli(out: Path, *extra: str, formats_out: str = '') -> str:
    """Run the script with 3 train and 2 val scenes (and 2 + 1 in the real
    formats under ``formats_out``; none by default); returns its stdout."""
    cmd = [
        sys.executable,
        str(SCRIPT), '--out',
        str(out), '--num-train', '3', '--num-val', '2', '--formats-out',
        formats_out, '--formats-train', '2', '--formats-val', '1', *extra
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


def test_real_formats_written_once(tmp_path):
    formats = tmp_path / 'bundled'
    first = run_cli(tmp_path / 'shapes', formats_out=str(formats))
    assert f'wrote {formats}' in first
    assert 'coco train: images=2' in first and 'ade20k val: images=1' in first
    stamp = json.loads((formats / 'generation.json').read_text())
    assert 'coco/annotations/instances_train2017.json' in stamp['files']
    assert 'custom/annotations/panoptic_val.json' in stamp['files']
    assert all((formats / f).is_file() for f in stamp['files'])
    again = run_cli(tmp_path / 'shapes', formats_out=str(formats))
    assert f'{formats}: up to date' in again
    (formats / stamp['files'][0]).unlink()
    assert f'wrote {formats}' in run_cli(
        tmp_path / 'shapes', formats_out=str(formats))
