# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
"""Runner checkpoints written with WeightsOnlyCheckpointHook load with
weights_only=True; foreign objects do not; importing mmmaskdino patches
nothing."""
import os
import pickle

import numpy as np
import pytest
import torch
import torch.nn as nn
from mmengine.logging import HistoryBuffer
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch.utils.data import Dataset

import mmmaskdino  # noqa: F401


class _Regressor(BaseModel):

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(2, 1)

    def forward(self, inputs, mode='loss'):
        pred = self.linear(inputs)
        return dict(loss=((pred - 1)**2).mean())


class _Points(Dataset):

    def __len__(self):
        return 8

    def __getitem__(self, idx):
        return dict(inputs=torch.full((2, ), float(idx)))


def _runner(work_dir, max_iters, **kwargs) -> Runner:
    return Runner(
        model=_Regressor(),
        work_dir=str(work_dir),
        train_dataloader=dict(
            dataset=_Points(),
            sampler=dict(type='InfiniteSampler', shuffle=False),
            batch_size=2,
            collate_fn=dict(type='default_collate')),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01)),
        train_cfg=dict(by_epoch=False, max_iters=max_iters),
        default_hooks=dict(
            checkpoint=dict(type='CheckpointHook', interval=2,
                            by_epoch=False)),
        randomness=dict(seed=0),
        custom_hooks=[dict(type='WeightsOnlyCheckpointHook')],
        default_scope='mmdet',
        **kwargs)


def test_runner_checkpoint_loads_weights_only(tmp_path):
    _runner(tmp_path, 4).train()
    ckpt = torch.load(tmp_path / 'iter_4.pth', weights_only=True)
    assert ckpt['meta']['iter'] == 4
    history = ckpt['message_hub']['log_scalars']['train/loss']
    assert len(history['log_history']) == 4
    assert np.isfinite(history['log_history']).all()


def test_resume_restores_the_history_buffers(tmp_path):
    first = _runner(tmp_path, 4)
    first.train()
    losses = first.message_hub.get_scalar('train/loss').data[0].tolist()
    resumed = _runner(tmp_path, 4, resume=True)
    resumed.load_or_resume()
    buffer = resumed.message_hub.get_scalar('train/loss')
    assert isinstance(buffer, HistoryBuffer)
    assert buffer.data[0].tolist() == losses
    assert buffer.mean() == pytest.approx(np.mean(losses))


def test_import_patches_nothing():
    assert '__reduce__' not in vars(HistoryBuffer)


def test_without_the_hook_weights_only_loading_fails(tmp_path):
    runner = _runner(tmp_path, 2)
    runner._hooks = [
        h for h in runner._hooks
        if type(h).__name__ != 'WeightsOnlyCheckpointHook'
    ]
    runner.train()
    with pytest.raises(pickle.UnpicklingError):
        torch.load(tmp_path / 'iter_2.pth', weights_only=True)


def test_resume_and_load_from(tmp_path):
    _runner(tmp_path, 4).train()
    resumed = _runner(tmp_path, 6, resume=True)
    resumed.train()
    assert resumed.iter == 6
    weights = resumed.model.linear.weight.detach().clone()

    other = tmp_path / 'other'
    loaded = _runner(other, 0, load_from=str(tmp_path / 'iter_6.pth'))
    loaded.load_or_resume()
    assert torch.equal(loaded.model.linear.weight, weights)


class _Payload:

    def __reduce__(self):
        return (os.getcwd, ())


def test_foreign_objects_are_still_refused(tmp_path):
    path = tmp_path / 'evil.pth'
    torch.save({'state_dict': {}, 'payload': _Payload()}, path)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path, weights_only=True)
