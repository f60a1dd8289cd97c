# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
"""ONNX export: ONNX Runtime in place of the network, the model's own pre-
and post-processing around it, vs PyTorch inference."""
import subprocess
import sys
from pathlib import Path

import mmcv
import numpy as np
import pytest
import torch
from mmdet.apis import inference_detector
from mmengine.config import Config

from mmmaskdino.apis import dataset_meta_from_config
from mmmaskdino.apis.inference import TASK_FLAGS
from mmmaskdino.deployment import OUTPUT_NAMES, OnnxMaskDINO, init_export_model
from tests.conftest import REPO_ROOT
from tests.test_apis.utils import (changed_pixels, save_random_checkpoint,
                                   shapes_config)

TOL = 1e-4
IMG_SIZE = 128


def tiny_config(shapes_root: Path) -> Config:
    """The shapes instance config shrunk further: ResNet-18 with 16 base
    channels, hidden size 32, 20 queries, 1 encoder and 2 decoder layers."""
    cfg = shapes_config('maskdino_r18-tiny_1xb4-2.2k_shapes', shapes_root)
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
    proc = subprocess.run([
        sys.executable,
        str(REPO_ROOT / 'tools' / 'deployment' / tool), *args
    ],
                          cwd=REPO_ROOT,
                          capture_output=True,
                          text=True)
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
    assert 'opset 17' in stdout
    diffs = [
        float(d.rstrip(',')) for d in stdout.split('|: ')[1].split()[1::2]
    ]
    assert len(diffs) == 3 and max(diffs) < TOL, stdout
    return dict(
        cfg=cfg,
        cfg_file=cfg_file,
        onnx=onnx_file,
        detector=init_export_model(cfg, str(ckpt), 'instance'),
        images=sorted((shapes_root / 'images' / 'val').glob('*.png')))


def test_attention_is_a_gather_and_matmul(exported):
    """Deformable attention exports as a ``Gather`` of neighbour rows from
    the value table reduced by a ``MatMul`` with the bilinear times
    attention weights (1 encoder layer + 2 decoder layers, one bag chunk
    each at this size), not as ``GridSample`` per level."""
    import onnx
    graph = onnx.load(str(exported['onnx'])).graph
    producers = {out: node for node in graph.node for out in node.output}
    ops = [node.op_type for node in graph.node]
    assert 'GridSample' not in ops
    reductions = [
        node for node in graph.node if node.op_type == 'MatMul' and any(
            name in producers and producers[name].op_type == 'Gather'
            for name in node.input)
    ]
    assert len(reductions) == 3


def test_preprocessing_is_the_models(exported):
    """The graph input is the test pipeline + data preprocessor of PyTorch
    inference, zero-padded to the graph size."""
    model = OnnxMaskDINO(str(exported['onnx']), exported['cfg'])
    images = [str(p) for p in exported['images'][:2]]
    data = model.preprocess(images)
    inputs, samples = data['inputs'], data['data_samples']
    assert inputs.shape == (2, 3, IMG_SIZE, IMG_SIZE)
    for image, x, sample in zip(images, inputs, samples):
        expected = inference_detector(exported['detector'], image)
        h, w = expected.img_shape
        assert tuple(sample.img_shape) == (h, w)
        assert tuple(sample.ori_shape) == tuple(expected.ori_shape)
        assert tuple(sample.batch_input_shape) == (IMG_SIZE, IMG_SIZE)
        original = mmcv.imread(image, channel_order='rgb').astype(np.float32)
        mean = np.array(exported['cfg'].model.data_preprocessor.mean)
        std = np.array(exported['cfg'].model.data_preprocessor.std)
        normalised = ((original - mean) / std).transpose(2, 0, 1)
        if (h, w) == original.shape[:2]:
            assert np.abs(x[:, :h, :w].numpy() - normalised).max() < 1e-5
        assert x[:, h:].abs().sum() == 0 and x[:, :, w:].abs().sum() == 0


@pytest.mark.parametrize('task', ['instance', 'panoptic', 'semantic'])
def test_onnx_runtime_matches_pytorch_inference(exported, task):
    """Network outputs within 1e-4; after the shared post-processing the
    same instances (labels, queries), scores and boxes within 1e-4 and the
    same masks / panoptic and semantic maps as PyTorch inference."""
    model = OnnxMaskDINO(str(exported['onnx']), exported['cfg'])
    detector = exported['detector']
    for head in (model.fusion_head, detector.panoptic_fusion_head):
        head.test_cfg.update(TASK_FLAGS[task])
    images = [str(p) for p in exported['images'][:2]]
    data = model.preprocess(images)
    outputs = model.forward(data['inputs'])
    with torch.no_grad():
        expected = detector._forward(data['inputs'])
    assert outputs[0].shape == (2, 20, 5)
    assert outputs[1].shape == (2, 20, 32, 32)
    for name, ours, reference in zip(OUTPUT_NAMES, outputs, expected):
        assert (ours - reference).abs().max() < TOL, name

    results = model(images)
    for image, result in zip(images, results):
        reference = inference_detector(detector, image)
        if task == 'instance':
            ours, ref = result.pred_instances, reference.pred_instances
            assert len(ours) == len(ref) == 100
            assert torch.equal(ours.labels, ref.labels)
            assert torch.equal(ours.query_indices, ref.query_indices)
            assert (ours.scores - ref.scores).abs().max() < TOL
            assert (ours.bboxes - ref.bboxes).abs().max() < TOL
            assert ours.masks.shape == ref.masks.shape
            assert (ours.masks == ref.masks).float().mean() > 0.999
        elif task == 'panoptic':
            ours = result.pred_panoptic_seg.sem_seg
            ref = reference.pred_panoptic_seg.sem_seg
            assert ours.shape == ref.shape
            assert (ours == ref).float().mean() > 0.999
        else:
            ours, ref = result.pred_sem_seg, reference.pred_sem_seg
            assert (ours.seg_logits - ref.seg_logits).abs().max() < TOL
            assert (ours.sem_seg == ref.sem_seg).float().mean() > 0.999
        assert set(result.keys()) == set(reference.keys())


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
    assert '2 images in ' in stdout and 'images/s' in stdout
    for image in exported['images'][:2]:
        drawn = mmcv.imread(str(tmp_path / 'out' / 'vis' / image.name))
        original = mmcv.imread(str(image))
        assert drawn.shape == original.shape
        assert changed_pixels(drawn, original) > 100


def test_images_larger_than_the_graph_are_shrunk_to_fit(exported, tmp_path):
    """A 96 x 96 graph on 128 x 128 images: the image is shrunk to fit,
    the results come back at the original size."""
    onnx_file = tmp_path / 'small.onnx'
    run_tool('export_onnx.py', str(exported['cfg_file']), 'none',
             str(onnx_file), '--task', 'instance', '--img-size', '96', '96')
    model = OnnxMaskDINO(str(onnx_file), exported['cfg'])
    image = str(exported['images'][0])
    data = model.preprocess([image])
    assert data['inputs'].shape == (1, 3, 96, 96)
    assert max(data['data_samples'][0].img_shape) == 96
    (result, ) = model(image)
    height, width = mmcv.imread(image).shape[:2]
    assert result.pred_instances.masks.shape == (100, height, width)
    boxes = result.pred_instances.bboxes
    assert boxes.shape == (100, 4) and boxes.isfinite().all()


def test_a_config_that_does_not_fit_the_graph_is_refused(
        exported, shapes_root):
    """The semantic config (softmax classes, C + 1 logits) with the instance
    graph (C logits)."""
    from tests.test_apis.utils import shapes_config
    cfg = shapes_config('maskdino_r18-tiny_1xb4-2k_shapes-semantic',
                        shapes_root)
    with pytest.raises(ValueError, match='class logits'):
        OnnxMaskDINO(str(exported['onnx']), cfg)
