# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
"""mim's own entry points on an installed (wheel) copy of mmmaskdino.

mim 0.3.9 finds a package as ``<dist location>/<name>``, which a PEP 660
editable install (``pip install -e .`` with pip >= 25.3) does not provide, so
the package is installed from a wheel into a temporary folder first (what
``mim install .`` / ``pip install .`` do) and put first on PYTHONPATH.
"""
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from mmengine.config import Config

from mmmaskdino.apis import list_models
from tests.conftest import REPO_ROOT

MIM = [sys.executable, '-m', 'mim']
CONFIG = 'maskdino_r18-tiny_1xb4-2.2k_shapes.py'
SOURCES = ('setup.py', 'README.md', 'LICENSE', 'MANIFEST.in',
           'model-index.yml', 'requirements', 'mmmaskdino', 'configs', 'tools',
           'demo')


@pytest.fixture(scope='module')
def site(tmp_path_factory) -> Path:
    """A folder holding mmmaskdino installed from a wheel of this checkout."""
    root = tmp_path_factory.mktemp('mim')
    src = root / 'src'
    src.mkdir()
    for name in SOURCES:
        path = REPO_ROOT / name
        if path.is_dir():
            shutil.copytree(
                path,
                src / name,
                ignore=shutil.ignore_patterns('__pycache__', '.mim'))
        else:
            shutil.copy(path, src / name)
    subprocess.run([
        sys.executable, '-m', 'pip', 'install', '--quiet', '--no-deps',
        '--no-build-isolation', '--no-index', '--target',
        str(root / 'site'),
        str(src)
    ],
                   check=True,
                   capture_output=True)
    site = root / 'site'
    assert (site / 'mmmaskdino/.mim/model-index.yml').is_file()
    assert (site / 'mmmaskdino/.mim/tools/train.py').is_file()
    return site


def run(site: Path, *args: str, cwd: Path = None) -> str:
    """Run a command with the installed copy first on PYTHONPATH."""
    env = dict(os.environ, PYTHONPATH=str(site))
    proc = subprocess.run(
        args, env=env, cwd=cwd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr


def data_options(data_root: Path) -> list:
    """``--cfg-options`` that point a shapes config at ``data_root``."""
    ann = f'{data_root}/annotations/instances_val.json'
    return [
        f'{split}_dataloader.{key}' for split in ('train', 'val', 'test')
        for key in (f'dataset.data_root={data_root}/', 'num_workers=0',
                    'persistent_workers=False')
    ] + [f'val_evaluator.ann_file={ann}', f'test_evaluator.ann_file={ann}']


def test_mim_search_lists_every_model(site, tmp_path):
    out = run(site, *MIM, 'search', 'mmmaskdino', cwd=tmp_path)
    names = sorted(list_models())
    assert len(names) == 8
    assert all(f'config id: {name}\n' in out for name in names)


@pytest.fixture(scope='module')
def trained(site, shapes_root, tmp_path_factory) -> Path:
    """Work dir of ``mim train`` for one iteration on the fixture data."""
    work_dir = tmp_path_factory.mktemp('mim_train')
    run(site,
        *MIM,
        'train',
        'mmmaskdino',
        CONFIG,
        '--work-dir',
        str(work_dir),
        '--cfg-options',
        'train_cfg.max_iters=1',
        'default_hooks.logger.interval=1',
        *data_options(shapes_root),
        cwd=work_dir)
    return work_dir


def test_mim_train_one_iteration(trained):
    assert (trained / 'iter_1.pth').is_file()
    records = [
        json.loads(line) for line in next(
            trained.glob('*/vis_data/scalars.json')).read_text().splitlines()
    ]
    assert records[0]['iter'] == 1 and records[0]['loss'] > 0


def test_mim_test_evaluates_the_checkpoint(site, trained, shapes_root):
    out = run(
        site,
        *MIM,
        'test',
        'mmmaskdino',
        CONFIG,
        '--checkpoint',
        str(trained / 'iter_1.pth'),
        '--work-dir',
        str(trained),
        '--cfg-options',
        *data_options(shapes_root),
        cwd=trained)
    values = dict(re.findall(r'(coco/\w+_mAP): (-?[0-9.]+)', out))
    assert 0.0 <= float(values['coco/bbox_mAP']) <= 1.0
    assert 0.0 <= float(values['coco/segm_mAP']) <= 1.0


DOWNLOAD = """
import importlib
import sys
download = importlib.import_module('mim.commands.download')
urls = []
download.download_from_file = lambda url, path, **kw: urls.append(url)
download.download('mmmaskdino', [sys.argv[1]], sys.argv[2])
from mmmaskdino.apis import get_model_info
print('URL', urls[0])
print('CONFIG', get_model_info(sys.argv[1])['config'])
"""


def test_mim_download_resolves_url_and_config(site, tmp_path):
    """``mim download`` with the network call replaced by a recorder."""
    name = 'maskdino_r50_4xb4-lsj-50e_coco-panoptic'
    out = run(
        site,
        sys.executable,
        '-c',
        DOWNLOAD,
        name,
        str(tmp_path),
        cwd=tmp_path)
    lines = dict(
        line.split(' ', 1) for line in out.splitlines()
        if line.startswith(('URL ', 'CONFIG ')))
    assert lines['URL'] == list_models()[name]['weights']
    # the helper API also resolves names from the installed copy's .mim
    assert lines['CONFIG'] == str(site / 'mmmaskdino/.mim/configs/maskdino' /
                                  f'{name}.py')
    dumped = Config.fromfile(str(tmp_path / f'{name}.py'))
    assert dumped.model.panoptic_head.num_stuff_classes == 53
    assert not list(tmp_path.glob('*.pth'))
