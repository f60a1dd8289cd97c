# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
"""The Mask DINO head: pixel decoder + transformer decoder + criterion."""
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from mmdet.registry import MODELS
from mmdet.structures import SampleList
from mmdet.structures.bbox import bbox_xyxy_to_cxcywh
from mmdet.structures.mask import mask2bbox
from mmdet.utils import ConfigType, OptConfigType, OptMultiConfig
from mmengine.model import BaseModule
from mmengine.structures import InstanceData
from torch import Tensor

from ..utils import fill_derived, uses_softmax_classes


@MODELS.register_module()
class MaskDINOHead(BaseModule):
    """Ties Mask DINO's pixel decoder, decoder and criterion together.

    This head holds no math of its own: it turns data samples into the
    normalised targets of the official code (``MaskDINO.prepare_targets`` in
    ``maskdino/maskdino.py``), runs ``pixel_decoder`` then ``predictor`` and
    hands the outputs to the criterion (training) or returns the final
    predictions (inference). The class counts are set once here and filled
    into the predictor and the criterion, as is ``semantic_ce`` (a class head
    with a "no object" logit), which follows from
    ``criterion.loss_cls.use_sigmoid`` (see
    :mod:`mmmaskdino.models.utils.derived_settings`).

    Args:
        num_things_classes (int): Number of thing classes (contiguous ids
            ``0 .. num_things_classes - 1``).
        num_stuff_classes (int): Number of stuff classes (the ids after the
            things). Semantic-segmentation models treat every class as stuff.
        pixel_decoder (dict): Config of :class:`MaskDINOEncoder`.
        predictor (dict): Config of :class:`MaskDINODecoder`.
        criterion (dict): Config of :class:`MaskDINOLoss`.
        train_cfg (dict, optional): Unused, kept for MaskFormer's interface.
        test_cfg (dict, optional): The detector's ``test_cfg``; this head
            reads ``output_set`` (see :attr:`TEST_CFG_DEFAULTS`).
        init_cfg (dict, optional): Initialisation config.
    """

    # ``output_set``: which prediction set is the model's output: ``'interm'``
    # (the query-selection set), an index into the decoder's prediction sets
    # (0 = the initial prediction, then decoder layers 1 .. L; negative from
    # the end), or -1, the last decoder layer, as officially.
    TEST_CFG_DEFAULTS = dict(output_set=-1)

    def __init__(self,
                 num_things_classes: int,
                 num_stuff_classes: int,
                 pixel_decoder: ConfigType = None,
                 predictor: ConfigType = None,
                 criterion: ConfigType = None,
                 train_cfg: OptConfigType = None,
                 test_cfg: OptConfigType = None,
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.num_things_classes = num_things_classes
        self.num_stuff_classes = num_stuff_classes
        self.num_classes = num_things_classes + num_stuff_classes
        self.train_cfg = train_cfg
        self.test_cfg = test_cfg

        self.pixel_decoder = MODELS.build(pixel_decoder)
        self.semantic_ce = uses_softmax_classes(criterion)
        self.predictor = MODELS.build(
            fill_derived(
                predictor,
                'panoptic_head (class counts, criterion.loss_cls)',
                num_classes=self.num_classes,
                semantic_ce=self.semantic_ce))
        self.criterion = MODELS.build(
            fill_derived(
                criterion,
                'panoptic_head (class counts)',
                num_classes=self.num_classes,
                num_things_classes=num_things_classes))

    def forward(
        self,
        x: Sequence[Tensor],
        batch_data_samples: Optional[SampleList] = None
    ) -> Tuple[Tensor, Tensor, Tensor]:
        """Predictions of the ``test_cfg.output_set`` prediction set (the last
        decoder layer by default), without post-processing.

        Args:
            x (Sequence[Tensor]): Backbone maps (res2 .. res5).
            batch_data_samples (list, optional): Unused; kept for the
                detector's ``_forward`` interface.

        Returns:
            tuple: ``pred_logits (bs, Q, K)``, ``pred_masks (bs, Q, h4, w4)``
            and ``pred_boxes (bs, Q, 4)`` (normalised cxcywh, relative to the
            padded input).
        """
        output_set = (self.test_cfg
                      or {}).get('output_set',
                                 self.TEST_CFG_DEFAULTS['output_set'])
        num_sets = self.predictor.num_prediction_sets
        if output_set != 'interm' and not (isinstance(output_set, int) and
                                           -num_sets <= output_set < num_sets):
            raise ValueError(
                f'test_cfg.output_set={output_set!r}: the decoder has '
                f"{num_sets} prediction sets; use 'interm' or an index in "
                f'[{-num_sets}, {num_sets - 1}]')
        mask_features, multi_scale_features = self.pixel_decoder(x)
        outputs, _ = self.predictor(
            multi_scale_features, mask_features, output_set=output_set)
        if output_set == 'interm':
            if outputs['interm_outputs'] is None:
                raise ValueError(
                    "test_cfg.output_set='interm' needs two-stage "
                    'query selection (predictor.two_stage=True)')
            chosen = outputs['interm_outputs']
        else:
            chosen = [*outputs['aux_outputs'], outputs][output_set]
        return (chosen['pred_logits'], chosen['pred_masks'],
                chosen['pred_boxes'])

    def predict(
            self, x: Sequence[Tensor],
            batch_data_samples: SampleList) -> Tuple[Tensor, Tensor, Tensor]:
        """Same as :meth:`forward`; post-processing is the fusion head's."""
        return self.forward(x, batch_data_samples)

    def loss(self, x: Sequence[Tensor],
             batch_data_samples: SampleList) -> Dict[str, Tensor]:
        """Compute all Mask DINO losses (matching, auxiliary, interm, DN)."""
        targets = self.get_targets(batch_data_samples, x[0].device)
        mask_features, multi_scale_features = self.pixel_decoder(x)
        dn = self.predictor.denoising_queries(targets)
        outputs, dn_outputs = self.predictor(multi_scale_features,
                                             mask_features, dn)
        dn_meta = None if dn is None else dn['dn_meta']
        return self.criterion(outputs, dn_outputs, dn_meta, targets)

    def get_targets(self, batch_data_samples: SampleList,
                    device: torch.device) -> List[InstanceData]:
        """Normalised targets of every image (see docs/architecture.md),
        built on ``device`` (the device of the input features)."""
        return [
            self._get_targets_single(s, device) for s in batch_data_samples
        ]

    def _get_targets_single(self, data_sample,
                            device: torch.device) -> InstanceData:
        """Targets of one image, on ``device``.

        Things come from ``gt_instances``; stuff classes present in
        ``gt_sem_seg`` (panoptic and semantic data) become one target each,
        with a box around the mask (x_last + 1, as detectron2's BitMasks).
        Masks and label maps arrive padded to ``batch_input_shape`` by the
        data preprocessor (``pad_mask``, ``pad_seg``). Images without boxes
        (semantic data, no objects) are normal: their empty tensors are
        created on ``device`` too.

        Returns:
            InstanceData: ``labels (n,)``, ``bboxes (n, 4)`` normalised cxcywh
            relative to the padded input, and ``masks (n, H_pad, W_pad)``
            float, absent when the image has boxes but no masks.
        """
        pad_shape = tuple(data_sample.metainfo['batch_input_shape'])
        gt = data_sample.gt_instances
        labels = gt.labels.to(device) if 'labels' in gt else torch.zeros(
            0, dtype=torch.long, device=device)
        boxes = gt.bboxes if 'bboxes' in gt else torch.zeros(
            0, 4, device=device)
        if hasattr(boxes, 'tensor'):
            boxes = boxes.tensor
        boxes = boxes.to(device)
        self._check_labels(labels, data_sample)
        masks = None
        if 'masks' in gt:
            masks = gt.masks.to_tensor(dtype=torch.bool, device=device)
            self._check_padded(masks, pad_shape, 'GT masks', 'pad_mask',
                               data_sample)
        elif 'gt_sem_seg' in data_sample:
            masks = torch.zeros(0, *pad_shape, dtype=torch.bool, device=device)
        if 'gt_sem_seg' in data_sample and self.num_stuff_classes > 0:
            sem_seg = data_sample.gt_sem_seg.sem_seg.to(device)
            self._check_padded(sem_seg, pad_shape, 'gt_sem_seg', 'pad_seg',
                               data_sample)
            stuff_labels, stuff_masks = self._stuff_targets(sem_seg[0])
            labels = torch.cat([labels, stuff_labels])
            masks = torch.cat([masks, stuff_masks])
            boxes = torch.cat([boxes, mask2bbox(stuff_masks).to(boxes)])
        factor = boxes.new_tensor(pad_shape[::-1] * 2)
        targets = InstanceData(
            labels=labels.long(),
            bboxes=bbox_xyxy_to_cxcywh(boxes.float()) / factor)
        if masks is not None:
            targets.masks = masks.float()
        return targets

    @staticmethod
    def _check_padded(maps: Tensor, pad_shape: tuple, name: str, switch: str,
                      data_sample) -> None:
        """Fail clearly on masks or label maps not padded to the batch."""
        if tuple(maps.shape[-2:]) != pad_shape:
            raise ValueError(
                f'{name} of image {data_sample.metainfo.get("img_path", "?")}'
                f' are {tuple(maps.shape[-2:])}, the padded batch input is '
                f'{pad_shape}: the data preprocessor must pad them '
                f'(model.data_preprocessor.{switch}=True)')

    def _check_labels(self, labels: Tensor, data_sample) -> None:
        """Fail clearly on GT labels outside ``[0, num_classes)``."""
        bad = labels[(labels < 0) | (labels >= self.num_classes)]
        if bad.numel() > 0:
            raise ValueError(
                f'GT label {int(bad[0])} of image '
                f'{data_sample.metainfo.get("img_path", "?")} is out of '
                f'range: the model has num_classes={self.num_classes} '
                f'(labels must be in [0, {self.num_classes - 1}]); check '
                'the dataset classes against the model config')

    def _stuff_targets(self, sem_seg: Tensor) -> Tuple[Tensor, Tensor]:
        """One target per stuff class present in a label map.

        Args:
            sem_seg (Tensor): ``(H_pad, W_pad)`` class ids, 255 = ignore.

        Returns:
            tuple: ``labels (s,)`` and bool ``masks (s, H_pad, W_pad)``.
        """
        present = torch.unique(sem_seg)
        is_stuff = (present >= self.num_things_classes) & (
            present < self.num_classes)
        labels = present[is_stuff].long()
        masks = sem_seg[None] == labels[:, None, None]
        return labels, masks
