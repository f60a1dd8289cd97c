# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
"""Evaluate one checkpoint at every prediction set of the decoder.

    python tools/analysis_tools/eval_per_layer.py CONFIG CHECKPOINT \
        [--data-root DIR] [--out per_layer.json] [--cfg-options ...]

The paper's Tables 8 and 9: the model's output is taken from the
query-selection set (``interm``, two-stage models), the initial prediction
and each decoder layer in turn (``model.test_cfg.output_set``), and the test
split is evaluated for each. Every set is evaluated twice for boxes: with the
predicted boxes and with boxes around the predicted masks
(``test_cfg.box_from_mask``), the comparison of Table 9. Prints a Markdown
table of segm and bbox AP per set.
"""
import argparse
import json
from typing import Dict, List, Optional, Sequence, Union

from mmengine.runner import Runner

from mmmaskdino.datasets.annotation_checks import check_datasets
from mmmaskdino.utils.tool_utils import (add_common_args, build_runner,
                                         load_runner_config)

SetName = Union[str, int]
METRICS = ('coco/segm_mAP', 'coco/bbox_mAP')


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='checkpoint file or URL')
    add_common_args(parser)
    parser.add_argument('--out', help='write the table as JSON to this file')
    return parser.parse_args(argv)


def prediction_sets(runner: Runner) -> List[SetName]:
    """``'interm'`` (two-stage models), then the indices of the decoder's
    prediction sets, the last one included."""
    predictor = runner.model.panoptic_head.predictor
    sets: List[SetName] = ['interm'] if predictor.two_stage else []
    return sets + list(range(predictor.num_prediction_sets))


def set_label(runner: Runner, output_set: SetName) -> str:
    """Human-readable name of a prediction set."""
    if output_set == 'interm':
        return 'query selection (interm)'
    if runner.model.panoptic_head.predictor.initial_pred:
        return 'initial prediction' if output_set == 0 else \
            f'decoder layer {output_set}'
    return f'decoder layer {output_set + 1}'


def evaluate(runner: Runner, output_set: SetName,
             box_from_mask: bool) -> Dict[str, float]:
    """Test metrics with the model's output taken from ``output_set``."""
    runner.model.panoptic_head.test_cfg['output_set'] = output_set
    runner.model.panoptic_fusion_head.test_cfg['box_from_mask'] = box_from_mask
    metrics = {k: float(v) for k, v in runner.test().items()}
    missing = [k for k in METRICS if k not in metrics]
    if missing:
        raise ValueError(
            f'the test evaluator gives no {missing}: this tool needs a COCO '
            "instance evaluator (CocoMetric, metric=['bbox', 'segm'])")
    return metrics


def main(argv: Optional[Sequence[str]] = None) -> List[dict]:
    args = parse_args(argv)
    cfg = load_runner_config(args)
    cfg.load_from = args.checkpoint
    cfg.model.test_cfg.update(instance_on=True)
    check_datasets(cfg, ['test'])
    runner = build_runner(cfg)
    rows = []
    for output_set in prediction_sets(runner):
        predicted = evaluate(runner, output_set, box_from_mask=False)
        from_masks = evaluate(runner, output_set, box_from_mask=True)
        rows.append(
            dict(
                output_set=output_set,
                name=set_label(runner, output_set),
                segm_mAP=predicted['coco/segm_mAP'],
                bbox_mAP=predicted['coco/bbox_mAP'],
                bbox_mAP_from_masks=from_masks['coco/bbox_mAP']))
    print('| prediction set | segm AP | bbox AP (predicted boxes) '
          '| bbox AP (boxes of the masks) |')
    print('| --- | --- | --- | --- |')
    for row in rows:
        values = [
            row[k] for k in ('segm_mAP', 'bbox_mAP', 'bbox_mAP_from_masks')
        ]
        cells = ' | '.join(f'{100 * v:.1f}' for v in values)
        print(f'| {row["name"]} | {cells} |')
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(rows, f, indent=1)
    return rows


if __name__ == '__main__':
    main()
