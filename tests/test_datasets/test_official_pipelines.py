# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
"""The shipped training pipelines reproduce the official dataset mappers.

``../shared/parity/pipeline_{instance,panoptic,semantic}.pt`` hold what the
official ``COCOInstanceNewBaselineDatasetMapper``,
``COCOPanopticNewBaselineDatasetMapper`` and
``MaskFormerSemanticDatasetMapper`` produce for small samples in the real COCO,
COCO panoptic and ADE20K formats, with every random choice recorded. Each case
writes the sample in the real on-disk layout, builds the shipped config's train
dataset (the real dataset class and pipeline, data root redirected), replays
the recorded choices through the transforms' sampling methods and compares
image, classes, boxes, masks and label maps with the official outputs; then the
head's targets (labels, normalised boxes, padded masks) built from the sample
after the shipped data preprocessor, with the official targets.
"""
import hashlib
import io
import zlib
from pathlib import Path
from typing import Dict, List

import mmcv
import numpy as np
import pytest
import torch
from mmdet.registry import DATASETS, MODELS
from mmdet.structures.bbox import bbox_xyxy_to_cxcywh
from mmdet.utils import register_all_modules
from mmengine.config import Config
from mmengine.registry import DefaultScope
from PIL import Image

from mmmaskdino.utils.tool_utils import redirect_data_root
from tests.conftest import REPO_ROOT, load_parity_fixture

CONFIGS = dict(
    instance='maskdino_r50_4xb4-lsj-50e_coco.py',
    panoptic='maskdino_r50_4xb4-lsj-50e_coco-panoptic.py',
    semantic='maskdino_r50_4xb4-160k_ade20k-512x512.py')
DATA_DIRS = dict(
    instance='coco', panoptic='coco', semantic='ADEChallengeData2016')
# Instance boxes come from float64 polygon coordinates in both
# implementations; they agree to float32 rounding.
BOX_ATOL = 1e-4


def unpack(entry) -> np.ndarray:
    """A packed array of the fixtures (PIPELINES.md, section 2)."""
    raw = entry['data'].numpy().tobytes()
    if entry['codec'] == 'png':
        arr = np.asarray(Image.open(io.BytesIO(raw))).transpose(2, 0, 1)
    else:
        arr = np.frombuffer(
            zlib.decompress(raw), dtype=entry['dtype']).reshape(entry['shape'])
    arr = np.ascontiguousarray(arr)
    assert hashlib.sha256(arr.tobytes()).hexdigest() == entry['sha256']
    return arr


def write_bytes(path: Path, tensor: torch.Tensor) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(tensor.numpy().tobytes())


def write_sample(kind: str, fixture: dict, root: Path) -> None:
    """The fixture's raw files in the layout the shipped config reads."""
    inputs = fixture['inputs']
    if kind == 'instance':
        write_bytes(root / 'train2017/000000000001.jpg', inputs['image_jpeg'])
        (root / 'annotations').mkdir(parents=True, exist_ok=True)
        (root / 'annotations/instances_train2017.json').write_text(
            inputs['coco_json'])
    elif kind == 'panoptic':
        write_bytes(root / 'train2017/000000000002.jpg', inputs['image_jpeg'])
        write_bytes(root / 'annotations/panoptic_train2017/000000000002.png',
                    inputs['pan_png'])
        (root / 'annotations/panoptic_train2017.json').write_text(
            inputs['panoptic_json'])
    else:
        for stem, files in inputs.items():
            write_bytes(root / f'images/training/{stem}.jpg',
                        files['image_jpeg'])
            write_bytes(root / f'annotations/training/{stem}.png',
                        files['label_png_ade'])


def pipeline_step(dataset, type_name: str):
    (step, ) = [
        t for t in dataset.pipeline.transforms if type(t).__name__ == type_name
    ]
    return step


def replay(kind: str, dataset, choices: dict) -> None:
    """Make the pipeline's random steps return the recorded choices."""
    flip = 'horizontal' if choices['flip'] else None
    pipeline_step(dataset, 'RandomFlip')._choose_direction = lambda: flip
    if kind in ('instance', 'panoptic'):
        pipeline_step(
            dataset,
            'ResizeScale')._sample_scale = (lambda: choices['lsj_scale'])
        pipeline_step(dataset, 'FixedSizeCrop')._sample_offset_fraction = (
            lambda: choices['crop_draw'])
        return
    pipeline_step(dataset, 'RandomChoiceResize')._random_select = (
        lambda: (choices['short_edge'], choices['short_edge_index']))
    pipeline_step(dataset, 'RandomCrop')._rand_offset = (
        lambda margin: tuple(choices['crop_y0x0']))
    pipeline_step(
        dataset,
        'ColorAugSSD')._sample_params = (lambda: dict(choices['color']))


@pytest.fixture(scope='module', params=sorted(CONFIGS))
def setup(request, tmp_path_factory):
    """(kind, fixture, shipped config redirected to the written sample)."""
    kind = request.param
    fixture = load_parity_fixture(f'pipeline_{kind}')
    root = tmp_path_factory.mktemp(kind) / DATA_DIRS[kind]
    write_sample(kind, fixture, root)
    register_all_modules()
    cfg = Config.fromfile(REPO_ROOT / 'configs/maskdino' / CONFIGS[kind])
    redirect_data_root(cfg, str(root))
    return kind, fixture, cfg


def build_dataset(cfg: Config):
    with DefaultScope.overwrite_default_scope('mmdet'):
        return DATASETS.build(cfg.train_dataloader.dataset)


def run_case(kind: str, cfg: Config, case: dict) -> dict:
    dataset = build_dataset(cfg)
    replay(kind, dataset, case['choices'])
    index = 0
    if kind == 'semantic':
        index = [Path(d['img_path']).stem
                 for d in dataset.load_data_list()].index(case['image'])
    return dataset[index]


def official_targets(outputs: dict) -> Dict[str, np.ndarray]:
    return dict(
        labels=outputs['gt_classes'].numpy(),
        boxes=outputs['gt_boxes'].numpy(),
        masks=unpack(outputs['gt_masks']).astype(bool))


def our_targets(kind: str, sample) -> Dict[str, np.ndarray]:
    """Classes, boxes and masks of a packed sample, before the model."""
    if kind == 'semantic':
        sem = sample.gt_sem_seg.sem_seg[0].numpy()
        labels = np.array(sorted(set(np.unique(sem).tolist()) - {255}))
        return dict(labels=labels, sem_seg=sem)
    gt = sample.gt_instances
    return dict(
        labels=gt.labels.numpy(),
        boxes=gt.bboxes.tensor.numpy(),
        masks=gt.masks.to_ndarray().astype(bool))


def case_ids(kind: str) -> List[str]:
    return [
        c['name'] for c in load_parity_fixture(f'pipeline_{kind}')['cases']
    ]


def test_pipelines_reproduce_official_mapper_outputs(setup):
    kind, fixture, cfg = setup
    for case in fixture['cases']:
        data = run_case(kind, cfg, case)
        outputs = case['outputs']
        image = data['inputs'].numpy()[::-1]  # BGR -> RGB, CHW
        expected_image = unpack(outputs['image'])
        assert image.shape == expected_image.shape, case['name']
        differing = int((image != expected_image).any(0).sum())
        assert differing == 0, f'{case["name"]}: {differing} pixels differ'
        ours = our_targets(kind, data['data_samples'])
        expected = official_targets(outputs)
        np.testing.assert_array_equal(
            ours['labels'], expected['labels'], err_msg=case['name'])
        if kind == 'semantic':
            expected_sem = unpack(outputs['sem_seg'])
            np.testing.assert_array_equal(
                ours['sem_seg'], expected_sem, err_msg=case['name'])
            print(f'PIPELINE {kind} {case["name"]}: image pixels differing '
                  f'{differing}, targets {len(ours["labels"])} vs '
                  f'{len(expected["labels"])}, label pixels differing '
                  f'{int((ours["sem_seg"] != expected_sem).sum())}')
            continue
        assert ours['masks'].shape == expected['masks'].shape
        np.testing.assert_array_equal(
            ours['masks'].sum((1, 2)),
            outputs['gt_mask_areas'].numpy(),
            err_msg=case['name'])
        np.testing.assert_array_equal(
            ours['masks'], expected['masks'], err_msg=case['name'])
        np.testing.assert_allclose(
            ours['boxes'],
            expected['boxes'],
            atol=BOX_ATOL,
            rtol=0,
            err_msg=case['name'])
        box_diff = float(
            np.abs(ours['boxes'] - expected['boxes']).max(initial=0))
        print(f'PIPELINE {kind} {case["name"]}: image pixels differing '
              f'{differing}, targets {len(ours["labels"])} vs '
              f'{len(expected["labels"])}, masks differing '
              f'{int((ours["masks"] != expected["masks"]).sum())} px, box max '
              f'|diff| {box_diff:.2e}')


def test_head_targets_equal_official_targets(setup):
    """What reaches the loss: the head's targets after the shipped data
    preprocessor, against the official targets normalised by the image
    size (cxcywh / S), the official model's own normalisation."""
    kind, fixture, cfg = setup
    cfg.model.backbone.init_cfg = None
    preprocessor = MODELS.build(cfg.model.data_preprocessor)
    head_cfg = cfg.model.panoptic_head
    head_cfg.pixel_decoder.num_encoder_layers = 1
    head_cfg.predictor.num_layers = 1
    head = MODELS.build(head_cfg)
    for case in fixture['cases']:
        data = run_case(kind, cfg, case)
        batch = preprocessor(
            dict(inputs=[data['inputs']], data_samples=[data['data_samples']]),
            True)
        (target, ) = head.get_targets(batch['data_samples'],
                                      torch.device('cpu'))
        expected = official_targets(case['outputs'])
        size = case['outputs']['image_size'][0]
        assert batch['inputs'].shape[-2:] == (size, size)
        np.testing.assert_array_equal(
            target.labels.numpy(), expected['labels'], err_msg=case['name'])
        boxes = bbox_xyxy_to_cxcywh(torch.from_numpy(expected['boxes'])) / size
        torch.testing.assert_close(
            target.bboxes, boxes, atol=BOX_ATOL / size, rtol=0)
        np.testing.assert_array_equal(
            target.masks.numpy().astype(bool),
            expected['masks'],
            err_msg=case['name'])


def test_fixture_decoding_matches_ours(setup):
    """Our loading step decodes the JPEGs as the official reader does."""
    kind, fixture, _ = setup
    inputs = fixture['inputs']
    files = ({
        k: v['image_jpeg']
        for k, v in inputs.items()
    } if kind == 'semantic' else {
        inputs['image_file']: inputs['image_jpeg']
    })
    decoded = {
        Path(k).stem: unpack(v)
        for k, v in fixture['decoded_images'].items()
    }
    for name, jpeg in files.items():
        ours = mmcv.imfrombytes(
            jpeg.numpy().tobytes(), backend='pillow',
            channel_order='rgb').transpose(2, 0, 1)
        np.testing.assert_array_equal(ours, decoded[Path(name).stem])


def test_case_count():
    assert [len(case_ids(k))
            for k in ('instance', 'panoptic', 'semantic')] == [5, 4, 3]
