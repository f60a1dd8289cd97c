# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
"""tools/model_converters/maskdino_to_mmdet.py and the released-model index."""
import importlib
import subprocess
import sys
from dataclasses import replace

import pytest
import torch
from mmdet.datasets import CocoPanopticDataset
from mmdet.registry import MODELS
from mmdet.utils import register_all_modules
from mmengine.config import Config

from tests.conftest import REPO_ROOT
from tests.official_keys import TINY, model_cfg, official_state_dict

SCRIPT = REPO_ROOT / 'tools' / 'model_converters' / 'maskdino_to_mmdet.py'
URL_ROOT = ('https://github.com/IDEA-Research/detrex-storage/releases/'
            'download/maskdino-v0.1.0/')
# metafile name -> (official checkpoint file, official results)
RELEASED = {
    'maskdino_r50_4xb4-lsj-50e_coco':
    ('maskdino_r50_50ep_300q_hid2048_3sd1_instance_maskenhanced_'
     'mask46.3ap_box51.7ap.pth', {
         'mask AP': 46.3,
         'box AP': 51.7
     }),
    'maskdino-hid1024_r50_4xb4-lsj-50e_coco':
    ('maskdino_r50_50ep_300q_hid1024_3sd1_instance_maskenhanced_'
     'mask46.1ap_box51.5ap.pth', {
         'mask AP': 46.1,
         'box AP': 51.5
     }),
    'maskdino_swin-l-p4-w12-384-in21k_8xb2-lsj-50e_coco':
    ('maskdino_swinl_50ep_300q_hid2048_3sd1_instance_maskenhanced_'
     'mask52.3ap_box59.0ap.pth', {
         'mask AP': 52.3,
         'box AP': 59.0
     }),
    'maskdino-nomaskenhance_swin-l-p4-w12-384-in21k_8xb2-lsj-50e_coco':
    ('maskdino_swinl_50ep_300q_hid2048_3sd1_instance_mask52.1ap_box58.3ap.pth',
     {
         'mask AP': 52.1,
         'box AP': 58.3
     }),
    'maskdino_r50_4xb4-lsj-50e_coco-panoptic':
    ('maskdino_r50_50ep_300q_hid2048_3sd1_panoptic_pq53.0.pth', {
        'PQ': 53.0,
        'mask AP': 44.3,
        'box AP': 48.8,
        'mIoU': 60.6
    }),
    'maskdino_swin-l-p4-w12-384-in21k_8xb2-lsj-50e_coco-panoptic':
    ('maskdino_swinl_50ep_300q_hid2048_3sd1_panoptic_58.3pq.pth', {
        'PQ': 58.3,
        'mask AP': 50.6,
        'box AP': 56.2,
        'mIoU': 67.5
    }),
    'maskdino_r50_4xb4-160k_ade20k-512x512':
    ('maskdino_r50_50ep_100q_celoss_hid1024_3s_semantic_ade20k_48.7miou.pth', {
        'mIoU': 48.7
    }),
    'maskdino_r50_4xb4-90k_cityscapes-512x1024':
    ('maskdino_r50_50ep_100q_celoss_hid1024_3s_semantic_cityscapes_'
     '79.8miou.pth', {
         'mIoU': 79.8
     }),
}


def _write_config(path, num_classes: int) -> str:
    spec = replace(TINY, num_classes=num_classes)
    Config(dict(model=model_cfg(spec, num_things=num_classes))).dump(str(path))
    return str(path)


def _run(*args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *map(str, args)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120)


@pytest.fixture(scope='module')
def official_file(tmp_path_factory):
    path = tmp_path_factory.mktemp('official') / 'maskdino_tiny.pth'
    torch.save({'model': official_state_dict(TINY), 'iteration': 5}, path)
    return path


def test_convert_and_strict_load(official_file, tmp_path):
    config = _write_config(tmp_path / 'tiny.py', 7)
    dst = tmp_path / 'converted.pth'
    proc = _run(official_file, dst, '--config', config)
    assert proc.returncode == 0, proc.stderr
    assert 'missing keys: []' in proc.stdout
    assert 'unexpected keys: []' in proc.stdout

    checkpoint = torch.load(dst, map_location='cpu', weights_only=True)
    assert checkpoint['meta']['source'] == 'maskdino_tiny.pth'
    register_all_modules()
    model = MODELS.build(Config.fromfile(config).model)
    result = model.load_state_dict(checkpoint['state_dict'], strict=True)
    assert (result.missing_keys, result.unexpected_keys) == ([], [])
    official = official_state_dict(TINY)
    assert torch.equal(
        model.panoptic_head.predictor.bbox_embed.layers[2].weight,
        official['sem_seg_head.predictor._bbox_embed.layers.2.weight'])
    assert torch.equal(model.backbone.layer3[0].downsample[0].weight,
                       official['backbone.res4.0.shortcut.weight'])


def test_wrong_class_count_stops_with_message(official_file, tmp_path):
    config = _write_config(tmp_path / 'tiny3.py', 3)
    dst = tmp_path / 'converted.pth'
    proc = _run(official_file, dst, '--config', config)
    assert proc.returncode == 1
    assert ('checkpoint has 7 classes (predictor.denoising.label_enc.weight '
            '7x64) but the config has 3 classes') in proc.stderr
    assert not dst.exists()


def test_rejects_non_official_file(tmp_path):
    src = tmp_path / 'other.pth'
    torch.save({'state_dict': {'backbone.conv1.weight': torch.zeros(1)}}, src)
    proc = _run(src, tmp_path / 'out.pth')
    assert proc.returncode == 1
    assert 'is not an official Mask DINO checkpoint' in proc.stderr


def test_mim_download_resolves_every_released_model(monkeypatch, tmp_path):
    """``mim download mmmaskdino --config NAME`` finds the official URL and
    dumps the config (the download itself is replaced by a stub)."""
    download = importlib.import_module('mim.commands.download')
    search = importlib.import_module('mim.commands.search')
    # an installed wheel has the model index under mmmaskdino/.mim, as here
    package_dir = str(REPO_ROOT / 'mmmaskdino')
    monkeypatch.setattr(search, 'get_installed_path', lambda _: package_dir)
    monkeypatch.setattr(download, 'get_installed_path', lambda _: package_dir)
    fetched = []
    monkeypatch.setattr(download, 'download_from_file',
                        lambda url, path, **kwargs: fetched.append(url))

    info = search.get_model_info(
        'mmmaskdino', shown_fields=['weight', 'config'], to_dict=True)
    assert {
        name: row['weight']
        for name, row in info.items()
    } == {
        name: URL_ROOT + filename
        for name, (filename, _) in RELEASED.items()
    }
    name = 'maskdino_r50_4xb4-lsj-50e_coco'
    dest = tmp_path / 'mim'
    files = download.download('mmmaskdino', [name], dest_root=str(dest))
    assert fetched == [URL_ROOT + RELEASED[name][0]]
    assert files == [RELEASED[name][0]]
    assert Config.fromfile(str(dest / f'{name}.py')).model.type == 'MaskDINO'


def test_metafile_results_are_official():
    from modelindex.load_model_index import load

    index = load(str(REPO_ROOT / 'model-index.yml'))
    results = {}
    for model in index.models:
        metrics = {}
        for result in model.results:
            metrics.update(result.metrics)
        results[model.name] = metrics
        assert (REPO_ROOT / model.config).is_file()
    assert results == {name: res for name, (_, res) in RELEASED.items()}


@pytest.fixture(scope='module')
def official_panoptic_file(tmp_path_factory):
    """A tiny official-format checkpoint with COCO panoptic's 133 classes."""
    path = tmp_path_factory.mktemp('official') / 'maskdino_panoptic.pth'
    torch.save({'model': official_state_dict(replace(TINY, num_classes=133))},
               path)
    return path


def test_converter_records_class_names(official_panoptic_file, tmp_path):
    """Without a config, the class count names the official dataset."""
    dst = tmp_path / 'converted.pth'
    proc = _run(official_panoptic_file, dst)
    assert proc.returncode == 0, proc.stderr
    meta = torch.load(dst, weights_only=True)['meta']['dataset_meta']
    assert meta['classes'] == list(CocoPanopticDataset.METAINFO['classes'])
    assert len(meta['thing_classes']) == 80
    assert len(meta['stuff_classes']) == 53


def test_converter_takes_class_names_from_the_config(official_file, tmp_path):
    config = Config.fromfile(
        REPO_ROOT / 'configs/maskdino/maskdino_r18-tiny_1xb4-2.2k_shapes.py')
    spec = replace(TINY, num_classes=7)
    config.model = model_cfg(spec, num_things=7)
    config.test_dataloader.dataset.metainfo = dict(
        classes=tuple(f'c{i}' for i in range(7)))
    config.dump(str(tmp_path / 'cfg.py'))
    dst = tmp_path / 'converted.pth'
    proc = _run(official_file, dst, '--config', tmp_path / 'cfg.py')
    assert proc.returncode == 0, proc.stderr
    meta = torch.load(dst, weights_only=True)['meta']['dataset_meta']
    assert list(meta['classes']) == [f'c{i}' for i in range(7)]


@pytest.mark.parametrize('num_classes, dataset', [(133, 'panoptic'),
                                                  (150, 'ade20k'),
                                                  (80, 'coco'),
                                                  (19, 'cityscapes')])
def test_official_url_checkpoints_get_their_class_names(
        num_classes, dataset, tmp_path, monkeypatch):
    """``init_detector`` / ``DetInferencer`` on an official release URL: the
    registered loader adds the training dataset's names, instead of
    MMDetection's fallback to the 80 COCO names."""
    from mmdet.apis import init_detector

    from mmmaskdino.utils import official_checkpoints as loader
    path = tmp_path / 'official.pth'
    torch.save(
        {'model': official_state_dict(replace(TINY, num_classes=num_classes))},
        path)
    urls = []

    def fake_http(url, map_location=None):
        urls.append(url)
        return torch.load(path, map_location=map_location, weights_only=True)

    monkeypatch.setattr(loader, 'load_from_http', fake_http)
    config = _write_config(tmp_path / 'tiny.py', num_classes)
    url = loader.OFFICIAL_URL_PREFIX + 'maskdino_whatever.pth'
    model = init_detector(config, url, device='cpu', palette='random')
    assert urls == [url]
    expected = loader.dataset_meta_for_class_count(num_classes)
    assert list(model.dataset_meta['classes']) == expected['classes']
    assert len(model.dataset_meta['classes']) == num_classes
    if dataset == 'ade20k':
        assert model.dataset_meta['classes'][:3] == ['wall', 'building', 'sky']
