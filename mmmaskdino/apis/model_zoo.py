# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
"""Look up Mask DINO models by their metafile name.

MMDetection's ``DetInferencer('name')`` only searches the model zoos of the
official OpenMMLab packages, so mmmaskdino reads its own ``model-index.yml``
(and the metafiles it imports) here. The index is found next to the package:

* ``mmmaskdino/.mim/model-index.yml`` in an installed wheel (or a develop
  install with the ``.mim`` symlinks), and
* ``<checkout>/model-index.yml`` when running from a repository checkout.

Every path in the index is relative to the folder that holds it.
"""
import os.path as osp
from typing import Dict, Optional, Tuple

from mmengine.fileio import load

PACKAGE_DIR = osp.dirname(osp.dirname(osp.abspath(__file__)))
INDEX_FILE = 'model-index.yml'


def model_index_root() -> str:
    """Folder holding ``model-index.yml`` (and ``configs/``).

    Raises:
        FileNotFoundError: If neither the ``.mim`` copy nor a checkout's
            index exists.
    """
    candidates = [
        osp.join(PACKAGE_DIR, '.mim'),
        osp.dirname(PACKAGE_DIR),
    ]
    for root in candidates:
        if osp.isfile(osp.join(root, INDEX_FILE)):
            return root
    raise FileNotFoundError(
        f'{INDEX_FILE} not found in any of {candidates}; install mmmaskdino '
        'from a wheel/sdist or run from a repository checkout')


def list_models() -> Dict[str, dict]:
    """All models of the metafiles, by name.

    Returns:
        dict[str, dict]: ``name -> dict(config=<absolute path>,
        weights=<URL or None>, results=<list of metafile results>)``.
    """
    root = model_index_root()
    index = load(osp.join(root, INDEX_FILE))
    models = {}
    for metafile in index.get('Import', []):
        for entry in load(osp.join(root, metafile)).get('Models', []):
            models[entry['Name']] = dict(
                config=osp.join(root, entry['Config']),
                weights=entry.get('Weights'),
                results=entry.get('Results', []))
    return models


def get_model_info(name: str) -> dict:
    """Config path, weights URL and results of the model called ``name``.

    Raises:
        KeyError: If no metafile entry has that name; the message lists the
            known names.
    """
    models = list_models()
    if name not in models:
        raise KeyError(f'unknown Mask DINO model {name!r}; known models: '
                       f'{", ".join(sorted(models))}')
    return models[name]


def resolve_model(name_or_config: str,
                  weights: Optional[str] = None) -> Tuple[str, Optional[str]]:
    """Map a metafile name to ``(config path, weights)``.

    A path to an existing file is returned unchanged with ``weights``; a
    metafile name gives its config and, unless ``weights`` is given, its
    weights URL.
    """
    if osp.isfile(name_or_config):
        return name_or_config, weights
    info = get_model_info(name_or_config)
    return info['config'], weights if weights is not None else info['weights']
