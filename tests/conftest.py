# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
"""Shared pytest fixtures."""
import os
from pathlib import Path

import pytest
import torch

from mmmaskdino.datasets.bundled_formats import generate_formats
from mmmaskdino.datasets.synthetic_shapes import generate_dataset

REPO_ROOT = Path(__file__).resolve().parents[1]
PARITY_DIR = Path(
    os.environ.get('MMMASKDINO_PARITY_DIR',
                   REPO_ROOT.parent / 'shared' / 'parity'))


def load_parity_fixture(variant: str) -> dict:
    """Load ``<PARITY_DIR>/<variant>.pt`` or skip the test with a message."""
    path = PARITY_DIR / f'{variant}.pt'
    if not path.is_file():
        pytest.skip(f'parity fixture {path} not found '
                    '(set MMMASKDINO_PARITY_DIR to the shared/parity folder)')
    return torch.load(path, map_location='cpu', weights_only=True)


@pytest.fixture(params=['instance', 'panoptic', 'semantic'])
def parity_fixture(request) -> dict:
    """Each of the three official-output fixtures in turn."""
    return load_parity_fixture(request.param)


SHAPES_SEED = 0
SHAPES_NUM_TRAIN = 8
SHAPES_NUM_VAL = 12


@pytest.fixture(scope='session')
def shapes_root(tmp_path_factory) -> Path:
    """Root of a small bundled-shapes dataset (8 train, 12 val scenes)."""
    root = tmp_path_factory.mktemp('shapes')
    generate_dataset(str(root), SHAPES_SEED, SHAPES_NUM_TRAIN, SHAPES_NUM_VAL)
    return root


BUNDLED_TRAIN = 4
BUNDLED_VAL = 3


@pytest.fixture(scope='session')
def bundled_root(tmp_path_factory) -> Path:
    """The bundled scenes in every real on-disk format (COCO, COCO panoptic,
    ADE20K, Cityscapes, custom), 4 train and 3 val scenes each."""
    root = tmp_path_factory.mktemp('bundled')
    generate_formats(
        str(root), seed=0, num_train=BUNDLED_TRAIN, num_val=BUNDLED_VAL)
    return root
