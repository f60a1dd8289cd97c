# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
"""The bundled synthetic scenes in the on-disk layouts of the real datasets.

The shipped full-size configs read COCO, COCO panoptic, ADE20K and
Cityscapes exactly as those datasets lie on disk, and the custom templates
read the layout of ``docs/tutorial_custom_dataset.md``. This module writes
small sets of the bundled shapes scenes (see :mod:`.synthetic_shapes`) in
each of those layouts, so that every config trains and tests on files in its
real format without a download::

    <root>/coco/train2017/*.jpg, val2017/*.jpg
    <root>/coco/annotations/instances_{train,val}2017.json
        polygons for non-crowd objects (several for an object split by
        occlusion), uncompressed RLE for ``iscrowd=1``; the 80 COCO
        categories with their ids (1..90, with gaps)
    <root>/coco/annotations/panoptic_{train,val}2017.json
    <root>/coco/annotations/panoptic_{train,val}2017/*.png
        COCO's 133 panoptic categories (80 things + 53 stuff, ids up to 200,
        ``isthing``)
    <root>/ADEChallengeData2016/images/{training,validation}/*.jpg
    <root>/ADEChallengeData2016/annotations/{training,validation}/*.png
        labels 1..150, 0 = "other" (ignored with ``reduce_zero_label``)
    <root>/cityscapes/leftImg8bit/{train,val}/<city>/*_leftImg8bit.png
    <root>/cityscapes/gtFine/{train,val}/<city>/*_gtFine_labelTrainIds.png
        train ids 0..18, 255 = ignore
    <root>/custom/images/{train,val}/*.jpg
    <root>/custom/annotations/instances_{train,val}.json    (cat, dog)
    <root>/custom/annotations/panoptic_{train,val}.json + panoptic_{split}/
        (things cat, dog; stuff grass, sky)
    <root>/custom/annotations/{train,val}/*.png             (road, building,
        vegetation; 255 = ignore)

Each shape class of the scenes stands for one class of the target dataset
(:data:`COCO_NAMES`, :data:`ADE20K_NAMES`, ...). The class lists themselves are
MMDetection's dataset ``METAINFO`` (Cityscapes: its 19 train ids), so the
files always agree with the dataset classes that read them.
"""
import json
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np
from PIL import Image

from .synthetic_shapes import (CLASSES, THING_CLASSES, _id_to_rgb, _make_scene,
                               _Scene, _scene_kinds)

# COCO's category ids of its 80 thing classes (in MMDetection's class order)
# and of the 53 panoptic stuff classes (in MMDetection's stuff order).
COCO_THING_IDS = (*range(1, 12), *range(13, 26), 27, 28, *range(31, 45),
                  *range(46, 66), 67, 70, *range(72, 83), *range(84, 91))
COCO_STUFF_IDS = (92, 93, 95, 100, 107, 109, 112, 118, 119, 122, 125, 128, 130,
                  133, 138, 141, 144, 145, 147, 148, 149, 151, 154, 155, 156,
                  159, 161, 166, 168, 171, 175, 176, 177, 178, 180, 181, 184,
                  185, 186, 187, 188, 189, 190, 191, 192, 193, 194, 195, 196,
                  197, 198, 199, 200)

# Cityscapes' 19 train ids (MMSegmentation's order; its dataset module needs
# packages this project does not install, so the names are written here).
CITYSCAPES_CLASSES = ('road', 'sidewalk', 'building', 'wall', 'fence', 'pole',
                      'traffic light', 'traffic sign', 'vegetation', 'terrain',
                      'sky', 'person', 'rider', 'car', 'truck', 'bus', 'train',
                      'motorcycle', 'bicycle')

# Which class of COCO, ADE20K, Cityscapes, the custom panoptic template and
# the custom semantic template each shape class stands for (None = ignore).
_DATASET_NAMES = {
    'circle': ('sports ball', 'ball', 'car', 'cat', 'building'),
    'square': ('tv', 'box', 'truck', 'dog', 'building'),
    'triangle': ('kite', 'flag', 'traffic sign', 'cat', 'building'),
    'star': ('frisbee', 'plant', 'person', 'dog', 'building'),
    'ring': ('donut', 'plate', 'bicycle', 'cat', 'building'),
    'sky': ('sky-other-merged', 'sky', 'sky', 'sky', None),
    'grass': ('grass-merged', 'grass', 'vegetation', 'grass', 'vegetation'),
    'water': ('sea', 'water', 'terrain', 'grass', 'road'),
}
(COCO_NAMES, ADE20K_NAMES, CITYSCAPES_NAMES, CUSTOM_NAMES,
 CUSTOM_SEMANTIC_NAMES) = ({
     shape: names[i]
     for shape, names in _DATASET_NAMES.items()
 } for i in range(5))
CUSTOM_THING_CLASSES = ('cat', 'dog')
CUSTOM_STUFF_CLASSES = ('grass', 'sky')
CUSTOM_SEMANTIC_CLASSES = ('road', 'building', 'vegetation')
IGNORE = 255


def dataset_class_lists() -> Dict[str, Tuple[str, ...]]:
    """Class names of the real datasets, from the libraries' ``METAINFO``.

    Imported here (not at module level) so that the shapes generator stays
    importable without MMDetection.
    """
    from mmdet.datasets import (ADE20KSegDataset, CocoDataset,
                                CocoPanopticDataset)
    return dict(
        coco=tuple(CocoDataset.METAINFO['classes']),
        coco_stuff=tuple(CocoPanopticDataset.METAINFO['stuff_classes']),
        ade20k=tuple(ADE20KSegDataset.METAINFO['classes']),
        cityscapes=CITYSCAPES_CLASSES)


# --------------------------------------------------------------------------
# Annotation encodings
# --------------------------------------------------------------------------
def mask_to_polygons(mask: np.ndarray) -> List[List[float]]:
    """COCO polygons ``[[x0, y0, x1, y1, ...], ...]`` of a binary mask.

    One polygon per outer contour (an object split by occlusion gives
    several), through the centres of the boundary pixels; contours of fewer
    than 3 points are dropped. Holes are not represented (as in COCO).
    """
    contours, _ = cv2.findContours(
        mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    polygons = []
    for contour in contours:
        if len(contour) >= 3:
            points = contour.reshape(-1, 2).astype(np.float64) + 0.5
            polygons.append([round(float(v), 2) for v in points.ravel()])
    return polygons


def mask_to_uncompressed_rle(mask: np.ndarray) -> dict:
    """COCO's uncompressed RLE (``counts`` a list, column-major), the
    encoding of COCO's crowd annotations."""
    flat = np.asfortranarray(mask).ravel(order='F').astype(np.uint8)
    change = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    counts = np.diff(bounds).tolist()
    if flat[0] == 1:
        counts = [0] + counts
    return dict(counts=counts, size=list(mask.shape))


def xywh_box(mask: np.ndarray) -> List[int]:
    """COCO ``[x, y, w, h]`` of a non-empty mask (pixel extents)."""
    ys, xs = np.nonzero(mask)
    x, y = int(xs.min()), int(ys.min())
    return [x, y, int(xs.max()) - x + 1, int(ys.max()) - y + 1]


def _dump(path: Path, obj: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, 'w') as f:
        json.dump(obj, f, separators=(',', ':'))


def _save_image(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == '.jpg':
        Image.fromarray(image).save(path, quality=95)
    else:
        Image.fromarray(image).save(path)


# --------------------------------------------------------------------------
# Scene -> per-dataset annotations
# --------------------------------------------------------------------------
def _stuff_segments(
        scene: _Scene,
        name_of: Callable[[int], Optional[str]]) -> Dict[str, np.ndarray]:
    """Stuff masks merged by target class (two shape regions that map to one
    class become one segment, as COCO stores one segment per stuff class)."""
    merged: Dict[str, np.ndarray] = {}
    for seg in scene.segments:
        if seg['label'] < len(THING_CLASSES):
            continue
        name = name_of(seg['label'])
        if name is not None:
            merged[name] = merged.get(name, False) | seg['mask']
    return merged


def _instance_annotations(scene: _Scene, image_id: int, first_ann_id: int,
                          category_id: Dict[str, int],
                          names: Dict[str, Optional[str]]) -> List[dict]:
    """COCO instance annotations of a scene's things."""
    anns = []
    for seg in scene.segments:
        if seg['label'] >= len(THING_CLASSES):
            continue
        mask = seg['mask']
        if seg['iscrowd']:
            segmentation = mask_to_uncompressed_rle(mask)
        else:
            segmentation = mask_to_polygons(mask)
            if not segmentation:
                continue
        anns.append(
            dict(
                id=first_ann_id + len(anns),
                image_id=image_id,
                category_id=category_id[names[CLASSES[seg['label']]]],
                segmentation=segmentation,
                area=float(mask.sum()),
                bbox=xywh_box(mask),
                iscrowd=seg['iscrowd']))
    return anns


def _panoptic_annotation(
        scene: _Scene, image_id: int, file_name: str, category_id: Dict[str,
                                                                        int],
        names: Dict[str, Optional[str]]) -> Tuple[dict, np.ndarray]:
    """COCO panoptic ``segments_info`` and the RGB-encoded PNG of a scene.

    Segment ids are random 24-bit values, as in COCO (not 1, 2, ...).
    """
    rng = np.random.default_rng(image_id)
    ids = np.zeros(scene.semantic.shape, np.int64)
    segments = [(seg['mask'], names[CLASSES[seg['label']]], seg['iscrowd'])
                for seg in scene.segments if seg['label'] < len(THING_CLASSES)]
    segments += [(mask, name, 0) for name, mask in _stuff_segments(
        scene, lambda label: names[CLASSES[label]]).items()]
    seg_ids = rng.choice(np.arange(1, 1 << 24), len(segments), replace=False)
    info = []
    for (mask, name, iscrowd), seg_id in zip(segments, seg_ids):
        ids[mask] = seg_id
        info.append(
            dict(
                id=int(seg_id),
                category_id=category_id[name],
                area=int(mask.sum()),
                bbox=xywh_box(mask),
                iscrowd=int(iscrowd)))
    rgb = np.stack(_id_to_rgb(ids), axis=-1).astype(np.uint8)
    return dict(
        image_id=image_id, file_name=file_name, segments_info=info), rgb


def _label_map(scene: _Scene, label_of: Dict[str, Optional[int]],
               crowd_label: int) -> np.ndarray:
    """Per-pixel labels; crowd pixels get ``crowd_label``."""
    out = np.full(scene.semantic.shape, IGNORE, np.uint8)
    for idx, name in enumerate(CLASSES):
        label = label_of[name]
        out[scene.semantic == idx] = IGNORE if label is None else label
    for seg in scene.segments:
        if seg['iscrowd']:
            out[seg['mask']] = crowd_label
    return out


# --------------------------------------------------------------------------
# Writers
# --------------------------------------------------------------------------
def _scenes(num_images: int, seed: int, split: str) -> List[_Scene]:
    """``num_images`` shapes scenes (a few empty, a few with a crowd)."""
    rng = np.random.default_rng([seed, 100 + len(split)])
    return [_make_scene(rng, kind) for kind in _scene_kinds(rng, num_images)]


def image_stem(first_id: int, index: int) -> str:
    """COCO-style file stem (12 digits) of the ``index``-th image of a split
    whose ids start at ``first_id`` (ids step by 7: not contiguous)."""
    return f'{first_id + 7 * index:012d}'


def _coco_like(out: Path, split: str, scenes: Sequence[_Scene], image_dir: str,
               instance_json: str, panoptic_json: str, panoptic_dir: str,
               categories: List[dict], names: Dict[str, Optional[str]],
               image_id0: int) -> dict:
    """Images, an instance json and a panoptic json + PNGs of one split."""
    category_id = {c['name']: c['id'] for c in categories}
    images, instances, panoptic = [], [], []
    for idx, scene in enumerate(scenes):
        stem = image_stem(image_id0, idx)
        image_id = int(stem)
        h, w = scene.semantic.shape
        images.append(
            dict(id=image_id, file_name=f'{stem}.jpg', height=h, width=w))
        _save_image(out / image_dir / f'{stem}.jpg', scene.image)
        instances += _instance_annotations(scene, image_id,
                                           len(instances) + 1, category_id,
                                           names)
        pan, rgb = _panoptic_annotation(scene, image_id, f'{stem}.png',
                                        category_id, names)
        panoptic.append(pan)
        _save_image(out / panoptic_dir / f'{stem}.png', rgb)
    things = [{
        k: v
        for k, v in c.items() if k not in ('isthing', 'color')
    } for c in categories if c['isthing']]
    _dump(out / instance_json,
          dict(images=images, annotations=instances, categories=things))
    _dump(out / panoptic_json,
          dict(images=images, annotations=panoptic, categories=categories))
    return dict(
        images=len(images),
        instances=len(instances),
        polygons=sum(
            len(a['segmentation']) for a in instances if not a['iscrowd']),
        multi_polygon_objects=sum(
            1 for a in instances
            if not a['iscrowd'] and len(a['segmentation']) > 1),
        crowd=sum(a['iscrowd'] for a in instances))


def _coco_categories(class_lists: Dict[str, Tuple[str, ...]]) -> List[dict]:
    """COCO's 133 panoptic categories (things first), with COCO's ids."""
    things, stuff = class_lists['coco'], class_lists['coco_stuff']
    if (len(things), len(stuff)) != (len(COCO_THING_IDS), len(COCO_STUFF_IDS)):
        raise RuntimeError('MMDetection\'s COCO class lists do not have 80 '
                           'thing and 53 stuff classes')
    rng = np.random.default_rng(0)
    return [
        dict(
            id=i,
            name=n,
            supercategory='thing' if t else 'stuff',
            isthing=int(t),
            color=[int(c) for c in rng.integers(0, 256, 3)])
        for ids, names, t in ((COCO_THING_IDS, things, True), (COCO_STUFF_IDS,
                                                               stuff, False))
        for i, n in zip(ids, names)
    ]


def write_coco(out: Path, scenes: Dict[str, List[_Scene]],
               class_lists: Dict[str, Tuple[str, ...]]) -> dict:
    """COCO instances + panoptic (``<out>/coco``)."""
    categories = _coco_categories(class_lists)
    return {
        split:
        _coco_like(out, split, split_scenes, f'{split}2017',
                   f'annotations/instances_{split}2017.json',
                   f'annotations/panoptic_{split}2017.json',
                   f'annotations/panoptic_{split}2017', categories, COCO_NAMES,
                   139 if split == 'val' else 9)
        for split, split_scenes in scenes.items()
    }


def write_custom(out: Path, scenes: Dict[str, List[_Scene]]) -> dict:
    """The custom-dataset templates' layout (``<out>/custom``)."""
    categories = [
        dict(
            id=i + 1,
            name=n,
            supercategory='custom',
            isthing=int(t),
            color=[40 * (i + 1), 255 - 40 * i, 128])
        for i, (n, t) in enumerate([(n, True) for n in CUSTOM_THING_CLASSES] +
                                   [(n, False) for n in CUSTOM_STUFF_CLASSES])
    ]
    semantic_label = {
        k: None if v is None else CUSTOM_SEMANTIC_CLASSES.index(v)
        for k, v in CUSTOM_SEMANTIC_NAMES.items()
    }
    summary = {}
    for split, split_scenes in scenes.items():
        summary[split] = _coco_like(out, split, split_scenes,
                                    f'images/{split}',
                                    f'annotations/instances_{split}.json',
                                    f'annotations/panoptic_{split}.json',
                                    f'annotations/panoptic_{split}',
                                    categories, CUSTOM_NAMES, 1)
        for idx, scene in enumerate(split_scenes):
            stem = image_stem(1, idx)
            _save_image(out / 'annotations' / split / f'{stem}.png',
                        _label_map(scene, semantic_label, IGNORE))
    return summary


def write_ade20k(out: Path, scenes: Dict[str, List[_Scene]],
                 class_lists: Dict[str, Tuple[str, ...]]) -> dict:
    """ADE20K (``<out>/ADEChallengeData2016``): labels 1..150, 0 = other
    (crowd regions)."""
    classes = class_lists['ade20k']
    label_of = {k: classes.index(v) + 1 for k, v in ADE20K_NAMES.items()}
    dirs = dict(train='training', val='validation')
    for split, split_scenes in scenes.items():
        for idx, scene in enumerate(split_scenes):
            stem = f'ADE_{dirs[split][:5]}_{idx + 1:08d}'
            _save_image(out / 'images' / dirs[split] / f'{stem}.jpg',
                        scene.image)
            _save_image(out / 'annotations' / dirs[split] / f'{stem}.png',
                        _label_map(scene, label_of, 0))
    return {split: dict(images=len(s)) for split, s in scenes.items()}


def write_cityscapes(out: Path, scenes: Dict[str, List[_Scene]],
                     class_lists: Dict[str, Tuple[str, ...]]) -> dict:
    """Cityscapes (``<out>/cityscapes``): ``*_gtFine_labelTrainIds.png``
    with train ids 0..18, 255 = ignore (crowd regions)."""
    classes = class_lists['cityscapes']
    label_of = {k: classes.index(v) for k, v in CITYSCAPES_NAMES.items()}
    for split, split_scenes in scenes.items():
        city = 'shapesville' if split == 'train' else 'shapeton'
        for idx, scene in enumerate(split_scenes):
            stem = f'{city}_{idx:06d}_000019'
            _save_image(
                out / 'leftImg8bit' / split / city / f'{stem}_leftImg8bit.png',
                scene.image)
            _save_image(
                out / 'gtFine' / split / city /
                f'{stem}_gtFine_labelTrainIds.png',
                _label_map(scene, label_of, IGNORE))
    return {split: dict(images=len(s)) for split, s in scenes.items()}


FORMAT_DIRS = dict(
    coco='coco',
    ade20k='ADEChallengeData2016',
    cityscapes='cityscapes',
    custom='custom')


def generate_formats(out_dir: str,
                     seed: int = 0,
                     num_train: int = 16,
                     num_val: int = 6) -> Dict[str, dict]:
    """Write every format under ``out_dir`` (see the module docstring).

    All formats hold the same scenes; equal arguments give identical files.

    Returns:
        Per format and split, counts of what was written.
    """
    out = Path(out_dir)
    class_lists = dataset_class_lists()
    scenes = dict(
        train=_scenes(num_train, seed, 'train'),
        val=_scenes(num_val, seed, 'val'))
    return dict(
        coco=write_coco(out / FORMAT_DIRS['coco'], scenes, class_lists),
        ade20k=write_ade20k(out / FORMAT_DIRS['ade20k'], scenes, class_lists),
        cityscapes=write_cityscapes(out / FORMAT_DIRS['cityscapes'], scenes,
                                    class_lists),
        custom=write_custom(out / FORMAT_DIRS['custom'], scenes))
