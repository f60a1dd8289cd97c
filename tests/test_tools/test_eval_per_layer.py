# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
"""Per-layer evaluation: ``test_cfg.output_set`` selects the prediction set
that becomes the output, and ``tools/analysis_tools/eval_per_layer.py``
evaluates a checkpoint at every set."""
import json

import pytest
import torch
from mmdet.registry import MODELS

from mmmaskdino.apis import dataset_meta_from_config
from tests.test_apis.utils import save_random_checkpoint, shapes_config
from tests.test_tools.e2e_utils import run_python

NAME = 'maskdino_r18-tiny_1xb4-2.2k_shapes'


def _features(model, size=128):
    torch.manual_seed(1)
    return model.extract_feat(torch.randn(2, 3, size, size))


@pytest.mark.parametrize('output_set', ['interm', 0, 1, 2, -1])
def test_output_set_selects_the_prediction_set(shapes_root, output_set):
    """In eval, the head returns exactly the chosen set of the decoder (the
    same numbers as that set in a training-mode pass, which computes every
    set and has no dropout) and computes no other mask."""
    cfg = shapes_config(NAME, shapes_root)  # 2 decoder layers: 3 sets
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    head = model.panoptic_head.eval()
    with torch.no_grad():
        feats = _features(model)
        mask_features, multi_scale = head.pixel_decoder(feats)
        head.predictor.train()
        outputs, _ = head.predictor(multi_scale, mask_features)
        head.predictor.eval()
        sets = [*outputs['aux_outputs'], outputs]
        expected = outputs['interm_outputs'] if output_set == 'interm' \
            else sets[output_set]
        head.test_cfg['output_set'] = output_set
        logits, masks, boxes = head(feats)
        eval_outputs, _ = head.predictor(
            multi_scale, mask_features, output_set=output_set)
    torch.testing.assert_close(logits, expected['pred_logits'])
    # training keeps the masks factorised
    torch.testing.assert_close(masks, expected['pred_masks'].dense())
    torch.testing.assert_close(boxes, expected['pred_boxes'])
    eval_sets = [*eval_outputs['aux_outputs'], eval_outputs]
    with_masks = [s['pred_masks'] is not None for s in eval_sets]
    assert sum(with_masks) == (0 if output_set == 'interm' else 1)


@pytest.mark.parametrize('output_set', [3, -4, 'last'])
def test_bad_output_set_is_an_error(shapes_root, output_set):
    cfg = shapes_config(NAME, shapes_root)
    cfg.model.test_cfg.output_set = output_set
    model = MODELS.build(cfg.model).eval()
    with pytest.raises(ValueError, match='3 prediction sets'):
        model.panoptic_head(_features(model))


def test_box_from_mask_boxes_enclose_the_masks(shapes_root):
    cfg = shapes_config(NAME, shapes_root)
    cfg.model.test_cfg.box_from_mask = True
    torch.manual_seed(0)
    model = MODELS.build(cfg.model).eval()
    head = model.panoptic_fusion_head
    mask_cls = torch.randn(1, 30, 5)
    mask_pred = torch.full((1, 30, 32, 32), -5.0)
    mask_pred[0, :, 4:12, 8:24] = 5.0
    meta = dict(
        batch_input_shape=(128, 128),
        img_shape=(128, 128),
        ori_shape=(128, 128))
    with torch.no_grad():
        (result, ) = head.predict(mask_cls, mask_pred, torch.rand(1, 30, 4),
                                  [meta])
    boxes = result['ins_results'].bboxes
    # 1/4-resolution rows 4..11 and columns 8..23, bilinearly upsampled x4
    torch.testing.assert_close(
        boxes[0], torch.tensor([31., 15., 97., 49.]), atol=2.0, rtol=0)
    assert (boxes == boxes[0]).all()


def test_eval_per_layer_tool(shapes_root, tmp_path):
    """Every set evaluated on the shapes val split; segm AP does not depend
    on the box variant; the table names every set."""
    cfg = shapes_config(NAME, shapes_root)
    cfg_file = tmp_path / 'tiny.py'
    cfg.dump(str(cfg_file))
    ckpt = save_random_checkpoint(cfg, tmp_path / 'tiny.pth',
                                  dataset_meta_from_config(cfg))
    out = tmp_path / 'per_layer.json'
    stdout = run_python('tools/analysis_tools/eval_per_layer.py',
                        str(cfg_file), str(ckpt), '--work-dir',
                        str(tmp_path / 'work'), '--out', str(out))
    rows = json.loads(out.read_text())
    assert [r['output_set'] for r in rows] == ['interm', 0, 1, 2]
    assert [r['name'] for r in rows] == [
        'query selection (interm)', 'initial prediction', 'decoder layer 1',
        'decoder layer 2'
    ]
    for row in rows:
        for key in ('segm_mAP', 'bbox_mAP', 'bbox_mAP_from_masks'):
            assert 0.0 <= row[key] <= 1.0
        assert f'| {row["name"]} | {100 * row["segm_mAP"]:.1f} |' in stdout
