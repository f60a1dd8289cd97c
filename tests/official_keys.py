# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
"""Official (detectron2) Mask DINO state dicts with random values, for the
checkpoint-conversion tests.

Key names and shapes are written out from the released official checkpoints
(detectron2
ResNet, Mask2Former's ``D2SwinTransformer``, the official encoder, decoder and
criterion), independently of this repository's modules. The aliased tensors
(box MLP, ``decoder_norm``) share storage, as in a real checkpoint.
"""
import re
from collections import OrderedDict
from dataclasses import dataclass, replace
from typing import Dict, List, Sequence, Tuple

import torch

Shapes = 'OrderedDict[str, Tuple[int, ...]]'


@dataclass(frozen=True)
class OfficialSpec:
    """Hyper-parameters that decide the keys and shapes of a checkpoint."""
    num_classes: int = 80
    semantic_ce: bool = False  # class head has C + 1 outputs
    backbone: str = 'resnet'  # 'resnet' or 'swin'
    resnet_blocks: Tuple[int, ...] = (3, 4, 6, 3)
    resnet_stem: int = 64  # also the bottleneck width of res2
    swin_embed: int = 192
    swin_depths: Tuple[int, ...] = (2, 2, 18, 2)
    swin_heads: Tuple[int, ...] = (6, 12, 24, 48)
    swin_window: int = 12
    hidden: int = 256
    enc_layers: int = 6
    dec_layers: int = 9
    enc_ffn: int = 2048
    dec_ffn: int = 2048
    # indices (0 = res2) of the encoder inputs in input_proj order
    transformer_in: Tuple[int, ...] = (1, 2, 3)
    extra_levels: int = 1
    two_stage: bool = True
    num_queries: int = 300
    heads: int = 8
    points: int = 4
    sync_bn: bool = False  # SyncBN also stores num_batches_tracked

    @property
    def backbone_channels(self) -> List[int]:
        if self.backbone == 'swin':
            return [self.swin_embed * 2**i for i in range(4)]
        return [self.resnet_stem * 4 * 2**i for i in range(4)]

    @property
    def num_levels(self) -> int:
        return len(self.transformer_in) + self.extra_levels


R50_INSTANCE = OfficialSpec()
# a test-sized R50 instance model (the parity fixtures' sizes)
TINY = OfficialSpec(
    num_classes=7,
    resnet_stem=4,
    hidden=64,
    enc_layers=2,
    dec_layers=3,
    enc_ffn=128,
    dec_ffn=128,
    num_queries=20)
SWIN_L_INSTANCE = OfficialSpec(backbone='swin', transformer_in=(0, 1, 2, 3))
# released checkpoint -> (our config file, its official keys and shapes)
RELEASED = {
    'r50_instance_hid2048':
    ('maskdino_r50_4xb4-lsj-50e_coco.py', R50_INSTANCE),
    'r50_instance_hid1024': ('maskdino-hid1024_r50_4xb4-lsj-50e_coco.py',
                             replace(
                                 R50_INSTANCE,
                                 enc_ffn=1024,
                                 transformer_in=(3, 2, 1),
                                 extra_levels=0)),
    'r50_panoptic': ('maskdino_r50_4xb4-lsj-50e_coco-panoptic.py',
                     replace(R50_INSTANCE, num_classes=133)),
    'r50_ade20k': ('maskdino_r50_4xb4-160k_ade20k-512x512.py',
                   replace(
                       R50_INSTANCE,
                       num_classes=150,
                       semantic_ce=True,
                       enc_ffn=1024,
                       transformer_in=(3, 2, 1),
                       extra_levels=0,
                       two_stage=False,
                       num_queries=100)),
    'r50_cityscapes': ('maskdino_r50_4xb4-90k_cityscapes-512x1024.py',
                       replace(
                           R50_INSTANCE,
                           num_classes=19,
                           semantic_ce=True,
                           enc_ffn=1024,
                           transformer_in=(3, 2, 1),
                           extra_levels=0,
                           two_stage=False,
                           num_queries=100,
                           sync_bn=True)),
    'swinl_instance':
    ('maskdino_swin-l-p4-w12-384-in21k_8xb2-lsj-50e_coco.py', SWIN_L_INSTANCE),
    'swinl_instance_no_mask_enhance':
    ('maskdino-nomaskenhance_swin-l-p4-w12-384-in21k_8xb2-lsj-50e_coco.py',
     SWIN_L_INSTANCE),
    'swinl_panoptic':
    ('maskdino_swin-l-p4-w12-384-in21k_8xb2-lsj-50e_coco-panoptic.py',
     replace(SWIN_L_INSTANCE, num_classes=133)),
}


def _bn(shapes: dict, prefix: str, channels: int, sync_bn: bool) -> None:
    for name in ('weight', 'bias', 'running_mean', 'running_var'):
        shapes[f'{prefix}.{name}'] = (channels, )
    if sync_bn:
        shapes[f'{prefix}.num_batches_tracked'] = ()


def resnet_shapes(spec: OfficialSpec) -> Shapes:
    """detectron2 bottleneck ResNet (``STRIDE_IN_1X1 False``), ``backbone.*``.
    """
    shapes = OrderedDict()
    stem = spec.resnet_stem
    shapes['backbone.stem.conv1.weight'] = (stem, 3, 7, 7)
    _bn(shapes, 'backbone.stem.conv1.norm', stem, spec.sync_bn)
    in_channels = stem
    for stage, blocks in enumerate(spec.resnet_blocks):
        width = stem * 2**stage
        for i in range(blocks):
            p = f'backbone.res{stage + 2}.{i}'
            if i == 0:
                shapes[f'{p}.shortcut.weight'] = (4 * width, in_channels, 1, 1)
                _bn(shapes, f'{p}.shortcut.norm', 4 * width, spec.sync_bn)
            convs = ((width, in_channels, 1, 1), (width, width, 3, 3),
                     (4 * width, width, 1, 1))
            for j, shape in enumerate(convs, 1):
                shapes[f'{p}.conv{j}.weight'] = shape
                _bn(shapes, f'{p}.conv{j}.norm', shape[0], spec.sync_bn)
            in_channels = 4 * width
    return shapes


def swin_shapes(spec: OfficialSpec) -> Shapes:
    """Mask2Former ``D2SwinTransformer`` (patch norm, no absolute position
    embedding, ``norm{i}`` on every output), ``backbone.*``."""
    shapes = OrderedDict()
    embed = spec.swin_embed
    shapes['backbone.patch_embed.proj.weight'] = (embed, 3, 4, 4)
    shapes['backbone.patch_embed.proj.bias'] = (embed, )
    shapes['backbone.patch_embed.norm.weight'] = (embed, )
    shapes['backbone.patch_embed.norm.bias'] = (embed, )
    window = spec.swin_window
    for i, (depth, heads) in enumerate(zip(spec.swin_depths, spec.swin_heads)):
        dim = embed * 2**i
        for j in range(depth):
            p = f'backbone.layers.{i}.blocks.{j}'
            shapes[f'{p}.norm1.weight'] = shapes[f'{p}.norm1.bias'] = (dim, )
            shapes[f'{p}.attn.relative_position_bias_table'] = ((2 * window -
                                                                 1)**2, heads)
            shapes[f'{p}.attn.relative_position_index'] = (window**2,
                                                           window**2)
            shapes[f'{p}.attn.qkv.weight'] = (3 * dim, dim)
            shapes[f'{p}.attn.qkv.bias'] = (3 * dim, )
            shapes[f'{p}.attn.proj.weight'] = (dim, dim)
            shapes[f'{p}.attn.proj.bias'] = (dim, )
            shapes[f'{p}.norm2.weight'] = shapes[f'{p}.norm2.bias'] = (dim, )
            shapes[f'{p}.mlp.fc1.weight'] = (4 * dim, dim)
            shapes[f'{p}.mlp.fc1.bias'] = (4 * dim, )
            shapes[f'{p}.mlp.fc2.weight'] = (dim, 4 * dim)
            shapes[f'{p}.mlp.fc2.bias'] = (dim, )
        if i < len(spec.swin_depths) - 1:
            p = f'backbone.layers.{i}.downsample'
            shapes[f'{p}.reduction.weight'] = (2 * dim, 4 * dim)
            shapes[f'{p}.norm.weight'] = shapes[f'{p}.norm.bias'] = (4 * dim, )
    for i in range(len(spec.swin_depths)):
        dim = embed * 2**i
        shapes[f'backbone.norm{i}.weight'] = (dim, )
        shapes[f'backbone.norm{i}.bias'] = (dim, )
    return shapes


def _linear(shapes: dict, prefix: str, out_dim: int, in_dim: int) -> None:
    shapes[f'{prefix}.weight'] = (out_dim, in_dim)
    shapes[f'{prefix}.bias'] = (out_dim, )


def _msda(shapes: dict, prefix: str, spec: OfficialSpec) -> None:
    d, hlp = spec.hidden, spec.heads * spec.num_levels * spec.points
    _linear(shapes, f'{prefix}.sampling_offsets', 2 * hlp, d)
    _linear(shapes, f'{prefix}.attention_weights', hlp, d)
    _linear(shapes, f'{prefix}.value_proj', d, d)
    _linear(shapes, f'{prefix}.output_proj', d, d)


def _norm(shapes: dict, prefix: str, dim: int) -> None:
    shapes[f'{prefix}.weight'] = shapes[f'{prefix}.bias'] = (dim, )


def _mlp(shapes: dict, prefix: str, dims: Sequence[Tuple[int, int]]) -> None:
    for i, (out_dim, in_dim) in enumerate(dims):
        _linear(shapes, f'{prefix}.layers.{i}', out_dim, in_dim)


def head_shapes(spec: OfficialSpec) -> Shapes:
    """``sem_seg_head.*`` and ``criterion.empty_weight`` in the official order.
    """
    shapes = OrderedDict()
    d, channels = spec.hidden, spec.backbone_channels
    p = 'sem_seg_head.pixel_decoder'
    for i, level in enumerate(spec.transformer_in):
        shapes[f'{p}.input_proj.{i}.0.weight'] = (d, channels[level], 1, 1)
        shapes[f'{p}.input_proj.{i}.0.bias'] = (d, )
        shapes[f'{p}.input_proj.{i}.1.weight'] = (d, )
        shapes[f'{p}.input_proj.{i}.1.bias'] = (d, )
    for i in range(len(spec.transformer_in), spec.num_levels):
        shapes[f'{p}.input_proj.{i}.0.weight'] = (d, channels[-1], 3, 3)
        shapes[f'{p}.input_proj.{i}.0.bias'] = (d, )
        shapes[f'{p}.input_proj.{i}.1.weight'] = (d, )
        shapes[f'{p}.input_proj.{i}.1.bias'] = (d, )
    shapes[f'{p}.transformer.level_embed'] = (spec.num_levels, d)
    for i in range(spec.enc_layers):
        layer = f'{p}.transformer.encoder.layers.{i}'
        _msda(shapes, f'{layer}.self_attn', spec)
        _norm(shapes, f'{layer}.norm1', d)
        _linear(shapes, f'{layer}.linear1', spec.enc_ffn, d)
        _linear(shapes, f'{layer}.linear2', d, spec.enc_ffn)
        _norm(shapes, f'{layer}.norm2', d)
    shapes[f'{p}.mask_features.weight'] = (d, d, 1, 1)
    shapes[f'{p}.mask_features.bias'] = (d, )
    shapes[f'{p}.adapter_1.weight'] = (d, channels[0], 1, 1)
    shapes[f'{p}.adapter_1.norm.weight'] = (d, )
    shapes[f'{p}.adapter_1.norm.bias'] = (d, )
    shapes[f'{p}.layer_1.weight'] = (d, d, 3, 3)
    shapes[f'{p}.layer_1.norm.weight'] = (d, )
    shapes[f'{p}.layer_1.norm.bias'] = (d, )

    p = 'sem_seg_head.predictor'
    if spec.two_stage:
        _linear(shapes, f'{p}.enc_output', d, d)
        _norm(shapes, f'{p}.enc_output_norm', d)
    else:
        shapes[f'{p}.query_feat.weight'] = (spec.num_queries, d)
        shapes[f'{p}.query_embed.weight'] = (spec.num_queries, 4)
    num_logits = spec.num_classes + int(spec.semantic_ce)
    _linear(shapes, f'{p}.class_embed', num_logits, d)
    shapes[f'{p}.label_enc.weight'] = (spec.num_classes, d)
    _mlp(shapes, f'{p}.mask_embed', [(d, d)] * 3)
    _norm(shapes, f'{p}.decoder_norm', d)
    for i in range(spec.dec_layers):
        layer = f'{p}.decoder.layers.{i}'
        _msda(shapes, f'{layer}.cross_attn', spec)
        _norm(shapes, f'{layer}.norm1', d)
        shapes[f'{layer}.self_attn.in_proj_weight'] = (3 * d, d)
        shapes[f'{layer}.self_attn.in_proj_bias'] = (3 * d, )
        _linear(shapes, f'{layer}.self_attn.out_proj', d, d)
        _norm(shapes, f'{layer}.norm2', d)
        _linear(shapes, f'{layer}.linear1', spec.dec_ffn, d)
        _linear(shapes, f'{layer}.linear2', d, spec.dec_ffn)
        _norm(shapes, f'{layer}.norm3', d)
    _norm(shapes, f'{p}.decoder.norm', d)
    _mlp(shapes, f'{p}.decoder.ref_point_head', [(d, 2 * d), (d, d)])
    box_mlp = [(d, d), (d, d), (4, d)]
    for i in range(spec.dec_layers):
        _mlp(shapes, f'{p}.decoder.bbox_embed.{i}', box_mlp)
    _mlp(shapes, f'{p}._bbox_embed', box_mlp)
    for i in range(spec.dec_layers):
        _mlp(shapes, f'{p}.bbox_embed.{i}', box_mlp)
    shapes['criterion.empty_weight'] = (spec.num_classes + 1, )
    return shapes


def official_shapes(spec: OfficialSpec) -> Shapes:
    """Every key of the official checkpoint with its shape."""
    backbone = swin_shapes(spec) if spec.backbone == 'swin' else resnet_shapes(
        spec)
    return OrderedDict(**backbone, **head_shapes(spec))


def _alias_source(key: str) -> str:
    """The key whose tensor an official alias shares (itself otherwise)."""
    key = re.sub(r'\.predictor\.(?:decoder\.)?bbox_embed\.\d+\.',
                 '.predictor._bbox_embed.', key)
    return key.replace('.predictor.decoder_norm.', '.predictor.decoder.norm.')


def official_state_dict(spec: OfficialSpec,
                        seed: int = 0) -> 'OrderedDict[str, torch.Tensor]':
    """Random float32 tensors under the official keys; aliases share storage,
    ``relative_position_index`` / ``num_batches_tracked`` are int64."""
    gen = torch.Generator().manual_seed(seed)
    shapes = official_shapes(spec)
    out: Dict[str, torch.Tensor] = OrderedDict()
    for key, shape in shapes.items():
        if key.endswith(('relative_position_index', 'num_batches_tracked')):
            out[key] = torch.zeros(shape, dtype=torch.long)
        elif _alias_source(key) != key:
            continue
        else:
            out[key] = torch.randn(shape, generator=gen)
    return OrderedDict((k, out[_alias_source(k)]) for k in shapes)


def spec_from_fixture(fx: dict) -> OfficialSpec:
    """The spec of a parity fixture's model with a ResNet-50 of stem width 4
    (res2..res5 = 16, 32, 64, 128 channels, as the fixture inputs)."""
    cfg = fx['config']
    md, ssh = 'MODEL.MaskDINO.', 'MODEL.SEM_SEG_HEAD.'
    names = cfg[ssh + 'IN_FEATURES']
    trans = [
        names.index(n)
        for n in cfg[ssh + 'DEFORMABLE_TRANSFORMER_ENCODER_IN_FEATURES']
    ]
    if cfg[ssh + 'FEATURE_ORDER'] == 'high2low':
        trans = trans[::-1]
    return OfficialSpec(
        num_classes=cfg[ssh + 'NUM_CLASSES'],
        semantic_ce=cfg[md + 'TEST.SEMANTIC_ON']
        and cfg[md + 'SEMANTIC_CE_LOSS'],
        resnet_stem=fx['input_shapes']['res2']['channels'] // 4,
        hidden=cfg[md + 'HIDDEN_DIM'],
        enc_layers=cfg[ssh + 'TRANSFORMER_ENC_LAYERS'],
        dec_layers=cfg[md + 'DEC_LAYERS'],
        enc_ffn=cfg[ssh + 'DIM_FEEDFORWARD'],
        dec_ffn=cfg[md + 'DIM_FEEDFORWARD'],
        transformer_in=tuple(trans),
        extra_levels=cfg[ssh + 'TOTAL_NUM_FEATURE_LEVELS'] - len(trans),
        two_stage=cfg[md + 'TWO_STAGE'],
        num_queries=cfg[md + 'NUM_OBJECT_QUERIES'])


def model_cfg(spec: OfficialSpec,
              num_things: int,
              initialize_box_type: str = 'no',
              dn_num: int = 10,
              **test_cfg) -> dict:
    """Our ``model`` config for a ResNet ``spec`` (from the R50 base configs).

    Args:
        spec (OfficialSpec): Sizes; the stem width sets ``base_channels``.
        num_things (int): Thing classes; the rest of ``spec.num_classes``
            are stuff.
        initialize_box_type (str): ``'no'``, ``'mask2box'`` or ``'bitmask'``.
        dn_num (int): Denoising queries.
        **test_cfg: Overrides of ``model.test_cfg``.
    """
    from mmengine.config import Config

    from tests.conftest import REPO_ROOT
    base = ('maskdino_r50_semantic.py'
            if spec.semantic_ce else 'maskdino_r50.py')
    cfg = Config.fromfile(
        str(REPO_ROOT / 'configs' / '_base_' / 'models' / base))
    levels = spec.num_levels
    order = 'high2low' if list(spec.transformer_in) != sorted(
        spec.transformer_in) else 'low2high'
    cfg.merge_from_dict(
        dict(
            model=dict(
                backbone=dict(base_channels=spec.resnet_stem, init_cfg=None),
                panoptic_head=dict(
                    num_things_classes=num_things,
                    num_stuff_classes=spec.num_classes - num_things,
                    pixel_decoder=dict(
                        in_channels=spec.backbone_channels,
                        transformer_in_features=tuple(
                            sorted(spec.transformer_in)),
                        feat_channels=spec.hidden,
                        mask_dim=spec.hidden,
                        num_feature_levels=levels,
                        feature_order=order,
                        num_encoder_layers=spec.enc_layers,
                        ffn_channels=spec.enc_ffn),
                    predictor=dict(
                        hidden_dim=spec.hidden,
                        num_queries=spec.num_queries,
                        ffn_dim=spec.dec_ffn,
                        num_layers=spec.dec_layers,
                        mask_dim=spec.hidden,
                        num_feature_levels=levels,
                        two_stage=spec.two_stage,
                        initialize_box_type=initialize_box_type,
                        semantic_ce=spec.semantic_ce,
                        denoising=dict(dn_num=dn_num))),
                test_cfg=test_cfg)))
    return cfg.model
