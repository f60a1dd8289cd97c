# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
"""ONNX export: ONNX Runtime + NumPy post-processing vs PyTorch eval."""
import subprocess
import sys
from pathlib import Path

import mmcv
import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import Compose
from mmengine.registry import init_default_scope

pytest.importorskip('onnxruntime')

from mmmaskdino.apis import dataset_meta_from_config  # noqa: E402
from mmmaskdino.deployment import (MaskDINOOnnxModel,  # noqa: E402
                                   NumpyPostProcessor, OnnxMaskDINO,
                                   build_detector, resize_bilinear)
from mmmaskdino.models.seg_heads import MaskDINOFusionHead  # noqa: E402
from tests.conftest import REPO_ROOT  # noqa: E402
from tests.test_apis.utils import (changed_pixels,  # noqa: E402
                                   save_random_checkpoint, shapes_config)

TOL = 1e-4
IMG_SIZE = 128


def tiny_config(shapes_root: Path) -> Config:
    """The shapes instance config shrunk further: ResNet-18 with 16 base
    channels, hidden size 32, 20 queries, 1 encoder and 2 decoder layers."""
    cfg = shapes_config('maskdino_r18-tiny_1xb4-2k_shapes', shapes_root)
    cfg.model.backbone.base_channels = 16
    head = cfg.model.panoptic_head
    head.pixel_decoder.update(
        in_channels=[16, 32, 64, 128],
        feat_channels=32,
        mask_dim=32,
        ffn_channels=64)
    head.predictor.update(
        hidden_dim=32, num_queries=20, ffn_dim=64, mask_dim=32)
    return cfg


def run_tool(tool: str, *args: str) -> str:
    """Run ``tools/deployment/<tool>`` in a fresh process; its stdout."""
    proc = subprocess.run(
        [sys.executable,
         str(REPO_ROOT / 'tools' / 'deployment' / tool), *args],
        cwd=REPO_ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


@pytest.fixture(scope='module')
def exported(shapes_root, tmp_path_factory) -> dict:
    """A tiny random model exported at 128 x 128 with the CLI."""
    root = tmp_path_factory.mktemp('onnx')
    cfg = tiny_config(shapes_root)
    cfg_file = root / 'tiny.py'
    cfg.dump(str(cfg_file))
    ckpt = save_random_checkpoint(cfg, root / 'tiny.pth',
                                  dataset_meta_from_config(cfg))
    onnx_file = root / 'tiny.onnx'
    stdout = run_tool('export_onnx.py', str(cfg_file), str(ckpt),
                      str(onnx_file), '--task', 'instance', '--img-size',
                      str(IMG_SIZE), str(IMG_SIZE), '--verify')
    assert 'opset 17' in stdout and 'top-k outputs: True' in stdout
    return dict(
        cfg=cfg,
        cfg_file=cfg_file,
        onnx=onnx_file,
        detector=build_detector(cfg, str(ckpt), 'instance'),
        images=sorted((shapes_root / 'images' / 'val').glob('*.png')))


def test_preprocessing_matches_pytorch(exported):
    """NumPy pre-processing == test pipeline + DetDataPreprocessor."""
    model = OnnxMaskDINO(str(exported['onnx']), exported['cfg'])
    image = str(exported['images'][0])
    inputs, meta = model.preprocess(image)

    init_default_scope('mmdet')
    pipeline = Compose(exported['cfg'].test_dataloader.dataset.pipeline)
    data = pipeline(dict(img_path=image, img_id=0))
    data = exported['detector'].data_preprocessor(
        dict(inputs=[data['inputs']], data_samples=[data['data_samples']]))
    expected = data['inputs'].numpy()
    sample = data['data_samples'][0]
    assert meta['img_shape'] == tuple(sample.img_shape)
    assert meta['ori_shape'] == tuple(sample.ori_shape)
    assert tuple(sample.batch_input_shape) == (IMG_SIZE, IMG_SIZE)
    assert inputs.shape == expected.shape == (1, 3, IMG_SIZE, IMG_SIZE)
    assert np.abs(inputs - expected).max() < 1e-5


def test_onnx_runtime_matches_pytorch(exported):
    """Network outputs within 1e-4 and identical top-k instances."""
    model = OnnxMaskDINO(str(exported['onnx']), exported['cfg'])
    detector = exported['detector']
    head = detector.panoptic_fusion_head
    for image in exported['images'][:2]:
        inputs, meta = model.preprocess(str(image))
        outputs = model.forward(inputs)
        with torch.no_grad():
            expected = MaskDINOOnnxModel(detector, with_topk=True)(
                torch.from_numpy(inputs))
        cls_logits, mask_logits, boxes = (t.numpy() for t in expected[:3])
        assert outputs['cls_logits'].shape == (1, 20, 5)
        assert outputs['mask_logits'].shape == (1, 20, 32, 32)
        for name, value in (('cls_logits', cls_logits),
                            ('mask_logits', mask_logits), ('boxes', boxes)):
            assert np.abs(outputs[name] - value).max() < TOL, name
        # In-graph top-k: same (query, class) pairs in the same order.
        np.testing.assert_array_equal(outputs['topk_labels'],
                                      expected[4].numpy())
        np.testing.assert_array_equal(outputs['topk_queries'],
                                      expected[5].numpy())
        assert np.abs(outputs['topk_scores'] -
                      expected[3].numpy()).max() < TOL

        # NumPy post-processing of the ORT outputs vs the fusion head on
        # the PyTorch outputs.
        results = model.postprocess(outputs, meta)['instances']
        reference = head.predict(*expected[:3], [meta])[0]['ins_results']
        assert len(results['labels']) == len(reference) == 100
        np.testing.assert_array_equal(results['labels'],
                                      reference.labels.numpy())
        np.testing.assert_array_equal(results['query_indices'],
                                      reference.query_indices.numpy())
        assert np.abs(results['scores'] -
                      reference.scores.numpy()).max() < TOL
        assert np.abs(results['bboxes'] -
                      reference.bboxes.numpy()).max() < TOL
        assert results['masks'].shape == tuple(reference.masks.shape)
        assert (results['masks'] == reference.masks.numpy()).mean() > 0.999


def test_onnx_infer_draws_results(exported, tmp_path):
    """The CLI writes one drawn image per input."""
    folder = tmp_path / 'images'
    folder.mkdir()
    for image in exported['images'][:2]:
        (folder / image.name).write_bytes(image.read_bytes())
    stdout = run_tool('onnx_infer.py', str(exported['onnx']),
                      str(exported['cfg_file']), str(folder), '--out-dir',
                      str(tmp_path / 'out'), '--score-thr', '0.1')
    assert stdout.count(' ms -> ') == 2
    for image in exported['images'][:2]:
        drawn = mmcv.imread(str(tmp_path / 'out' / 'vis' / image.name))
        original = mmcv.imread(str(image))
        assert drawn.shape == original.shape
        assert changed_pixels(drawn, original) > 100


def test_resize_bilinear_matches_interpolate():
    """Up- and down-sampling, odd sizes."""
    maps = torch.randn(3, 13, 17)
    for size in ((52, 68), (7, 30), (13, 17)):
        expected = torch.nn.functional.interpolate(
            maps[None], size=size, mode='bilinear', align_corners=False)[0]
        actual = resize_bilinear(maps.numpy(), size)
        assert actual.shape == (3, *size)
        assert np.abs(actual - expected.numpy()).max() < 1e-5


@pytest.mark.parametrize('semantic_first', [False, True])
def test_numpy_postprocessing_matches_fusion_head(semantic_first):
    """Instance, panoptic and semantic results of NumPy and the fusion
    head on the same random outputs (3 thing + 2 stuff classes)."""
    torch.manual_seed(0)
    num_queries, h4, w4 = 12, 16, 24
    test_cfg = dict(
        instance_on=not semantic_first,
        panoptic_on=not semantic_first,
        semantic_on=True,
        object_mask_thr=0.25,
        max_per_image=20)
    head = MaskDINOFusionHead(
        num_things_classes=3, num_stuff_classes=2, test_cfg=test_cfg)
    mask_cls = torch.randn(1, num_queries, 5) * 3
    # Each query covers a random rectangle, so segments survive iou_thr.
    mask_pred = torch.randn(1, num_queries, h4, w4) - 6
    for q in range(num_queries):
        y, x = torch.randint(0, h4 - 4, (1, )), torch.randint(0, w4 - 4, (1, ))
        mask_pred[0, q, y:y + 6, x:x + 8] += 12
    boxes = torch.rand(1, num_queries, 4) * 0.5 + 0.25
    meta = dict(
        batch_input_shape=(64, 96), img_shape=(60, 90),
        ori_shape=(120, 180))
    expected = head.predict(mask_cls, mask_pred, boxes, [meta])[0]
    actual = NumpyPostProcessor(3, 2, test_cfg)(
        mask_cls[0].numpy(), mask_pred[0].numpy(), boxes[0].numpy(), meta)

    sem = expected['sem_results']
    assert actual['seg_logits'].shape == (5, 120, 180)
    assert np.abs(actual['seg_logits'] -
                  sem.seg_logits.numpy()).max() < 1e-5
    assert (actual['sem_seg'] == sem.sem_seg[0].numpy()).mean() > 0.999
    if semantic_first:
        assert set(actual) == {'sem_seg', 'seg_logits'}
        return
    pan = expected['pan_results'].sem_seg[0].numpy()
    assert len(np.unique(pan)) > 2
    assert (actual['panoptic_seg'] == pan).mean() > 0.999
    ins, ref = actual['instances'], expected['ins_results']
    assert len(ins['labels']) == len(ref) > 0
    np.testing.assert_array_equal(ins['labels'], ref.labels.numpy())
    np.testing.assert_array_equal(ins['query_indices'],
                                  ref.query_indices.numpy())
    assert np.abs(ins['scores'] - ref.scores.numpy()).max() < 1e-5
    assert np.abs(ins['bboxes'] - ref.bboxes.numpy()).max() < 1e-4
    assert (ins['masks'] == ref.masks.numpy()).mean() > 0.999
