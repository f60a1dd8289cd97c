# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
"""Checks of annotation files before training or testing starts.

MMDetection's datasets read COCO-style files leniently: a polygon of two
points, an RLE of the wrong size, a panoptic PNG holding a segment id that
its json does not list, or an ADE20K label above 150 load without a word and
break hours later inside pycocotools, panopticapi or a tensor op (or bend the
metric silently). :func:`check_datasets` reads every annotation file a config
uses (datasets and evaluators) once, before the Runner is built, and raises
:class:`AnnotationError` naming the file, the image or annotation id and the
fault; harmless oddities (annotations of classes the config does not use,
boxes the dataset drops) are logged as warnings. ``tools/train.py`` and
``tools/test.py`` call it.

What is checked:

* COCO instance json: parses; ``images`` not empty; unique image,
  annotation and category ids; every annotation's image and category exist;
  ``bbox`` is 4 finite numbers; polygons have at least 3 points (an even
  number of finite coordinates); RLE ``size`` equals its image's size;
  ``segmentation`` present where the evaluation needs masks; the config's
  classes are found among the categories; image files exist.
* COCO panoptic json + PNGs: the same for images, segments and categories;
  every PNG exists and, for evaluation files, every non-zero segment id in
  a PNG is listed in the json.
* Semantic label maps (ADE20K, Cityscapes, custom): every image has a map;
  every value is a class index (``1..C`` with ``reduce_zero_label``, else
  ``0..C-1``), 0 (with ``reduce_zero_label``) or 255 (ignore).
"""
import json
import math
import os.path as osp
from concurrent.futures import ThreadPoolExecutor
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
from mmengine.config import Config, ConfigDict
from mmengine.logging import print_log
from PIL import Image

from .metainfo import dataset_metainfo

IGNORE_INDEX = 255
MAX_LISTED = 5


class AnnotationError(ValueError):
    """An annotation file that would break training or evaluation."""


def _warn(message: str) -> None:
    print_log(message, logger='current', level=30)


def _listed(items: Sequence) -> str:
    """At most ``MAX_LISTED`` items and how many more there are."""
    items = list(items)
    more = len(items) - MAX_LISTED
    shown = ', '.join(map(str, items[:MAX_LISTED]))
    return shown + (f' and {more} more' if more > 0 else '')


def load_json(path: str) -> dict:
    """A COCO-style json with ``images`` (not empty), ``annotations`` and
    ``categories``."""
    if not osp.isfile(path):
        raise AnnotationError(f'{path}: annotation file not found')
    try:
        with open(path) as f:
            data = json.load(f)
    except json.JSONDecodeError as err:
        raise AnnotationError(f'{path}: not valid json ({err})') from None
    if not isinstance(data, dict):
        raise AnnotationError(f'{path}: expected a json object with images, '
                              'annotations and categories')
    for key in ('images', 'annotations', 'categories'):
        if not isinstance(data.get(key), list):
            raise AnnotationError(f'{path}: `{key}` is missing or not a list')
    if not data['images']:
        raise AnnotationError(f'{path}: the `images` list is empty; a '
                              'dataset needs at least one image')
    return data


def _unique_ids(path: str, entries: List[dict], what: str) -> Dict:
    """``{id: entry}``; raises on missing or repeated ids."""
    by_id = {}
    for idx, entry in enumerate(entries):
        if not isinstance(entry, dict) or 'id' not in entry:
            raise AnnotationError(f'{path}: {what} #{idx} has no `id`')
        if entry['id'] in by_id:
            raise AnnotationError(
                f'{path}: {what} id {entry["id"]} appears twice')
        by_id[entry['id']] = entry
    return by_id


def _check_images(path: str, images: List[dict]) -> Dict:
    """Image entries: unique ids, a file name and a positive size."""
    by_id = _unique_ids(path, images, 'image')
    for image_id, img in by_id.items():
        if not isinstance(img.get('file_name'), str):
            raise AnnotationError(f'{path}: image {image_id} has no '
                                  '`file_name`')
        for key in ('height', 'width'):
            value = img.get(key)
            if not isinstance(value, int) or value <= 0:
                raise AnnotationError(
                    f'{path}: image {image_id} ({img["file_name"]}) has '
                    f'{key}={value!r}; expected a positive integer')
    return by_id


def _check_classes(path: str, categories: Dict, classes: Sequence[str],
                   used: Dict[int, int]) -> None:
    """The config's classes against the json's category names."""
    names = {c.get('name') for c in categories.values()}
    missing = [c for c in classes if c not in names]
    if len(missing) == len(classes):
        raise AnnotationError(
            f'{path}: none of the config\'s {len(classes)} classes '
            f'({_listed(classes)}) is a category of this file (its '
            f'categories: {_listed(sorted(map(str, names)))}); set '
            '`metainfo=dict(classes=...)` to the json\'s category names')
    if missing:
        _warn(f'{path}: the config\'s classes {_listed(missing)} are not '
              'categories of this file (they get no annotations)')
    ignored = {
        categories[cid]['name']: n
        for cid, n in used.items()
        if categories[cid].get('name') not in classes
    }
    if ignored:
        _warn(f'{path}: annotations of categories not among the config\'s '
              f'classes are ignored: {_listed(sorted(ignored.items()))} '
              '(name, count)')


def _is_number(value) -> bool:
    return isinstance(
        value,
        (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_segmentation(path: str, ann: dict, image: dict) -> None:
    """Polygons of >= 3 points, or an RLE of its image's size."""
    where = (f'{path}: annotation {ann["id"]} (image {ann["image_id"]}, '
             f'{image["file_name"]})')
    seg = ann['segmentation']
    if isinstance(seg, list):
        if not seg and not ann.get('iscrowd', 0):
            raise AnnotationError(f'{where}: empty polygon list')
        for k, poly in enumerate(seg):
            if not isinstance(poly, list) or not all(map(_is_number, poly)):
                raise AnnotationError(
                    f'{where}: polygon {k} is not a list of finite numbers')
            if len(poly) % 2 or len(poly) < 6:
                raise AnnotationError(
                    f'{where}: polygon {k} has {len(poly)} coordinates; a '
                    'polygon needs at least 3 (x, y) points')
    elif isinstance(seg, dict):
        if 'counts' not in seg or 'size' not in seg:
            raise AnnotationError(f'{where}: RLE without `counts` or `size`')
        if list(seg['size']) != [image['height'], image['width']]:
            raise AnnotationError(
                f'{where}: RLE size {list(seg["size"])} differs from the '
                f'image size {[image["height"], image["width"]]}')
    else:
        raise AnnotationError(f'{where}: `segmentation` must be polygons '
                              f'or an RLE dict, got {type(seg).__name__}')


def check_coco_instances(path: str,
                         classes: Sequence[str],
                         img_dir: Optional[str] = None,
                         need_masks: bool = False) -> None:
    """Check a COCO instance json (see the module docstring).

    Args:
        path: the json file.
        classes: the config's class names.
        img_dir: folder of the images, to check that they exist.
        need_masks: whether every non-crowd annotation must carry a
            ``segmentation`` (mask training or segm evaluation).
    """
    data = load_json(path)
    images = _check_images(path, data['images'])
    categories = _unique_ids(path, data['categories'], 'category')
    _unique_ids(path, data['annotations'], 'annotation')
    used: Dict[int, int] = {}
    for ann in data['annotations']:
        where = f'{path}: annotation {ann["id"]}'
        image = images.get(ann.get('image_id'))
        if image is None:
            raise AnnotationError(f'{where} refers to image id '
                                  f'{ann.get("image_id")!r}, which is not '
                                  'in `images`')
        if ann.get('category_id') not in categories:
            raise AnnotationError(
                f'{where} (image {ann["image_id"]}) has category id '
                f'{ann.get("category_id")!r}, which is not in `categories`')
        used[ann['category_id']] = used.get(ann['category_id'], 0) + 1
        bbox = ann.get('bbox')
        if not (isinstance(bbox, list) and len(bbox) == 4
                and all(map(_is_number, bbox))):
            raise AnnotationError(f'{where} (image {ann["image_id"]}): '
                                  f'`bbox` must be 4 finite numbers [x, y, '
                                  f'w, h], got {bbox!r}')
        if ann.get('iscrowd', 0) not in (0, 1):
            raise AnnotationError(f'{where}: iscrowd must be 0 or 1')
        if 'segmentation' in ann:
            _check_segmentation(path, ann, image)
        elif need_masks and not ann.get('iscrowd', 0):
            raise AnnotationError(
                f'{where} (image {ann["image_id"]}) has no `segmentation`, '
                'but the config trains or evaluates masks')
    _check_classes(path, categories, classes, used)
    if img_dir is not None:
        _check_files_exist(path, img_dir,
                           [img['file_name'] for img in images.values()],
                           'image')


def _check_files_exist(path: str, folder: str, names: Iterable[str],
                       what: str) -> None:
    missing = [n for n in names if not osp.isfile(osp.join(folder, n))]
    if missing:
        raise AnnotationError(
            f'{path}: {len(missing)} {what} file(s) not found in {folder}: '
            f'{_listed(missing)}')


def _png_segment_ids(png_path: str) -> np.ndarray:
    """The distinct non-zero segment ids of a COCO panoptic PNG."""
    rgb = np.asarray(Image.open(png_path).convert('RGB'), dtype=np.uint32)
    ids = np.unique(rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2])
    return ids[ids != 0]


def check_coco_panoptic(path: str,
                        seg_dir: str,
                        classes: Sequence[str],
                        img_dir: Optional[str] = None,
                        check_pngs: bool = True) -> None:
    """Check a COCO panoptic json and its PNGs (see the module docstring).

    Args:
        path: the json file.
        seg_dir: folder of the panoptic PNGs.
        classes: the config's class names (things, then stuff).
        img_dir: folder of the images, to check that they exist.
        check_pngs: also read every PNG and compare its segment ids with the
            json (what panoptic evaluation requires).
    """
    data = load_json(path)
    images = _check_images(path, data['images'])
    categories = _unique_ids(path, data['categories'], 'category')
    used: Dict[int, int] = {}
    segments_of: Dict[str, Tuple[int, set]] = {}
    for ann in data['annotations']:
        image_id = ann.get('image_id')
        if image_id not in images:
            raise AnnotationError(f'{path}: a panoptic annotation refers to '
                                  f'image id {image_id!r}, which is not in '
                                  '`images`')
        file_name = ann.get('file_name')
        if not isinstance(file_name, str):
            raise AnnotationError(f'{path}: the annotation of image '
                                  f'{image_id} has no PNG `file_name`')
        ids = set()
        for seg in ann.get('segments_info', []):
            where = f'{path}: image {image_id}, segment {seg.get("id")!r}'
            if seg.get('id') in ids:
                raise AnnotationError(f'{where} appears twice')
            ids.add(seg.get('id'))
            if seg.get('category_id') not in categories:
                raise AnnotationError(
                    f'{where} has category id {seg.get("category_id")!r}, '
                    'which is not in `categories`')
            used[seg['category_id']] = used.get(seg['category_id'], 0) + 1
        segments_of[file_name] = (image_id, ids)
    _check_classes(path, categories, classes, used)
    _check_files_exist(path, seg_dir, segments_of, 'panoptic PNG')
    if img_dir is not None:
        _check_files_exist(path, img_dir,
                           [img['file_name'] for img in images.values()],
                           'image')
    if not check_pngs:
        return
    names = sorted(segments_of)
    with ThreadPoolExecutor(4) as pool:
        found = pool.map(lambda n: _png_segment_ids(osp.join(seg_dir, n)),
                         names)
        for name, png_ids in zip(names, found):
            image_id, ids = segments_of[name]
            unknown = sorted(set(png_ids.tolist()) - ids)
            if unknown:
                raise AnnotationError(
                    f'{osp.join(seg_dir, name)} (image {image_id}): segment '
                    f'ids {_listed(unknown)} are in the PNG but not in the '
                    f'`segments_info` of {path}')


def check_label_maps(seg_dir: str, img_dir: str, img_suffix: str,
                     seg_map_suffix: str, num_classes: int,
                     reduce_zero_label: bool) -> None:
    """Check the semantic label maps of a segmentation dataset.

    Every image under ``img_dir`` needs a map under ``seg_dir`` (same
    relative path, ``seg_map_suffix``) whose values are valid labels (see
    the module docstring).
    """
    from mmengine.fileio import list_dir_or_file
    if not osp.isdir(img_dir):
        raise AnnotationError(f'{img_dir}: image folder not found')
    stems = sorted(f[:-len(img_suffix)] for f in list_dir_or_file(
        img_dir, list_dir=False, suffix=img_suffix, recursive=True))
    if not stems:
        raise AnnotationError(f'{img_dir}: no `*{img_suffix}` images')
    maps = [osp.join(seg_dir, s + seg_map_suffix) for s in stems]
    missing = [m for m in maps if not osp.isfile(m)]
    if missing:
        raise AnnotationError(f'{seg_dir}: {len(missing)} label map(s) not '
                              f'found: {_listed(missing)}')
    low, high = (0, num_classes) if reduce_zero_label else (0, num_classes - 1)
    valid = np.zeros(256, bool)
    valid[low:high + 1] = True
    valid[IGNORE_INDEX] = True
    with ThreadPoolExecutor(4) as pool:
        for path, values in zip(
                maps,
                pool.map(lambda m: np.unique(np.asarray(Image.open(m))),
                         maps)):
            if values.dtype.kind not in 'ui' or values.max() > 255:
                raise AnnotationError(f'{path}: label maps must hold 8-bit '
                                      f'class indices, got {values.dtype}')
            bad = values[~valid[values.astype(np.int64)]]
            if bad.size:
                raise AnnotationError(
                    f'{path}: labels {_listed(bad.tolist())} are outside '
                    f'{low}..{high} (and 255 = ignore) for {num_classes} '
                    'classes' +
                    (' with reduce_zero_label' if reduce_zero_label else ''))


# --------------------------------------------------------------------------
# Configs
# --------------------------------------------------------------------------
def _leaf_datasets(dataset_cfg: ConfigDict) -> List[ConfigDict]:
    """The datasets inside wrappers (Concat, Repeat, ClassBalanced)."""
    if 'datasets' in dataset_cfg:
        return [d for sub in dataset_cfg.datasets for d in _leaf_datasets(sub)]
    if 'dataset' in dataset_cfg:
        return _leaf_datasets(dataset_cfg.dataset)
    return [dataset_cfg]


def _join(root: Optional[str], path: Optional[str]) -> Optional[str]:
    if path is None or osp.isabs(path) or not root:
        return path
    return osp.join(root, path)


def _load_annotations(pipeline: Sequence[dict]) -> dict:
    """The pipeline's ``LoadAnnotations`` step (empty if it has none)."""
    return next((t for t in pipeline if t.get('type') == 'LoadAnnotations'),
                {})


def _check_dataset(dataset_cfg: ConfigDict, scope: str,
                   evaluated: bool) -> Optional[List[str]]:
    """Check one dataset of a dataloader; returns its classes."""
    kind = dataset_cfg.get('type')
    root = dataset_cfg.get('data_root')
    prefix = dataset_cfg.get('data_prefix', {})
    classes = list(dataset_metainfo(dataset_cfg, scope)['classes'])
    loading = _load_annotations(dataset_cfg.get('pipeline', []))
    if kind == 'CocoDataset':
        check_coco_instances(
            _join(root, dataset_cfg.ann_file),
            classes,
            _join(root, prefix.get('img')),
            need_masks=loading.get('with_mask', False))
    elif kind == 'CocoPanopticDataset':
        check_coco_panoptic(
            _join(root, dataset_cfg.ann_file),
            _join(root, prefix.get('seg')),
            classes,
            _join(root, prefix.get('img')),
            check_pngs=evaluated)
    elif kind in ('ADE20KSegDataset', 'BaseSegDataset'):
        check_label_maps(
            _join(root, prefix.get('seg_map_path')),
            _join(root, prefix.get('img_path')),
            dataset_cfg.get('img_suffix', '.jpg'),
            dataset_cfg.get('seg_map_suffix', '.png'), len(classes),
            loading.get('reduce_zero_label', False))
    return classes


def _check_evaluator(evaluator: ConfigDict, classes: List[str]) -> None:
    """Check the ground-truth files an evaluator reads itself."""
    kind = evaluator.get('type')
    if kind == 'CocoMetric' and evaluator.get('ann_file'):
        metrics = evaluator.get('metric', 'bbox')
        metrics = [metrics] if isinstance(metrics, str) else metrics
        check_coco_instances(
            evaluator.ann_file, classes, need_masks='segm' in metrics)
    elif kind == 'CocoPanopticMetric' and evaluator.get('ann_file'):
        check_coco_panoptic(
            evaluator.ann_file, evaluator.seg_prefix, classes, check_pngs=True)


def check_datasets(cfg: Config, stages: Sequence[str]) -> None:
    """Check every annotation file that ``stages`` of ``cfg`` read.

    Args:
        cfg: a runner config.
        stages: any of ``'train'``, ``'val'``, ``'test'``: their dataloaders
            (and, for val/test, their evaluators) are checked.

    Raises:
        AnnotationError: naming the file, the image/annotation and the fault.
    """
    scope = cfg.get('default_scope', 'mmdet')
    for stage in stages:
        loader = cfg.get(f'{stage}_dataloader')
        if not loader:
            continue
        evaluated = stage != 'train'
        classes = None
        for dataset_cfg in _leaf_datasets(loader.dataset):
            classes = _check_dataset(dataset_cfg, scope, evaluated)
        evaluators = cfg.get(f'{stage}_evaluator') if evaluated else None
        if isinstance(evaluators, dict):
            evaluators = [evaluators]
        for evaluator in evaluators or []:
            _check_evaluator(evaluator, classes)
