# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
"""The shapes dataset configs build MMDetection datasets and pipelines."""
import numpy as np
import pytest
from mmengine import Config

from .conftest import CFG_DIR, build_shapes_dataset

IMAGE_SIZE = 128
NUM_THINGS, NUM_CLASSES = 5, 8


def test_configs_define_loaders_and_evaluators():
    for task in ('instance', 'detection', 'panoptic', 'semantic'):
        cfg = Config.fromfile(str(CFG_DIR / f'shapes_{task}.py'))
        for split in ('train', 'val', 'test'):
            loader = cfg[f'{split}_dataloader']
            assert (loader.batch_size, loader.num_workers) == (4, 2)
            assert loader.persistent_workers
            assert loader.dataset.data_root == 'data/shapes/'
        assert cfg.val_evaluator == cfg.test_evaluator
        assert cfg.image_size == (IMAGE_SIZE, IMAGE_SIZE)


@pytest.mark.parametrize('task,num_classes', [('instance', NUM_THINGS),
                                              ('detection', NUM_THINGS),
                                              ('panoptic', NUM_CLASSES)])
def test_instance_like_pipelines(shapes_root, task, num_classes):
    np.random.seed(0)
    train = build_shapes_dataset(task, 'train', shapes_root)
    val = build_shapes_dataset(task, 'val', shapes_root)
    assert (len(train), len(val)) == (8, 12)  # empty scenes are kept
    assert train.metainfo['classes'][:NUM_THINGS] == ('circle', 'square',
                                                      'triangle', 'star',
                                                      'ring')
    assert len(train.metainfo['classes']) == num_classes
    with_masks = task != 'detection'
    num_train_instances = 0
    for idx in range(len(train)):
        sample = train[idx]
        inputs, gt = sample['inputs'], sample['data_samples'].gt_instances
        assert inputs.shape[0] == 3 and max(inputs.shape[1:]) <= IMAGE_SIZE
        _check_instances(gt, inputs.shape[1:], with_masks)
        num_train_instances += len(gt)
    assert num_train_instances >= 10
    for idx in range(len(val)):
        sample = val[idx]
        data_sample = sample['data_samples']
        assert max(sample['inputs'].shape[1:]) == IMAGE_SIZE
        assert data_sample.img_id == val.get_data_info(idx)['img_id']
        # annotations stay at the original resolution for evaluation
        _check_instances(data_sample.gt_instances, data_sample.ori_shape,
                         with_masks)
    if task == 'panoptic':
        sem = val[0]['data_samples'].gt_sem_seg.sem_seg
        assert tuple(sem.shape[1:]) == val[0]['data_samples'].ori_shape
        assert set(sem.unique().tolist()) <= set(range(NUM_CLASSES)) | {255}
        assert int(sem.max()) >= NUM_THINGS  # stuff labels present


def _check_instances(gt, shape, with_masks: bool) -> None:
    """Labels in range, boxes inside the image, one mask per instance."""
    assert all(0 <= int(label) < NUM_THINGS for label in gt.labels)
    if len(gt):
        boxes = gt.bboxes.tensor
        assert float(boxes[:, 0].min()) >= 0 and float(boxes[:, 1].min()) >= 0
        assert float(boxes[:, 2].max()) <= shape[1] + 1e-3
        assert float(boxes[:, 3].max()) <= shape[0] + 1e-3
    if with_masks:
        assert gt.masks.masks.shape == (len(gt), *shape)
        assert all(m.sum() > 0 for m in gt.masks.masks)


def test_semantic_pipelines(shapes_root):
    np.random.seed(0)
    train = build_shapes_dataset('semantic', 'train', shapes_root)
    val = build_shapes_dataset('semantic', 'val', shapes_root)
    assert (len(train), len(val)) == (8, 12)
    labels = set()
    for idx in range(len(train)):
        sample = train[idx]
        sem = sample['data_samples'].gt_sem_seg.sem_seg
        assert tuple(sem.shape[1:]) == tuple(sample['inputs'].shape[1:])
        labels |= set(sem.unique().tolist())
    assert labels <= set(range(NUM_CLASSES)) | {255}
    assert len(labels & set(range(NUM_THINGS))) >= 3
    sample = val[0]
    sem = sample['data_samples'].gt_sem_seg.sem_seg
    assert tuple(sem.shape[1:]) == sample['data_samples'].ori_shape
    assert max(sample['inputs'].shape[1:]) == IMAGE_SIZE
