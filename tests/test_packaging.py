# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
"""Packaging: the wheel carries the mim extension; the package imports cleanly.
"""
import shutil
import subprocess
import sys
import zipfile

from tests.conftest import REPO_ROOT

IGNORED = shutil.ignore_patterns('.venv', '.git', 'data', 'work_dirs', 'build',
                                 'dist', '*.egg-info', '.mim', '__pycache__',
                                 '.pytest_cache')


def test_import_in_clean_process():
    out = subprocess.run([
        sys.executable, '-c',
        'import mmmaskdino; from mmdet.registry import MODELS; '
        'print(mmmaskdino.__version__, "MaskDINO" in MODELS.module_dict)'
    ],
                         check=True,
                         capture_output=True,
                         text=True,
                         cwd='/')
    version, registered = out.stdout.split()
    assert version == '0.1.0'
    assert registered == 'True'


def test_wheel_contains_mim_extension(tmp_path):
    src = tmp_path / 'src'
    shutil.copytree(REPO_ROOT, src, ignore=IGNORED)
    subprocess.run([
        sys.executable, '-m', 'pip', 'wheel', '--no-deps',
        '--no-build-isolation', '-q', '-w',
        str(tmp_path / 'dist'),
        str(src)
    ],
                   check=True,
                   capture_output=True)
    wheel, = (tmp_path / 'dist').glob('mmmaskdino-*.whl')
    names = set(zipfile.ZipFile(wheel).namelist())
    mim = 'mmmaskdino/.mim/'
    expected = [
        'model-index.yml', 'configs/maskdino/metafile.yml',
        'configs/maskdino/maskdino_r50_4xb4-lsj-50e_coco.py',
        'configs/_base_/default_runtime.py', 'tools/train.py', 'tools/test.py',
        'tools/dist_train.sh', 'demo/image_demo.py'
    ]
    for name in expected:
        assert mim + name in names, f'{mim + name} missing from the wheel'
    assert 'mmmaskdino/models/detectors/maskdino.py' in names
    assert not any(n.startswith('tests/') for n in names)
    num_configs = len(list((REPO_ROOT / 'configs').rglob('*.py')))
    assert sum(
        n.startswith(mim + 'configs/') and n.endswith('.py')
        for n in names) == num_configs
