# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
"""The model zoo as mim reads it agrees with the README tables."""
import re

import pytest
from mmengine.config import Config
from modelindex.load_model_index import load

from tests.conftest import REPO_ROOT

METRIC_COLUMNS = {
    'box AP': 'box AP',
    'mask AP': 'mask AP',
    'PQ': 'PQ',
    'mIoU': 'mIoU'
}


def readme_rows() -> dict:
    """``{config stem: {column: cell}}`` of configs/maskdino/README.md's
    model tables."""
    rows = {}
    header = None
    for line in (REPO_ROOT /
                 'configs/maskdino/README.md').read_text().splitlines():
        if not line.startswith('|'):
            header = None
            continue
        cells = [c.strip() for c in line.strip('|').split('|')]
        if header is None:
            header = cells
            continue
        if set(cells[0]) <= set(':- '):
            continue
        row = dict(zip(header, cells))
        (stem, ) = re.findall(r'\(\./(.+)\.py\)', row['Config'])
        (url, ) = re.findall(r'\((https://[^)]+)\)', row['Download'])
        row['url'] = url
        rows[stem] = row
    return rows


@pytest.fixture(scope='module')
def models():
    index = load(str(REPO_ROOT / 'model-index.yml'))
    return {m.name: m for m in index.models}


def test_every_metafile_model_is_in_the_readme_table(models):
    rows = readme_rows()
    assert set(models) == set(rows)
    for name, model in models.items():
        row = rows[name]
        assert model.config == f'configs/maskdino/{name}.py'
        assert (REPO_ROOT / model.config).is_file()
        assert model.weights == row['url']
        metrics = {k: v for r in model.results for k, v in r.metrics.items()}
        shown = {
            k: float(row[c])
            for k, c in METRIC_COLUMNS.items() if c in row
        }
        assert metrics == shown, name
        memory = model.metadata.data['Training Memory (GB)']
        assert row['Mem (GB)'].startswith(f'{memory} ')
        gpus = model.metadata.training_resources.split()[0]
        assert gpus in row['Mem (GB)']


def test_panoptic_r50_box_and_mask_ap_are_corrected(models):
    model = models['maskdino_r50_4xb4-lsj-50e_coco-panoptic']
    metrics = {k: v for r in model.results for k, v in r.metrics.items()}
    assert (metrics['box AP'], metrics['mask AP']) == (48.8, 44.3)


def test_main_readme_names_existing_configs():
    text = (REPO_ROOT / 'README.md').read_text()
    names = set(re.findall(r'`(maskdino[\w.-]*?)\.py`', text))
    assert names
    for name in names:
        assert (REPO_ROOT / 'configs/maskdino' / f'{name}.py').is_file(), name


@pytest.mark.parametrize(
    'path',
    sorted((REPO_ROOT / 'configs/maskdino').glob('*.py')),
    ids=lambda p: p.stem)
def test_auto_scale_lr_base_is_the_configs_own_batch(path):
    """``--auto-scale-lr`` rescales from the batch the lr was tuned for: the
    config's own total batch (GPUs x images per GPU in its name)."""
    cfg = Config.fromfile(path)
    (gpus, per_gpu), = re.findall(r'_(\d+)xb(\d+)-', path.name)
    assert cfg.train_dataloader.batch_size == int(per_gpu)
    assert cfg.auto_scale_lr.base_batch_size == int(gpus) * int(per_gpu)
