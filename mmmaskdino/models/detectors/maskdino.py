# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
"""Mask DINO detector."""
from typing import List, Tuple

from mmdet.models.detectors import MaskFormer
from mmdet.registry import MODELS
from mmdet.structures import SampleList
from mmdet.utils import ConfigType, OptConfigType, OptMultiConfig
from mmengine.config import ConfigDict
from torch import Tensor

from mmmaskdino.utils.checkpoint_conversion import prepare_state_dict
from ..dense_heads.maskdino_head import MaskDINOHead
from ..seg_heads.maskdino_fusion_head import \
    TEST_CFG_DEFAULTS as FUSION_TEST_CFG_DEFAULTS
from ..utils import fill_derived, uses_softmax_classes


def fusion_head_config(panoptic_head: ConfigType,
                       panoptic_fusion_head: ConfigType) -> ConfigDict:
    """``panoptic_fusion_head`` with the settings of ``panoptic_head`` filled
    in: the class counts and ``semantic_ce`` (from
    ``criterion.loss_cls``).

    Args:
        panoptic_head (dict): Config of :class:`MaskDINOHead`.
        panoptic_fusion_head (dict): Config of :class:`MaskDINOFusionHead`.

    Returns:
        ConfigDict: The fusion head's config.
    """
    return fill_derived(
        panoptic_fusion_head,
        'panoptic_head (class counts, criterion.loss_cls)',
        num_things_classes=panoptic_head['num_things_classes'],
        num_stuff_classes=panoptic_head['num_stuff_classes'],
        semantic_ce=uses_softmax_classes(panoptic_head['criterion']))


def check_test_cfg(test_cfg: OptConfigType) -> None:
    """Fail on ``test_cfg`` keys that neither the head nor the fusion head
    reads (a misspelt key would otherwise be ignored silently)."""
    known = {
        *FUSION_TEST_CFG_DEFAULTS, *MaskDINOHead.TEST_CFG_DEFAULTS,
        'semantic_ce'
    }
    unknown = set(test_cfg or {}) - known
    if unknown:
        raise ValueError(f'unknown model.test_cfg keys {sorted(unknown)}; '
                         f'known: {sorted(known)}')


@MODELS.register_module()
class MaskDINO(MaskFormer):
    r"""`Mask DINO <https://arxiv.org/abs/2206.02777>`_: one model for
    detection, instance, panoptic and semantic segmentation.

    backbone -> ``panoptic_head`` (:class:`MaskDINOHead`: pixel decoder,
    decoder, criterion) -> ``panoptic_fusion_head``
    (:class:`MaskDINOFusionHead`: post-processing). Which of
    ``pred_instances``, ``pred_panoptic_seg`` and ``pred_sem_seg`` are filled
    is chosen by ``test_cfg`` (``instance_on``, ``panoptic_on``,
    ``semantic_on``), like the official ``TEST.*_ON`` flags.

    Unlike :class:`MaskFormer`, the head returns predicted boxes as well, and
    semantic results are supported. The class counts are written once, in
    ``panoptic_head``, and filled into ``panoptic_fusion_head`` with
    ``semantic_ce`` (see :func:`fusion_head_config`).
    """

    def __init__(self,
                 backbone: ConfigType,
                 panoptic_head: ConfigType,
                 panoptic_fusion_head: ConfigType,
                 neck: OptConfigType = None,
                 train_cfg: OptConfigType = None,
                 test_cfg: OptConfigType = None,
                 data_preprocessor: OptConfigType = None,
                 init_cfg: OptMultiConfig = None) -> None:
        check_test_cfg(test_cfg)
        super().__init__(
            backbone=backbone,
            neck=neck,
            panoptic_head=ConfigDict(panoptic_head),
            panoptic_fusion_head=fusion_head_config(panoptic_head,
                                                    panoptic_fusion_head),
            train_cfg=train_cfg,
            test_cfg=test_cfg,
            data_preprocessor=data_preprocessor,
            init_cfg=init_cfg)

    def _load_from_state_dict(self, state_dict: dict, prefix: str, *args,
                              **kwargs) -> None:
        """Accept official (detectron2) checkpoints and class-count changes.

        Runs before any child module reads ``state_dict``: an official
        checkpoint is converted in place and class-dependent tensors of
        another shape are skipped (see
        :func:`mmmaskdino.utils.checkpoint_conversion.prepare_state_dict`).
        """
        prepare_state_dict(state_dict, self, prefix)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def predict(self,
                batch_inputs: Tensor,
                batch_data_samples: SampleList,
                rescale: bool = True) -> SampleList:
        """Predict and post-process a batch.

        Args:
            batch_inputs (Tensor): ``(bs, 3, H_pad, W_pad)`` normalised images.
            batch_data_samples (list[DetDataSample]): Samples with metainfo
                ``batch_input_shape``, ``img_shape`` and ``ori_shape``.
            rescale (bool): Return results at the original image size.

        Returns:
            list[DetDataSample]: The samples with ``pred_*`` fields set.
        """
        feats = self.extract_feat(batch_inputs)
        mask_cls, mask_pred, mask_box = self.panoptic_head.predict(
            feats, batch_data_samples)
        results_list = self.panoptic_fusion_head.predict(
            mask_cls, mask_pred, mask_box, batch_data_samples, rescale=rescale)
        return self.add_pred_to_datasample(batch_data_samples, results_list)

    @staticmethod
    def add_pred_to_datasample(data_samples: SampleList,
                               results_list: List[dict]) -> SampleList:
        """Store instance, panoptic and semantic results in the samples (also
        used by :class:`mmmaskdino.deployment.OnnxMaskDINO`)."""
        for data_sample, results in zip(data_samples, results_list):
            if 'pan_results' in results:
                data_sample.pred_panoptic_seg = results['pan_results']
            if 'ins_results' in results:
                data_sample.pred_instances = results['ins_results']
            if 'sem_results' in results:
                data_sample.pred_sem_seg = results['sem_results']
        return data_samples

    def _forward(self,
                 batch_inputs: Tensor,
                 batch_data_samples: SampleList = None) -> Tuple[Tensor]:
        """Network outputs without post-processing (FLOPs, export).

        Returns:
            tuple: ``pred_logits (bs, Q, K)``, ``pred_masks (bs, Q, h4, w4)``,
            ``pred_boxes (bs, Q, 4)``.
        """
        feats = self.extract_feat(batch_inputs)
        return self.panoptic_head.forward(feats, batch_data_samples)
