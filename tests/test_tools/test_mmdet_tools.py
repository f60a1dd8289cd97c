# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
"""MMDetection's own tools, run through ``mim run mmdet`` on our configs.

The README documents each of these commands; here they run on the shapes
config and the bundled shapes data (a 2-iteration training run provides the
log, the checkpoint and the ``--out`` results the tools read).
"""
import hashlib
import re
import time
from pathlib import Path

import pytest
import torch

from tests.official_keys import TINY, official_state_dict
from tests.test_tools.e2e_utils import run_python

CONFIG = 'configs/maskdino/maskdino_r18-tiny_1xb4-2.2k_shapes.py'


def mim_run(tool: str, *args: str) -> str:
    return run_python('-m', 'mim', 'run', 'mmdet', tool, *args)


def data_root_options(shapes_root: Path, *loaders: str) -> list:
    return ['--cfg-options'] + [
        f'{loader}.dataset.data_root={shapes_root}/' for loader in loaders
    ]


@pytest.fixture(scope='module')
def trained(shapes_root, tmp_path_factory):
    """Work dir, checkpoint and ``--out`` results of a 2-iteration run."""
    out = tmp_path_factory.mktemp('mmdet_tools')
    run_python('tools/train.py',
               CONFIG, '--work-dir', str(out / 'work'), '--data-root',
               str(shapes_root), '--cfg-options', 'train_cfg.max_iters=2',
               'train_cfg.val_interval=2', 'default_hooks.logger.interval=1')
    run_python('tools/test.py',
               CONFIG, str(out / 'work/iter_2.pth'), '--work-dir',
               str(out / 'test'), '--data-root', str(shapes_root), '--out',
               str(out / 'results.pkl'))
    return out


def test_print_config():
    output = mim_run('print_config', CONFIG)
    assert "type='MaskDINO'" in output
    assert 'num_things_classes=5' in output


def test_browse_dataset(shapes_root, tmp_path):
    mim_run('browse_dataset', CONFIG, '--output-dir', str(tmp_path),
            '--not-show', *data_root_options(shapes_root, 'train_dataloader'))
    assert len(list(tmp_path.glob('*.png'))) == len(
        list((shapes_root / 'images/train').glob('*.png')))


def test_get_flops(shapes_root):
    output = mim_run('get_flops', CONFIG, '--num-images', '2',
                     *data_root_options(shapes_root, 'val_dataloader'))
    flops = float(re.search(r'Flops: ([\d.]+)G', output).group(1))
    params = float(re.search(r'Params: ([\d.]+)M', output).group(1))
    assert flops > 0.1
    assert params == pytest.approx(12.0, abs=0.1)


def test_analyze_logs(trained, tmp_path):
    (scalars, ) = (trained / 'work').glob('*/vis_data/scalars.json')
    out = tmp_path / 'loss.png'
    mim_run('analyze_logs', 'plot_curve', str(scalars), '--keys', 'loss',
            '--out', str(out))
    assert out.stat().st_size > 1000


def test_confusion_matrix(trained, shapes_root, tmp_path):
    mim_run('confusion_matrix', CONFIG, str(trained / 'results.pkl'),
            str(tmp_path), '--score-thr', '0.05',
            *data_root_options(shapes_root, 'test_dataloader'))
    assert (tmp_path / 'confusion_matrix.png').stat().st_size > 1000


def test_publish_converted_weights(tmp_path):
    """Convert an official checkpoint, then publish it as MMDetection does:
    training-only keys dropped, ``-<sha256[:8]>`` in the file name."""
    official = tmp_path / 'official.pth'
    torch.save({'model': official_state_dict(TINY), 'iteration': 3}, official)
    converted = tmp_path / 'converted.pth'
    run_python('tools/model_converters/maskdino_to_mmdet.py', str(official),
               str(converted))
    mim_run('publish_model', str(converted), str(tmp_path / 'maskdino.pth'))
    for _ in range(50):  # publish_model renames the file asynchronously
        published = list(tmp_path.glob('maskdino-*.pth'))
        if published:
            break
        time.sleep(0.1)
    (path, ) = published
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert path.name == f'maskdino-{digest[:8]}.pth'
    checkpoint = torch.load(path, weights_only=True)
    assert set(checkpoint) == {'meta', 'state_dict'}
    assert checkpoint['meta']['converter'] == 'maskdino_to_mmdet'
