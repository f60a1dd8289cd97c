# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
"""The README's GPU install recipe, run as written in a fresh venv.

Only the torch line changes: CI has no GPU, so the CPU build of torch 2.13.0
stands in for the CUDA one (mim then finds no prebuilt mmcv for it and pip
takes the wheel that ``make install`` built and cached). The recipe ends with
``mim search mmmaskdino``; one ``mim train`` iteration on the bundled shapes
data follows.
"""
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

CPU_TORCH = 'pip install torch==2.13.0'


def readme_recipe() -> list:
    """The commands of the README's "GPU install" bash block."""
    text = (REPO_ROOT / 'README.md').read_text()
    section = text[text.index('## GPU install'):]
    block = re.search(r'```bash\n(.*?)```', section, re.S).group(1)
    return [
        line.split('  #')[0].strip() for line in block.splitlines()
        if line.strip()
    ]


def source_copy(dest: Path) -> Path:
    """The repository's sources in ``dest`` (an install from the checkout
    itself would leave build files and mim copies in it)."""
    shutil.copytree(
        REPO_ROOT,
        dest,
        ignore=shutil.ignore_patterns('.git', '.venv', 'data', 'work_dirs',
                                      'build', '*.egg-info', '.mim',
                                      '__pycache__', '.pytest_cache'))
    return dest


def mmcv_wheel_cached() -> bool:
    out = subprocess.run(
        [sys.executable, '-m', 'pip', 'cache', 'list', 'mmcv'],
        capture_output=True,
        text=True).stdout
    return 'mmcv-2.1.0' in out


def test_recipe_pins_a_torch_with_mmcv_wheels():
    (torch_line, ) = [c for c in readme_recipe() if 'torch' in c.split()[2]]
    assert re.fullmatch(
        r'pip install torch==2\.1\.\d --index-url '
        r'https://download\.pytorch\.org/whl/cu1(18|21)', torch_line)
    assert 'pip install "setuptools>=77.0.3,<81"' in readme_recipe()


@pytest.mark.skipif(
    not mmcv_wheel_cached(),
    reason='needs the mmcv 2.1.0 wheel in pip\'s cache '
    '(`make install` builds it)')
def test_gpu_install_recipe_in_a_fresh_venv(tmp_path, shapes_root):
    commands = [
        CPU_TORCH if 'download.pytorch.org' in c else c
        for c in readme_recipe()
    ]
    venv = tmp_path / 'venv'
    script = '\n'.join([
        'set -euo pipefail',
        f'{Path(sys.executable).resolve()} -m venv {venv}',
        f'. {venv}/bin/activate',
        f'cd {source_copy(tmp_path / "src")}',
        *commands,
        'mim train mmmaskdino maskdino_r18-tiny_1xb4-2.2k_shapes.py '
        f'--work-dir {tmp_path}/work --data-root {shapes_root} '
        '--cfg-options train_cfg.max_iters=1 train_cfg.val_interval=10 '
        'default_hooks.logger.interval=1',
    ])
    proc = subprocess.run(['bash', '-c', script],
                          capture_output=True,
                          text=True,
                          timeout=1800)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-6000:]
    assert 'maskdino_r18-tiny_1xb4-2.2k_shapes' in proc.stdout  # mim search
    assert list((tmp_path / 'work').glob('iter_1.pth'))
    assert re.search(r'Iter\(train\) \[1/1\].*loss: [\d.]+', output)


def test_install_without_mmcv_stops_with_instructions(tmp_path):
    """``pip install .`` into an environment without mmcv fails at once with
    the way to get mmcv, not with ``No module named mmcv`` at first use."""
    venv = tmp_path / 'bare'
    subprocess.run(
        [str(Path(sys.executable).resolve()), '-m', 'venv',
         str(venv)],
        check=True)
    proc = subprocess.run([
        str(venv / 'bin/python'), '-m', 'pip', 'install', '--no-deps',
        '--no-cache-dir',
        str(source_copy(tmp_path / 'src'))
    ],
                          capture_output=True,
                          text=True,
                          timeout=600)
    assert proc.returncode != 0
    output = proc.stdout + proc.stderr
    assert 'mmmaskdino needs mmcv>=2.0.0rc4,<2.2.0' in output
    assert 'mim install "mmcv==2.1.0"' in output
    assert not list((venv / 'lib').glob('python*/site-packages/mmmaskdino'))
