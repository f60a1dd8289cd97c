# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
"""The Mask DINO head: pixel decoder + transformer decoder + criterion."""
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmdet.registry import MODELS
from mmdet.structures import SampleList
from mmdet.structures.bbox import bbox_xyxy_to_cxcywh
from mmdet.structures.mask import mask2bbox
from mmdet.utils import ConfigType, OptConfigType, OptMultiConfig
from mmengine.model import BaseModule
from mmengine.structures import InstanceData
from torch import Tensor


@MODELS.register_module()
class MaskDINOHead(BaseModule):
    """Ties Mask DINO's pixel decoder, decoder and criterion together.

    This head holds no math of its own: it turns data samples into the
    normalised targets of the official code (reference section 4.6), runs
    ``pixel_decoder`` then ``predictor`` and hands the outputs to the
    criterion (training) or returns the final predictions (inference).
    The class count is set once here and filled into the predictor and the
    criterion.

    Args:
        num_things_classes (int): Number of thing classes (contiguous ids
            ``0 .. num_things_classes - 1``).
        num_stuff_classes (int): Number of stuff classes (the ids after the
            things). Semantic-segmentation models treat every class as stuff.
        pixel_decoder (dict): Config of :class:`MaskDINOEncoder`.
        predictor (dict): Config of :class:`MaskDINODecoder`.
        criterion (dict): Config of :class:`MaskDINOLoss`.
        train_cfg (dict, optional): Unused, kept for MaskFormer's interface.
        test_cfg (dict, optional): Unused, kept for MaskFormer's interface.
        init_cfg (dict, optional): Initialisation config.
    """

    def __init__(self,
                 num_things_classes: int = 80,
                 num_stuff_classes: int = 53,
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
        predictor = dict(predictor, num_classes=self.num_classes)
        self.predictor = MODELS.build(predictor)
        criterion = dict(criterion, num_classes=self.num_classes)
        self.criterion = MODELS.build(criterion)

    def forward(self,
                x: Sequence[Tensor],
                batch_data_samples: Optional[SampleList] = None
                ) -> Tuple[Tensor, Tensor, Tensor]:
        """Final predictions without post-processing.

        Args:
            x (Sequence[Tensor]): Backbone maps (res2 .. res5).
            batch_data_samples (list, optional): Unused; kept for the
                detector's ``_forward`` interface.

        Returns:
            tuple: ``pred_logits (bs, Q, K)``, ``pred_masks (bs, Q, h4, w4)``
            and ``pred_boxes (bs, Q, 4)`` (normalised cxcywh, relative to the
            padded input).
        """
        mask_features, multi_scale_features = self.pixel_decoder(x)
        outputs, _ = self.predictor(multi_scale_features, mask_features)
        return (outputs['pred_logits'], outputs['pred_masks'],
                outputs['pred_boxes'])

    def predict(self, x: Sequence[Tensor],
                batch_data_samples: SampleList) -> Tuple[Tensor, Tensor, Tensor]:
        """Same as :meth:`forward`; post-processing is the fusion head's."""
        return self.forward(x, batch_data_samples)

    def loss(self, x: Sequence[Tensor],
             batch_data_samples: SampleList) -> Dict[str, Tensor]:
        """Compute all Mask DINO losses (matching, auxiliary, interm, DN)."""
        targets = self.get_targets(batch_data_samples, x[0].device)
        mask_features, multi_scale_features = self.pixel_decoder(x)
        dn = self.predictor.denoising(targets, self.predictor.num_queries)
        outputs, dn_outputs = self.predictor(multi_scale_features,
                                             mask_features, dn)
        dn_meta = None if dn is None else dn['dn_meta']
        return self.criterion(outputs, dn_outputs, dn_meta, targets)

    def get_targets(self, batch_data_samples: SampleList,
                    device: torch.device) -> List[InstanceData]:
        """Normalised targets of every image (see docs/architecture.md),
        built on ``device`` (the device of the input features)."""
        return [self._get_targets_single(s, device) for s in batch_data_samples]

    def _get_targets_single(self, data_sample,
                            device: torch.device) -> InstanceData:
        """Targets of one image, on ``device``.

        Things come from ``gt_instances``; stuff classes present in
        ``gt_sem_seg`` (panoptic and semantic data) become one target each,
        with a box around the mask (x_last + 1, as detectron2's BitMasks).
        Images without boxes (semantic data, no objects) are normal: their
        empty tensors are created on ``device`` too.

        Returns:
            InstanceData: ``labels (n,)``, ``bboxes (n, 4)`` normalised cxcywh
            relative to the padded input, and ``masks (n, H_pad, W_pad)``
            float, absent when the image has boxes but no masks.
        """
        pad_h, pad_w = data_sample.metainfo['batch_input_shape']
        gt = data_sample.gt_instances
        labels = gt.labels.to(device) if 'labels' in gt else torch.zeros(
            0, dtype=torch.long, device=device)
        boxes = gt.bboxes if 'bboxes' in gt else torch.zeros(0, 4,
                                                             device=device)
        if hasattr(boxes, 'tensor'):
            boxes = boxes.tensor
        boxes = boxes.to(device)
        self._check_labels(labels, data_sample)
        has_masks = 'masks' in gt or 'gt_sem_seg' in data_sample
        masks = None
        if has_masks:
            masks = (self._pad_masks(gt.masks, pad_h, pad_w, device)
                     if 'masks' in gt else torch.zeros(
                         0, pad_h, pad_w, dtype=torch.bool, device=device))
        if 'gt_sem_seg' in data_sample and self.num_stuff_classes > 0:
            stuff_labels, stuff_masks = self._stuff_targets(
                data_sample.gt_sem_seg.sem_seg.to(device), pad_h, pad_w)
            labels = torch.cat([labels, stuff_labels])
            masks = torch.cat([masks, stuff_masks])
            boxes = torch.cat([boxes, mask2bbox(stuff_masks).to(boxes)])
        factor = boxes.new_tensor([pad_w, pad_h, pad_w, pad_h])
        targets = InstanceData(
            labels=labels.long(),
            bboxes=bbox_xyxy_to_cxcywh(boxes.float()) / factor)
        if masks is not None:
            targets.masks = masks.float()
        return targets

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

    @staticmethod
    def _pad_masks(masks, pad_h: int, pad_w: int, device) -> Tensor:
        """BitmapMasks/PolygonMasks -> bool tensor ``(n, pad_h, pad_w)``."""
        tensor = masks.to_tensor(dtype=torch.bool, device=device)
        h, w = tensor.shape[-2:]
        if h > pad_h or w > pad_w:
            raise ValueError(f'GT masks of size {(h, w)} are larger than the '
                             f'padded batch input {(pad_h, pad_w)}')
        return F.pad(tensor, (0, pad_w - w, 0, pad_h - h))

    def _stuff_targets(self, sem_seg: Tensor, pad_h: int,
                       pad_w: int) -> Tuple[Tensor, Tensor]:
        """One target per stuff class present in a label map.

        Args:
            sem_seg (Tensor): ``(1, h, w)`` class ids, 255 = ignore.

        Returns:
            tuple: ``labels (s,)`` and bool ``masks (s, pad_h, pad_w)``.
        """
        sem_seg = sem_seg[0]
        h, w = sem_seg.shape
        sem_seg = F.pad(sem_seg, (0, pad_w - w, 0, pad_h - h), value=255)
        present = torch.unique(sem_seg)
        is_stuff = (present >= self.num_things_classes) & (
            present < self.num_classes)
        labels = present[is_stuff].long()
        masks = sem_seg[None] == labels[:, None, None]
        return labels, masks
