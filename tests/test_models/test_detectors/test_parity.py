# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
"""Whole-model parity with the official implementation.

Each fixture's official weights, plus a random detectron2 ResNet backbone of
the fixture's channel widths, are saved as an official checkpoint
(``{'model': ...}``) and loaded strictly into the detector built from our
configs, through the load-time conversion. The fixture's backbone maps then go
through encoder -> decoder -> fusion head and every output is compared with
the official one (the post-processed results the official
``MaskDINO.forward`` returned, recorded in the fixture).
"""
import pytest
import torch
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmdet.utils import register_all_modules
from mmengine.runner import load_checkpoint

from tests.conftest import load_parity_fixture
from tests.official_keys import (model_cfg, official_state_dict, resnet_shapes,
                                 spec_from_fixture)
from tests.parity_utils import (TOL, assert_instances_match,
                                assert_panoptic_match, assert_semantic_match,
                                fixture_metas, resized_mask_logits)


def _test_cfg(fx: dict) -> dict:
    cfg, md = fx['config'], 'MODEL.MaskDINO.TEST.'
    return dict(
        instance_on=cfg[md + 'INSTANCE_ON'],
        panoptic_on=cfg[md + 'PANOPTIC_ON'],
        semantic_on=cfg[md + 'SEMANTIC_ON'],
        object_mask_thr=cfg[md + 'OBJECT_MASK_THRESHOLD'],
        iou_thr=cfg[md + 'OVERLAP_THRESHOLD'],
        max_per_image=cfg['TEST.DETECTIONS_PER_IMAGE'],
        pano_temperature=cfg[md + 'PANO_TEMPERATURE'],
        pano_transform_eval=cfg[md + 'PANO_TRANSFORM_EVAL'],
        semantic_ce=cfg['MODEL.MaskDINO.SEMANTIC_CE_LOSS'],
        focus_on_box=cfg[md + 'TEST_FOUCUS_ON_BOX'])


def _loaded_model(fx: dict, tmp_path):
    register_all_modules()
    spec = spec_from_fixture(fx)
    cfg = fx['config']
    model = MODELS.build(
        model_cfg(
            spec,
            num_things=len(fx['metadata']['thing_classes']),
            initialize_box_type=cfg['MODEL.MaskDINO.INITIALIZE_BOX_TYPE'],
            dn_num=cfg['MODEL.MaskDINO.DN_NUM'],
            **_test_cfg(fx)))
    backbone = official_state_dict(spec)
    weights = {k: backbone[k] for k in resnet_shapes(spec)}
    weights.update(fx['state_dict'])
    path = tmp_path / 'official.pth'
    torch.save({'model': weights, 'iteration': 1}, path)
    load_checkpoint(model, str(path), strict=True)
    return model.eval()


def _compare(errors: dict, name: str, actual: torch.Tensor,
             expected: torch.Tensor) -> None:
    assert actual.shape == expected.shape, name
    errors[name] = (actual - expected).abs().max().item()
    torch.testing.assert_close(actual, expected, **TOL, msg=name)


@pytest.mark.parametrize('variant', ['instance', 'panoptic', 'semantic'])
def test_whole_model_parity(variant, tmp_path):
    fx = load_parity_fixture(variant)
    model = _loaded_model(fx, tmp_path)
    head = model.panoptic_head
    ref = fx['outputs']
    assert torch.equal(
        head.predictor.class_embed.weight,
        fx['state_dict']['sem_seg_head.predictor.class_embed.weight'])

    feats = [fx['inputs'][n] for n in ('res2', 'res3', 'res4', 'res5')]
    metas = fixture_metas(fx)
    samples = [
        DetDataSample(metainfo=dict(m, pad_shape=m['batch_input_shape']))
        for m in metas
    ]
    errors = {}
    with torch.no_grad():
        mask_features, multi_scale = head.pixel_decoder(feats)
        outputs, _ = head.predictor(multi_scale, mask_features)
        mask_cls, mask_pred, mask_box = head.predict(feats, samples)
        results = model.panoptic_fusion_head.predict(mask_cls, mask_pred,
                                                     mask_box, samples)
    samples = model.add_pred_to_datasample(samples, results)

    _compare(errors, 'mask_features', mask_features, ref['mask_features'])
    for i, (out,
            exp) in enumerate(zip(multi_scale, ref['multi_scale_features'])):
        _compare(errors, f'multi_scale_features.{i}', out, exp)
    aux = outputs['aux_outputs']
    _compare(errors, 'aux_pred_logits',
             torch.stack([a['pred_logits'] for a in aux]),
             ref['aux_pred_logits'])
    _compare(errors, 'aux_pred_boxes',
             torch.stack([a['pred_boxes'] for a in aux]),
             ref['aux_pred_boxes'])
    for name, out in (('pred_logits', mask_cls), ('pred_masks', mask_pred),
                      ('pred_boxes', mask_box)):
        assert torch.equal(out, outputs[name])
        _compare(errors, name, out, ref[name])
    print(f'{variant} max abs errors:', {
        k: f'{v:.2e}'
        for k, v in errors.items()
    })
    assert max(errors.values()) <= 1e-4

    test_cfg = _test_cfg(fx)
    fusion = model.panoptic_fusion_head
    for i, (expected, sample) in enumerate(zip(fx['postprocess'], samples)):
        assert ('pred_instances' in sample) == test_cfg['instance_on']
        assert ('pred_panoptic_seg' in sample) == test_cfg['panoptic_on']
        assert ('pred_sem_seg' in sample) == test_cfg['semantic_on']
        if test_cfg['instance_on']:
            assert_instances_match(expected, sample.pred_instances,
                                   mask_cls.shape[-1])
        if test_cfg['panoptic_on']:
            seg, info = fusion.panoptic_inference(
                mask_cls[i], resized_mask_logits(fusion, mask_pred[i],
                                                 metas[i]))
            assert_panoptic_match(expected, seg, info)
            assert torch.equal(sample.pred_panoptic_seg.sem_seg[0],
                               fusion.encode_panoptic(seg, info))
        if test_cfg['semantic_on']:
            assert_semantic_match(expected, sample.pred_sem_seg)
