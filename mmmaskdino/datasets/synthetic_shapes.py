# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
"""Deterministic generator of the bundled synthetic "shapes" dataset.

Every scene is a textured background split into a few region types (stuff:
sky, grass, water) with 2-6 coloured shapes (things) that touch and occlude
each other; a few scenes have no things and a few carry a crowd region (a
cluster of small same-class shapes annotated once with ``iscrowd=1``).
Each split is written in COCO layout::

    <out>/images/<split>/<stem>.png
    <out>/annotations/instances_<split>.json          (RLE masks)
    <out>/annotations/panoptic_<split>.json
    <out>/annotations/panoptic_<split>/<stem>.png     (RGB id encoding)
    <out>/semantic/<split>/<stem>.png                 (labels 0..C-1)

For mixed box/mask training (the paper's "data cooperation") the train split
is also divided into two instance jsons: every second image, boxes only
(``instances_train_boxes.json``, no ``segmentation``), and the others with
masks (``instances_train_masks.json``).

Only numpy, Pillow and pycocotools are used and everything is drawn from one
``numpy.random.Generator`` per split, so a seed fixes every byte.
"""
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import numpy as np
from PIL import Image, ImageDraw
from pycocotools import mask as mask_utils

GENERATOR_VERSION = 1

# (category id, name, base RGB colour); ids are non-contiguous like COCO.
THING_CATEGORIES: Tuple[Tuple[int, str, Tuple[int, int, int]], ...] = (
    (1, 'circle', (220, 40, 40)),
    (2, 'square', (245, 150, 20)),
    (4, 'triangle', (240, 220, 30)),
    (5, 'star', (150, 60, 210)),
    (7, 'ring', (235, 60, 180)),
)
STUFF_CATEGORIES: Tuple[Tuple[int, str, Tuple[int, int, int]], ...] = (
    (10, 'sky', (160, 205, 240)),
    (11, 'grass', (60, 140, 50)),
    (13, 'water', (30, 90, 140)),
)
THING_CLASSES = tuple(name for _, name, _ in THING_CATEGORIES)
STUFF_CLASSES = tuple(name for _, name, _ in STUFF_CATEGORIES)
CLASSES = THING_CLASSES + STUFF_CLASSES

SPLIT_SEED_OFFSETS = {'train': 0, 'val': 1}
MIN_SIDE, MAX_SIDE = 96, 192
OBJ_MIN_SIZE = 20
MIN_VISIBLE_FRACTION = 0.4
MIN_VISIBLE_PIXELS = 120
CROWD_FRACTION = 0.08
EMPTY_FRACTION = 0.03


@dataclass
class _Layer:
    """One drawn thing: full mask, label (index into ``THING_CLASSES``),
    crowd flag and fill colour."""
    mask: np.ndarray
    label: int
    iscrowd: bool
    colour: np.ndarray


# --------------------------------------------------------------------------
# Backgrounds (stuff)
# --------------------------------------------------------------------------
def _smooth_noise(rng: np.random.Generator, h: int, w: int,
                  cell: int) -> np.ndarray:
    """Low-frequency noise in [-1, 1]: a coarse grid upsampled bilinearly."""
    grid = rng.uniform(-1, 1,
                       (h // cell + 2, w // cell + 2)).astype(np.float32)
    img = Image.fromarray(grid).resize((w, h), Image.BILINEAR)
    return np.asarray(img)


def _wavy(rng: np.random.Generator, base: float, coord: np.ndarray,
          amplitude: Tuple[float, float], period: Tuple[float,
                                                        float]) -> np.ndarray:
    """``base + a sin(coord / p + phase)`` with a random amplitude ``a``,
    period ``p`` and phase: a wavy boundary position along ``coord``."""
    amp = rng.uniform(*amplitude)
    return base + amp * np.sin(coord / rng.uniform(*period) +
                               rng.uniform(0, 2 * np.pi))


def _stuff_layout(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Stuff index map (0 sky, 1 grass, 2 water) with wavy boundaries.

    Layouts: sky above a wavy horizon with grass and/or water below split
    by a wavy vertical shore, or a top-down view without sky.
    """
    ys, xs = np.mgrid[0:h, 0:w]
    shore = _wavy(rng, w * rng.uniform(0.25, 0.75), ys, (4, 12), (8, 20))
    left, right = rng.permutation([1, 2])
    ground = np.where(xs < shore, left, right)
    kind = rng.choice(['split', 'single', 'no_sky'], p=[0.5, 0.3, 0.2])
    if kind == 'single':
        ground[:] = rng.integers(1, 3)
    if kind == 'no_sky':
        return ground
    horizon = _wavy(rng, h * rng.uniform(0.25, 0.6), xs, (2, 8), (8, 24))
    return np.where(ys < horizon, 0, ground)


def _stuff_textures(rng: np.random.Generator, h: int,
                    w: int) -> List[np.ndarray]:
    """Full-image RGB textures (float, 0..255) for sky, grass and water."""
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    fine = rng.normal(0, 1, (h, w)).astype(np.float32)
    sky = np.asarray(STUFF_CATEGORIES[0][2], np.float32) + (
        30 * ys / h)[..., None] + 18 * _smooth_noise(rng, h, w, 24)[..., None]
    blades = np.sin(xs * rng.uniform(1.2, 2.0) +
                    3 * _smooth_noise(rng, h, w, 8))
    grass = np.asarray(STUFF_CATEGORIES[1][2], np.float32) + (
        14 * blades + 14 * fine)[..., None] * np.float32([0.6, 1.0, 0.4])
    waves = np.sin(ys * rng.uniform(0.5, 0.9) + 2 * np.sin(xs / 9))
    water = np.asarray(STUFF_CATEGORIES[2][2], np.float32) + (
        16 * waves + 6 * fine)[..., None] * np.float32([0.5, 0.8, 1.0])
    return [sky, grass, water]


# --------------------------------------------------------------------------
# Shapes (things)
# --------------------------------------------------------------------------
def _regular_polygon(cx: float, cy: float, radius: Sequence[float],
                     angle: float) -> List[Tuple[float, float]]:
    """Vertices of a polygon whose radii cycle through ``radius``."""
    n = len(radius)
    thetas = angle + 2 * np.pi * np.arange(n) / n
    return [(cx + r * np.cos(t), cy + r * np.sin(t))
            for r, t in zip(radius, thetas)]


def _shape_mask(label: int, cx: float, cy: float, size: float, angle: float,
                h: int, w: int) -> np.ndarray:
    """Binary mask of thing ``label`` with bounding diameter ``size``."""
    canvas = Image.new('L', (w, h), 0)
    draw = ImageDraw.Draw(canvas)
    r = size / 2
    name = THING_CLASSES[label]
    if name in ('circle', 'ring'):
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=1)
        if name == 'ring':
            ri = 0.5 * r
            draw.ellipse([cx - ri, cy - ri, cx + ri, cy + ri], fill=0)
    elif name == 'square':
        draw.polygon(_regular_polygon(cx, cy, [r] * 4, angle), fill=1)
    elif name == 'triangle':
        draw.polygon(_regular_polygon(cx, cy, [r] * 3, angle), fill=1)
    else:
        draw.polygon(
            _regular_polygon(cx, cy, [r, 0.45 * r] * 5, angle), fill=1)
    return np.asarray(canvas, dtype=bool)


def _thing_colour(rng: np.random.Generator, label: int) -> np.ndarray:
    """Class colour with a small per-instance jitter."""
    base = np.asarray(THING_CATEGORIES[label][2], np.float32)
    return np.clip(base * rng.uniform(0.8, 1.1) + rng.normal(0, 8, 3), 0, 255)


def _visible(layers: Sequence[_Layer]) -> List[np.ndarray]:
    """Visible masks: each layer minus the union of the layers above it."""
    covered = np.zeros_like(layers[0].mask) if layers else None
    visible = []
    for layer in reversed(layers):
        visible.append(layer.mask & ~covered)
        covered = covered | layer.mask
    return visible[::-1]


def _layers_ok(layers: Sequence[_Layer]) -> bool:
    """Every layer keeps enough of itself visible under the ones above."""
    for layer, vis in zip(layers, _visible(layers)):
        area = int(vis.sum())
        if area < MIN_VISIBLE_PIXELS * (0.3 if layer.iscrowd else 1) or (
                area < MIN_VISIBLE_FRACTION * layer.mask.sum()):
            return False
    return True


def _sample_centre(rng: np.random.Generator, layers: Sequence[_Layer],
                   size: float, h: int, w: int) -> Tuple[float, float]:
    """Centre inside the image; often next to an existing object so shapes
    touch and overlap."""
    r = size / 2
    if layers and rng.random() < 0.65:
        ys, xs = np.nonzero(layers[rng.integers(len(layers))].mask)
        ocx, ocy = xs.mean(), ys.mean()
        oradius = 0.5 * max(np.ptp(xs), np.ptp(ys))
        dist = (oradius + r) * rng.uniform(0.55, 1.05)
        theta = rng.uniform(0, 2 * np.pi)
        cx, cy = ocx + dist * np.cos(theta), ocy + dist * np.sin(theta)
    else:
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
    return float(np.clip(cx, r, w - r)), float(np.clip(cy, r, h - r))


def _sample_object(rng: np.random.Generator, layers: Sequence[_Layer], h: int,
                   w: int) -> _Layer:
    """One thing of a random class, size, rotation and position."""
    label = int(rng.integers(len(THING_CLASSES)))
    size = rng.uniform(OBJ_MIN_SIZE, max(OBJ_MIN_SIZE + 8, 0.5 * min(h, w)))
    cx, cy = _sample_centre(rng, layers, size, h, w)
    mask = _shape_mask(label, cx, cy, size, rng.uniform(0, 2 * np.pi), h, w)
    return _Layer(mask, label, False, _thing_colour(rng, label))


def _sample_crowd(rng: np.random.Generator, h: int, w: int) -> _Layer:
    """A cluster of 4-7 small shapes of one class, annotated as one crowd."""
    label = int(rng.integers(len(THING_CLASSES)))
    cx, cy = rng.uniform(20, w - 20), rng.uniform(20, h - 20)
    mask = np.zeros((h, w), bool)
    for _ in range(int(rng.integers(4, 8))):
        size = rng.uniform(8, 12)
        px = float(np.clip(cx + rng.uniform(-16, 16), size, w - size))
        py = float(np.clip(cy + rng.uniform(-16, 16), size, h - size))
        mask |= _shape_mask(label, px, py, size, rng.uniform(0, 2 * np.pi), h,
                            w)
    return _Layer(mask, label, True, _thing_colour(rng, label))


def _sample_layers(rng: np.random.Generator, h: int, w: int,
                   kind: str) -> List[_Layer]:
    """Bottom-to-top list of things for a scene of ``kind`` ``'empty'``,
    ``'crowd'`` (one crowd region under the objects) or ``'plain'``."""
    layers: List[_Layer] = []
    if kind == 'empty':
        return layers
    if kind == 'crowd':
        layers.append(_sample_crowd(rng, h, w))
    target = len(layers) + int(rng.integers(2, 7))
    for _ in range(60):
        if len(layers) == target:
            break
        candidate = _sample_object(rng, layers, h, w)
        if _layers_ok(layers + [candidate]):
            layers.append(candidate)
    return layers


# --------------------------------------------------------------------------
# Scene rendering and annotation
# --------------------------------------------------------------------------
def _render(rng: np.random.Generator, stuff: np.ndarray,
            layers: Sequence[_Layer]) -> np.ndarray:
    """RGB uint8 image: stuff textures, then shaded shapes bottom to top."""
    h, w = stuff.shape
    textures = _stuff_textures(rng, h, w)
    img = np.zeros((h, w, 3), np.float32)
    for idx, tex in enumerate(textures):
        img[stuff == idx] = tex[stuff == idx]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    for layer in layers:
        gx, gy = rng.normal(0, 0.25, 2)
        shade = 1 + (gx * (xs / w - 0.5) + gy * (ys / h - 0.5))
        noise = rng.normal(0, 5, (h, w, 1)).astype(np.float32)
        fill = layer.colour * shade[..., None] + noise
        img[layer.mask] = fill[layer.mask]
    return np.clip(img, 0, 255).astype(np.uint8)


def _encode_rle(mask: np.ndarray) -> dict:
    """Compressed COCO RLE with a json-serialisable ``counts`` string."""
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle['counts'] = rle['counts'].decode('ascii')
    return rle


def _bbox(mask: np.ndarray) -> List[int]:
    """COCO ``[x, y, w, h]`` of a non-empty mask."""
    ys, xs = np.nonzero(mask)
    x, y = int(xs.min()), int(ys.min())
    return [x, y, int(xs.max()) - x + 1, int(ys.max()) - y + 1]


def _id_to_rgb(seg_id: np.ndarray) -> Tuple[np.ndarray, ...]:
    """COCO panoptic R, G, B channels of ids ``R + 256 G + 256^2 B``."""
    return seg_id % 256, seg_id // 256 % 256, seg_id // 65536


@dataclass
class _Scene:
    """A rendered scene and its per-pixel annotations."""
    image: np.ndarray
    semantic: np.ndarray
    panoptic_ids: np.ndarray
    segments: List[dict]


def _make_scene(rng: np.random.Generator, kind: str) -> _Scene:
    """Sample, render and annotate one scene of random size."""
    h, w = (int(v) for v in rng.integers(MIN_SIDE, MAX_SIDE + 1, 2))
    stuff = _stuff_layout(rng, h, w)
    layers = _sample_layers(rng, h, w, kind)
    image = _render(rng, stuff, layers)
    semantic = (stuff + len(THING_CLASSES)).astype(np.uint8)
    panoptic_ids = np.zeros((h, w), np.int32)
    segments = []
    for layer, vis in zip(layers, _visible(layers)):
        semantic[vis] = layer.label
        segments.append(
            dict(mask=vis, label=layer.label, iscrowd=int(layer.iscrowd)))
    thing_pixels = semantic < len(THING_CLASSES)
    for idx in range(len(STUFF_CLASSES)):
        region = (stuff == idx) & ~thing_pixels
        if region.any():
            segments.append(
                dict(mask=region, label=len(THING_CLASSES) + idx, iscrowd=0))
    for seg_id, seg in enumerate(segments, start=1):
        seg['id'] = seg_id
        panoptic_ids[seg['mask']] = seg_id
    return _Scene(image, semantic, panoptic_ids, segments)


def _category_id(label: int) -> int:
    """COCO category id of a contiguous label over ``CLASSES``."""
    return (THING_CATEGORIES + STUFF_CATEGORIES)[label][0]


def _categories_json() -> Tuple[List[dict], List[dict]]:
    """Instance (things only) and panoptic (things then stuff) categories."""
    instance = [
        dict(id=i, name=n, supercategory='shape')
        for i, n, _ in THING_CATEGORIES
    ]
    panoptic = [
        dict(id=i, name=n, supercategory='shape', isthing=1, color=list(c))
        for i, n, c in THING_CATEGORIES
    ]
    panoptic += [
        dict(id=i, name=n, supercategory='region', isthing=0, color=list(c))
        for i, n, c in STUFF_CATEGORIES
    ]
    return instance, panoptic


def _write_scene(out: Path, split: str, stem: str, scene: _Scene) -> None:
    """Write the image, panoptic PNG and semantic PNG of one scene."""
    Image.fromarray(scene.image).save(out / 'images' / split / f'{stem}.png')
    rgb = np.stack(_id_to_rgb(scene.panoptic_ids), axis=-1).astype(np.uint8)
    Image.fromarray(rgb).save(out / 'annotations' / f'panoptic_{split}' /
                              f'{stem}.png')
    Image.fromarray(scene.semantic).save(out / 'semantic' / split /
                                         f'{stem}.png')


def _annotate(scene: _Scene, image_id: int, file_name: str,
              next_ann_id: int) -> Tuple[List[dict], dict]:
    """COCO instance annotations and the panoptic annotation of a scene."""
    instances, segments_info = [], []
    for seg in scene.segments:
        area, bbox = int(seg['mask'].sum()), _bbox(seg['mask'])
        category_id = _category_id(seg['label'])
        segments_info.append(
            dict(
                id=seg['id'],
                category_id=category_id,
                area=area,
                bbox=bbox,
                iscrowd=seg['iscrowd']))
        if seg['label'] < len(THING_CLASSES):
            instances.append(
                dict(
                    id=next_ann_id + len(instances),
                    image_id=image_id,
                    category_id=category_id,
                    segmentation=_encode_rle(seg['mask']),
                    area=area,
                    bbox=bbox,
                    iscrowd=seg['iscrowd']))
    panoptic = dict(
        image_id=image_id, file_name=file_name, segments_info=segments_info)
    return instances, panoptic


def _scene_kinds(rng: np.random.Generator, num_images: int) -> List[str]:
    """Kind of each scene: a few ``'empty'`` (no things) and a few
    ``'crowd'`` scenes, at least one of each when there are two scenes."""
    kinds = ['plain'] * num_images
    order = rng.permutation(num_images).tolist()
    num_empty = min(len(order), max(1, round(num_images * EMPTY_FRACTION)))
    num_crowd = max(1, round(num_images * CROWD_FRACTION))
    for idx in order[:num_empty]:
        kinds[idx] = 'empty'
    for idx in order[num_empty:num_empty + num_crowd]:
        kinds[idx] = 'crowd'
    return kinds


def generate_split(out_dir: str,
                   split: str,
                   num_images: int,
                   seed: int = 0) -> Dict[str, int]:
    """Generate one split under ``out_dir``; returns counts of what it wrote.

    PNGs left in the split's folders by an earlier run are removed first.

    Args:
        out_dir: dataset root (``data/shapes``).
        split: split name, ``'train'`` or ``'val'`` (any name works; known
            names get distinct random streams for the same seed).
        num_images: number of scenes.
        seed: base seed; the split's stream is ``(seed, split offset)``.
    """
    out = Path(out_dir)
    for sub in (f'images/{split}', f'annotations/panoptic_{split}',
                f'semantic/{split}'):
        (out / sub).mkdir(parents=True, exist_ok=True)
        for stale in (out / sub).glob('*.png'):
            stale.unlink()
    offset = SPLIT_SEED_OFFSETS.get(split, sum(map(ord, split)))
    rng = np.random.default_rng([seed, offset])
    kinds = _scene_kinds(rng, num_images)
    images, instances, panoptic = [], [], []
    for idx, kind in enumerate(kinds):
        scene = _make_scene(rng, kind)
        stem = f'{idx:06d}'
        h, w = scene.semantic.shape
        images.append(
            dict(id=idx + 1, file_name=f'{stem}.png', height=h, width=w))
        anns, pan = _annotate(scene, idx + 1, f'{stem}.png',
                              len(instances) + 1)
        instances += anns
        panoptic.append(pan)
        _write_scene(out, split, stem, scene)
    instance_cats, panoptic_cats = _categories_json()
    _dump_json(
        out / 'annotations' / f'instances_{split}.json',
        dict(images=images, annotations=instances, categories=instance_cats))
    _dump_json(
        out / 'annotations' / f'panoptic_{split}.json',
        dict(images=images, annotations=panoptic, categories=panoptic_cats))
    return dict(
        images=len(images),
        instances=len(instances),
        crowd=kinds.count('crowd'),
        empty_images=kinds.count('empty'))


def _dump_json(path: Path, obj: dict) -> None:
    """Write compact json."""
    with open(path, 'w') as f:
        json.dump(obj, f, separators=(',', ':'))


def write_box_mask_split(out_dir: str, split: str = 'train') -> Dict[str, int]:
    """Divide ``instances_<split>.json`` into a box-only and a mask json.

    Images with an odd index (the 2nd, 4th, ...) go to
    ``instances_<split>_boxes.json`` with the ``segmentation`` of every
    annotation dropped; the others go unchanged to
    ``instances_<split>_masks.json``.

    Returns:
        Number of images in each part (``box_images``, ``mask_images``).
    """
    ann_dir = Path(out_dir) / 'annotations'
    with open(ann_dir / f'instances_{split}.json') as f:
        data = json.load(f)
    box_ids = {img['id'] for img in data['images'][1::2]}
    parts = {'boxes': [], 'masks': []}
    for img in data['images']:
        parts['boxes' if img['id'] in box_ids else 'masks'].append(img)
    for part, images in parts.items():
        ids = {img['id'] for img in images}
        anns = [a for a in data['annotations'] if a['image_id'] in ids]
        if part == 'boxes':
            anns = [{
                k: v
                for k, v in a.items() if k != 'segmentation'
            } for a in anns]
        _dump_json(
            ann_dir / f'instances_{split}_{part}.json',
            dict(
                images=images, annotations=anns,
                categories=data['categories']))
    return dict(
        box_images=len(parts['boxes']), mask_images=len(parts['masks']))


def generation_params(seed: int, num_train: int, num_val: int) -> dict:
    """The parameters that fully determine a generated dataset."""
    return dict(
        version=GENERATOR_VERSION,
        seed=seed,
        num_train=num_train,
        num_val=num_val)


def generate_dataset(out_dir: str,
                     seed: int = 0,
                     num_train: int = 400,
                     num_val: int = 60) -> Dict[str, dict]:
    """Generate the train and val splits and a ``generation.json`` stamp.

    The train split is also divided into box-only and mask annotations
    (:func:`write_box_mask_split`).

    Args:
        out_dir: dataset root, e.g. ``data/shapes``.
        seed: random seed; equal seeds give byte-identical datasets.
        num_train: number of train scenes.
        num_val: number of val scenes.

    Returns:
        Per-split counts (images, instances, crowd, empty_images).
    """
    summary = {
        split: generate_split(out_dir, split, size, seed)
        for split, size in (('train', num_train), ('val', num_val))
    }
    summary['train'].update(write_box_mask_split(out_dir, 'train'))
    _dump_json(
        Path(out_dir) / 'generation.json',
        dict(generation_params(seed, num_train, num_val), summary=summary))
    return summary
