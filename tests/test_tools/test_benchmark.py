# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
"""``tools/analysis_tools/benchmark.py``: two timed iterations on a tiny
config."""
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, SHAPES_NUM_VAL
from tests.test_apis.utils import shapes_config

SCRIPT = REPO_ROOT / 'tools/analysis_tools/benchmark.py'
CONFIG = REPO_ROOT / 'configs/maskdino/maskdino_r18-tiny_1xb4-2.2k_shapes.py'
RESULT_FIELDS = ('config', 'task', 'device', 'batch_size', 'img_size', 'data',
                 'amp', 'warmup', 'iters', 'latency_median_s', 'latency_p90_s',
                 'latency_mean_s', 'images_per_s', 'peak_cpu_rss_mib',
                 'peak_cuda_mib', 'flops', 'params')
MACHINE_FIELDS = ('cpu', 'cpu_count', 'torch_threads', 'gpu', 'load_average',
                  'torch', 'mmengine', 'mmcv', 'mmdet', 'command')


def run_benchmark(config: str,
                  out: Path,
                  *args: str,
                  subprocess_run: bool = False) -> dict:
    """Run the script (in a fresh process, or its ``main`` here); returns
    the JSON report it saved."""
    argv = [config, '--device', 'cpu', '--out', str(out), *args]
    if subprocess_run:
        proc = subprocess.run(
            [sys.executable, str(SCRIPT), *argv],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert f'| {Path(config).name} |' in proc.stdout
    else:
        spec = importlib.util.spec_from_file_location('benchmark', SCRIPT)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        module.main(argv)
    return json.loads(out.read_text())


@pytest.mark.parametrize('task', ['inference', 'train'])
def test_benchmark_json_has_all_fields(task, tmp_path):
    # the training run goes through the command line, inference in-process
    report = run_benchmark(
        str(CONFIG),
        tmp_path / f'{task}.json',
        '--task',
        task,
        '--img-size',
        '64',
        '64',
        '--batch-size',
        '2',
        '--warmup',
        '1',
        '--iters',
        '2',
        subprocess_run=task == 'train')
    assert set(MACHINE_FIELDS) <= set(report['machine'])
    assert report['machine']['torch_threads'] >= 1
    (result, ) = report['results']
    assert set(RESULT_FIELDS) <= set(result)
    assert result['task'] == task
    assert result['device'] == 'cpu' and result['peak_cuda_mib'] is None
    assert result['img_size'] == [64, 64] and result['batch_size'] == 2
    assert result['iters'] == 2
    assert 0 < result['latency_median_s'] <= result['latency_p90_s']
    assert result['latency_mean_s'] > 0 and result['images_per_s'] > 0
    assert result['peak_cpu_rss_mib'] > 0
    assert result['flops'] > 0
    assert 11e6 < result['params'] < 13e6  # ResNet-18 + the tiny head


def test_benchmark_whole_test_set(shapes_root, tmp_path, capsys):
    """The FPS protocol with its metafile row."""
    config = tmp_path / 'tiny.py'
    shapes_config(CONFIG.stem, shapes_root).dump(str(config))
    report = run_benchmark(
        str(config), tmp_path / 'test.json', '--data', 'test', '--iters', '0',
        '--warmup', '1', '--no-flops', '--metafile-row')
    (result, ) = report['results']
    assert result['data'] == 'test' and result['img_size'] is None
    assert result['iters'] == SHAPES_NUM_VAL  # batch 1, every val image
    assert result['latency_median_s'] > 0 and result['images_per_s'] > 0
    out = capsys.readouterr().out
    row = out[out.index(f'# {config}: peak memory'):].splitlines()[:7]
    ms = result['latency_median_s'] * 1000
    assert row[1] == f'- value: {ms:.1f}'
    assert row[2].startswith('  hardware: ') and 'core' in row[2]
    assert row[3:] == [
        f"  backend: PyTorch {report['machine']['torch'].split('+')[0]}",
        '  batch size: 1', '  mode: FP32', '  resolution: test set'
    ]
