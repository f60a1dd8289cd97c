# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
"""Comparisons of post-processed results with the official ones recorded in
the parity fixtures (instances, panoptic segments, semantic maps of the
official ``MaskDINO.instance_inference`` / ``panoptic_inference`` /
``semantic_inference``)."""
from typing import List

import torch
from mmengine.structures import InstanceData, PixelData

TOL = dict(rtol=1e-4, atol=1e-4)


def fixture_metas(fx: dict) -> List[dict]:
    """Per-image metas of a fixture: padded, resized and original sizes."""
    return [
        dict(
            batch_input_shape=tuple(fx['padded_size']),
            img_shape=tuple(img_size),
            ori_shape=tuple(ori_size))
        for img_size, ori_size in zip(fx['image_sizes'], fx['original_sizes'])
    ]


def resized_mask_logits(fusion_head, pred_masks: torch.Tensor,
                        meta: dict) -> torch.Tensor:
    """One image's mask logits ``(Q, h4, w4)`` upsampled to the padded size,
    cropped and resized to the original size ``(Q, H0, W0)``, as the official
    post-processing does before ``panoptic_inference``."""
    masks = torch.nn.functional.interpolate(
        pred_masks[None],
        size=meta['batch_input_shape'],
        mode='bilinear',
        align_corners=False)[0]
    return fusion_head.crop_and_resize(masks, meta['img_shape'],
                                       meta['ori_shape'])


def assert_instances_match(expected: dict, ins: InstanceData,
                           num_classes: int) -> None:
    """Compare one image's instances with ``postprocess[i]``.

    Detections are matched by ``flat_index = query * C + label``; labels must
    be equal, boxes within 1e-4, scores within ``1e-4 + score_flip_bound`` and
    masks equal except at that query's ``uncertain_pixels``.
    """
    exp = expected['instances']
    flat = ins.query_indices * num_classes + ins.labels
    order = flat.argsort()
    exp_order = exp['flat_index'].argsort()
    assert flat[order].tolist() == exp['flat_index'][exp_order].tolist()
    assert len(ins) == len(exp['labels'])

    labels, scores = ins.labels[order], ins.scores[order]
    bboxes, masks = ins.bboxes[order], ins.masks[order]
    queries = ins.query_indices[order]
    assert labels.tolist() == exp['labels'][exp_order].tolist()
    torch.testing.assert_close(bboxes, exp['boxes'][exp_order], **TOL)
    score_tol = 1e-4 + exp['score_flip_bound'][exp_order]
    assert ((scores - exp['scores'][exp_order]).abs() <= score_tol).all()

    assert masks.dtype == torch.bool
    assert masks.shape[1:] == tuple(expected['original_size'])
    uncertain = torch.zeros_like(masks)
    for query, y, x in exp['uncertain_pixels'].tolist():
        uncertain[queries == query, y, x] = True
    differ = masks != exp['masks'][exp_order]
    assert not (differ & ~uncertain).any()


def assert_panoptic_match(expected: dict, seg: torch.Tensor,
                          segments_info: list) -> None:
    """Official-style ``panoptic_seg`` equal except at the uncertain pixels,
    ``segments_info`` identical."""
    assert seg.shape == tuple(expected['original_size'])
    assert segments_info == expected['segments_info']
    differ = seg != expected['panoptic_seg']
    ys, xs = expected['panoptic_uncertain_pixels'].unbind(-1)
    differ[ys, xs] = False
    assert not differ.any()


def assert_semantic_match(expected: dict, sem: PixelData) -> None:
    """Scores within 1e-4; the argmax equals the official one wherever the
    official top-2 gap exceeds 1e-4."""
    exp = expected['sem_seg']
    torch.testing.assert_close(sem.seg_logits, exp, **TOL)
    assert sem.sem_seg.shape == (1, *expected['original_size'])
    top2 = exp.topk(2, dim=0).values
    clear = (top2[0] - top2[1]) > 1e-4
    assert torch.equal(sem.sem_seg[0][clear], exp.argmax(0)[clear])
