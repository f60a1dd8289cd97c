# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
from typing import Optional

import pytest
import torch
from mmengine.structures import InstanceData
from torch import nn

# registers MaskDINODenoising
import mmmaskdino.models.layers.denoising  # noqa: F401
from mmmaskdino.models.layers.box_ops import masks_to_refpoint_logits
from mmmaskdino.models.layers.factorised_masks import FactorisedMasks
from mmmaskdino.models.layers.maskdino_decoder import MaskDINODecoder
from mmmaskdino.utils.checkpoint_conversion import convert_head_state_dict
from tests.conftest import load_parity_fixture

PREFIX = 'panoptic_head.predictor.'
TOL = dict(rtol=1e-4, atol=1e-4)


def _decoder_from_fixture(fx: dict) -> MaskDINODecoder:
    cfg = fx['config']
    md = 'MODEL.MaskDINO.'
    ssh = 'MODEL.SEM_SEG_HEAD.'
    return MaskDINODecoder(
        num_classes=cfg[ssh + 'NUM_CLASSES'],
        hidden_dim=cfg[md + 'HIDDEN_DIM'],
        num_queries=cfg[md + 'NUM_OBJECT_QUERIES'],
        num_heads=fx['constants']['decoder_self_attn_heads'],
        ffn_dim=cfg[md + 'DIM_FEEDFORWARD'],
        num_layers=cfg[md + 'DEC_LAYERS'],
        mask_dim=cfg[ssh + 'MASK_DIM'],
        num_feature_levels=cfg[ssh + 'TOTAL_NUM_FEATURE_LEVELS'],
        num_points=fx['constants']['decoder_n_points'],
        two_stage=cfg[md + 'TWO_STAGE'],
        initialize_box_type=cfg[md + 'INITIALIZE_BOX_TYPE'],
        initial_pred=cfg[md + 'INITIAL_PRED'],
        semantic_ce=cfg[md + 'TEST.SEMANTIC_ON']
        and cfg[md + 'SEMANTIC_CE_LOSS'],
        denoising=dict(
            dn_num=cfg[md + 'DN_NUM'], noise_scale=cfg[md + 'DN_NOISE_SCALE']))


def _loaded_decoder(fx: dict) -> MaskDINODecoder:
    decoder = _decoder_from_fixture(fx)
    converted = convert_head_state_dict(fx['state_dict'])
    state = {
        k[len(PREFIX):]: v
        for k, v in converted.items() if k.startswith(PREFIX)
    }
    decoder.load_state_dict(state, strict=True)
    return decoder


def _max_err(actual: torch.Tensor, expected: torch.Tensor) -> float:
    return (actual - expected).abs().max().item()


def _check(errors: dict, name: str, actual: torch.Tensor,
           expected: torch.Tensor) -> None:
    assert actual.shape == expected.shape, name
    errors[name] = _max_err(actual, expected)
    torch.testing.assert_close(actual, expected, **TOL, msg=name)


@pytest.mark.parametrize('variant', ['instance', 'panoptic', 'semantic'])
def test_parity_with_official_outputs(variant):
    fx = load_parity_fixture(variant)
    ref = fx['outputs']
    decoder = _loaded_decoder(fx).eval()
    feats = ref['multi_scale_features']
    mask_features = ref['mask_features']
    errors = {}
    captured = {}

    # test-only values are read with forward hooks: the first call of the
    # class head scores the encoder tokens; the decoder stack returns its
    # hidden states and references
    def capture(name):

        def hook(module, args, output):
            captured.setdefault(name, output)

        return hook

    decoder.class_embed.register_forward_hook(capture('enc_class_logits'))
    decoder.decoder.register_forward_hook(capture('decoder'))
    with torch.no_grad():
        memory = decoder.build_memory(feats)
        assert memory['spatial_shapes'].tolist(
        ) == ref['decoder_spatial_shapes']
        assert memory['level_start_index'].tolist(
        ) == ref['decoder_level_start_index']
        selection = decoder.select_queries(memory['memory'],
                                           memory['spatial_shapes'],
                                           mask_features)
        if decoder.two_stage:
            enc_class_logits = captured['enc_class_logits']
            _check(errors, 'enc_class_logits', enc_class_logits,
                   ref['enc_class_logits'])
            topk_indices = torch.topk(
                enc_class_logits.max(-1)[0], decoder.num_queries, dim=1)[1]
            assert torch.equal(topk_indices, ref['topk_indices'])
            interm = selection['interm_outputs']
            _check(errors, 'interm_pred_logits', interm['pred_logits'],
                   ref['interm_pred_logits'])
            _check(errors, 'interm_pred_boxes', interm['pred_boxes'],
                   ref['interm_pred_boxes'])
            if decoder.initialize_box_type != 'no':
                _check(errors, 'interm_pred_masks', interm['pred_masks'],
                       ref['interm_pred_masks'])
            else:
                assert interm['pred_masks'] is None  # skipped in eval
        else:
            assert selection['interm_outputs'] is None
        _check(errors, 'decoder_init_reference_unsigmoid',
               selection['refpoint_logits'],
               ref['decoder_init_reference_unsigmoid'])
        decoder.forward_decoder(selection['query'],
                                selection['refpoint_logits'], memory,
                                mask_features, None)
        hidden_states, references = captured['decoder']
        _check(errors, 'decoder_hidden_states', torch.stack(hidden_states),
               ref['decoder_hidden_states'])
        _check(errors, 'decoder_references', torch.stack(references),
               ref['decoder_references'])

        outputs, dn_outputs = decoder(feats, mask_features)
    assert dn_outputs is None
    aux = outputs['aux_outputs']
    assert len(aux) == decoder.num_layers
    _check(errors, 'aux_pred_logits',
           torch.stack([a['pred_logits'] for a in aux]),
           ref['aux_pred_logits'])
    _check(errors, 'aux_pred_boxes',
           torch.stack([a['pred_boxes'] for a in aux]), ref['aux_pred_boxes'])
    assert all(a['pred_masks'] is None for a in aux)
    for key in ('pred_logits', 'pred_boxes', 'pred_masks'):
        _check(errors, key, outputs[key], ref[key])
    print(f'{variant} max abs errors:', {
        k: f'{v:.2e}'
        for k, v in errors.items()
    })


@pytest.mark.parametrize('variant', ['panoptic', 'semantic'])
def test_parity_in_training_mode_without_dn(variant):
    """Training mode (no dropout) gives the same numbers, plus every mask."""
    fx = load_parity_fixture(variant)
    ref = fx['outputs']
    decoder = _loaded_decoder(fx).train()
    with torch.no_grad():
        outputs, dn_outputs = decoder(ref['multi_scale_features'],
                                      ref['mask_features'])
    assert 'pred_logits' not in dn_outputs  # no denoising queries given
    for key in ('pred_logits', 'pred_boxes', 'pred_masks'):
        torch.testing.assert_close(_dense(outputs[key]), ref[key], **TOL)
    # training keeps every set's masks factorised
    assert all(
        isinstance(a['pred_masks'], FactorisedMasks)
        for a in outputs['aux_outputs'])
    if decoder.two_stage:
        torch.testing.assert_close(
            outputs['interm_outputs']['pred_masks'].dense(),
            ref['interm_pred_masks'], **TOL)


def test_converter_drops_aliases():
    fx = load_parity_fixture('instance')
    converted = convert_head_state_dict(fx['state_dict'])
    keys = [k[len(PREFIX):] for k in converted if k.startswith(PREFIX)]
    official = [
        k for k in fx['state_dict'] if k.startswith('sem_seg_head.predictor.')
    ]
    # 6 aliased box MLPs x 6 tensors, decoder_norm x 2
    assert len(official) - len(keys) == 6 * 6 + 2
    assert 'denoising.label_enc.weight' in keys
    assert not any(k.startswith('decoder_norm') for k in keys)
    assert sum(k.startswith('bbox_embed.') for k in keys) == 6


# ----------------------------------------------------------------- tiny models

BS, DIM, NUM_CLASSES, NUM_QUERIES, NUM_LAYERS = 2, 32, 3, 6, 2
SHAPES = [(8, 10), (4, 5), (2, 3)]  # encoder order, low2high
MASK_HW = (16, 20)


def _tiny_decoder(**kwargs) -> MaskDINODecoder:
    cfg = dict(
        num_classes=NUM_CLASSES,
        hidden_dim=DIM,
        num_queries=NUM_QUERIES,
        ffn_dim=64,
        num_layers=NUM_LAYERS,
        mask_dim=DIM,
        num_feature_levels=len(SHAPES),
        initialize_box_type='mask2box',
        denoising=dict(dn_num=4, noise_scale=0.4))
    cfg.update(kwargs)
    torch.manual_seed(0)
    decoder = MaskDINODecoder(**cfg)
    decoder.init_weights()
    return decoder


def _tiny_inputs(seed: int = 1):
    gen = torch.Generator().manual_seed(seed)
    feats = [torch.randn(BS, DIM, h, w, generator=gen) for h, w in SHAPES]
    mask_features = torch.randn(BS, DIM, *MASK_HW, generator=gen)
    return feats, mask_features


def _denoising_queries(decoder: MaskDINODecoder) -> dict:
    """DN queries of the real generator: 2 GT and 1 GT, dn_num 4 -> 2 groups of
    2 slots."""
    gen = torch.Generator().manual_seed(2)
    gts = []
    for num_gt in (2, 1):
        gt = InstanceData()
        gt.labels = torch.randint(0, NUM_CLASSES, (num_gt, ), generator=gen)
        gt.bboxes = torch.rand(num_gt, 4, generator=gen) * 0.5 + 0.25
        gts.append(gt)
    torch.manual_seed(4)
    dn = decoder.denoising(gts, NUM_QUERIES)
    assert dn['dn_meta']['pad_size'] == 4
    return dn


def _dense(value):
    """Full-resolution logits of a training-mode mask prediction."""
    return value.dense() if isinstance(value, FactorisedMasks) else value


def _randomise(module: nn.Module) -> None:
    """Break the zero/constant initial values so that every gradient path is
    non-trivial."""
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=gen))


def _check_set(pred: dict, n: int, with_masks: bool = True) -> None:
    assert pred['pred_logits'].shape == (BS, n, NUM_CLASSES)
    assert pred['pred_boxes'].shape == (BS, n, 4)
    if with_masks:
        assert pred['pred_masks'].shape == (BS, n, *MASK_HW)
    else:
        assert pred['pred_masks'] is None


def test_module_tree_and_init():
    decoder = _tiny_decoder()
    keys = decoder.state_dict().keys()
    assert decoder.decoder_norm is decoder.decoder.norm
    assert not any(k.startswith('decoder_norm') for k in keys)
    assert sum(k.startswith('bbox_embed.') for k in keys) == 6
    assert not any('decoder.bbox_embed' in k for k in keys)
    assert decoder.class_embed.weight.shape == (NUM_CLASSES, DIM)
    assert decoder.denoising.label_enc.weight.shape == (NUM_CLASSES, DIM)
    last = decoder.bbox_embed.layers[-1]
    assert (last.weight == 0).all() and (last.bias == 0).all()
    assert decoder.decoder.ref_point_head.layers[0].weight.shape == (DIM,
                                                                     2 * DIM)
    # no focal prior on the class bias (PyTorch default: |b| <= 1/sqrt(D))
    assert decoder.class_embed.bias.abs().max() <= DIM**-0.5
    semantic = _tiny_decoder(
        two_stage=False, initialize_box_type='no', semantic_ce=True)
    assert semantic.class_embed.weight.shape == (NUM_CLASSES + 1, DIM)
    assert semantic.query_feat.weight.shape == (NUM_QUERIES, DIM)
    assert semantic.query_embed.weight.shape == (NUM_QUERIES, 4)
    assert not hasattr(semantic, 'enc_output')


def test_eval_outputs_skip_unused_masks():
    decoder = _tiny_decoder(initialize_box_type='no').eval()
    feats, mask_features = _tiny_inputs()
    with torch.no_grad():
        outputs, dn_outputs = decoder(feats, mask_features)
    assert dn_outputs is None
    _check_set(outputs, NUM_QUERIES)
    assert len(outputs['aux_outputs']) == NUM_LAYERS
    for aux in outputs['aux_outputs']:
        _check_set(aux, NUM_QUERIES, with_masks=False)
    _check_set(outputs['interm_outputs'], NUM_QUERIES, with_masks=False)
    # aux 0 boxes are the selected proposals themselves
    torch.testing.assert_close(outputs['aux_outputs'][0]['pred_boxes'],
                               outputs['interm_outputs']['pred_boxes'])


@pytest.mark.parametrize('box_type', ['mask2box', 'bitmask'])
def test_mask_enhanced_anchors(box_type):
    decoder = _tiny_decoder(initialize_box_type=box_type).eval()
    _randomise(decoder)
    feats, mask_features = _tiny_inputs()
    with torch.no_grad():
        memory = decoder.build_memory(feats)
        selection = decoder.select_queries(memory['memory'],
                                           memory['spatial_shapes'],
                                           mask_features)
        outputs, _ = decoder(feats, mask_features)
    interm_masks = _dense(selection['interm_outputs']['pred_masks'])
    assert interm_masks.shape == (BS, NUM_QUERIES, *MASK_HW)
    expected = masks_to_refpoint_logits(interm_masks, box_type)
    torch.testing.assert_close(selection['refpoint_logits'], expected)
    torch.testing.assert_close(outputs['aux_outputs'][0]['pred_boxes'],
                               expected.sigmoid())
    # memory levels are reversed: coarsest first
    assert memory['spatial_shapes'].tolist() == [list(s) for s in SHAPES[::-1]]


def _loss(outputs: dict, dn_outputs: Optional[dict]) -> torch.Tensor:
    sets = [outputs, *outputs['aux_outputs']]
    if outputs['interm_outputs'] is not None:
        sets.append(outputs['interm_outputs'])
    if dn_outputs is not None:
        sets += [dn_outputs, *dn_outputs['aux_outputs']]
    total = 0.
    for pred in sets:
        for key in ('pred_logits', 'pred_boxes', 'pred_masks'):
            total = total + (_dense(pred[key])**2).mean()
    return total


@pytest.mark.parametrize('two_stage', [True, False])
def test_training_forward_with_dn(two_stage):
    kwargs = dict(two_stage=two_stage)
    if not two_stage:
        kwargs['initialize_box_type'] = 'no'
    decoder = _tiny_decoder(**kwargs).train()
    _randomise(decoder)
    feats, mask_features = _tiny_inputs()
    dn = _denoising_queries(decoder)
    pad = dn['dn_meta']['pad_size']
    outputs, dn_outputs = decoder(feats, mask_features, dn=dn)

    _check_set(outputs, NUM_QUERIES)
    _check_set(dn_outputs, pad)
    assert len(outputs['aux_outputs']) == NUM_LAYERS
    # the decoder states the supervised DN sets: the initial prediction
    # (aux 0) only with two-stage selection
    supervised = list(range(0 if two_stage else 1, NUM_LAYERS))
    assert dn_outputs['aux_indices'] == supervised
    assert len(dn_outputs['aux_outputs']) == len(supervised)
    for aux in outputs['aux_outputs']:
        _check_set(aux, NUM_QUERIES)
    for aux in dn_outputs['aux_outputs']:
        _check_set(aux, pad)
    assert 'interm_outputs' not in dn_outputs
    if two_stage:
        _check_set(outputs['interm_outputs'], NUM_QUERIES)
        # DN aux-0 boxes are the noised anchors themselves
        torch.testing.assert_close(dn_outputs['aux_outputs'][0]['pred_boxes'],
                                   dn['ref_logits'].sigmoid())
    else:
        assert outputs['interm_outputs'] is None

    # matching queries cannot see the DN slots: same matching outputs without
    # DN
    with torch.no_grad():
        plain, _ = decoder(feats, mask_features)
    for key in ('pred_logits', 'pred_boxes', 'pred_masks'):
        torch.testing.assert_close(
            _dense(outputs[key]), _dense(plain[key]), **TOL)
        torch.testing.assert_close(
            _dense(outputs['aux_outputs'][1][key]),
            _dense(plain['aux_outputs'][1][key]), **TOL)

    _loss(outputs, dn_outputs).backward()
    no_grad = [
        name for name, p in decoder.named_parameters()
        if p.grad is None or not p.grad.abs().sum() > 0
    ]
    assert no_grad == []


def test_training_without_dn_keeps_label_enc_in_graph():
    decoder = _tiny_decoder().train()
    _randomise(decoder)
    feats, mask_features = _tiny_inputs()
    outputs, dn_outputs = decoder(feats, mask_features)
    # denoising skipped for this batch: no DN predictions, the supervised
    # set names stay (the criterion gives them zero losses)
    assert dn_outputs == dict(aux_indices=list(range(NUM_LAYERS)))
    _check_set(outputs, NUM_QUERIES)
    _loss(outputs, None).backward()
    grad = decoder.denoising.label_enc.weight.grad
    assert grad is not None and torch.count_nonzero(grad) == 0
    assert decoder.class_embed.weight.grad.abs().sum() > 0


def test_only_the_decoder_layers_run_in_fp32_under_autocast():
    """As officially (``DeformableTransformerDecoderLayer.forward`` under
    ``autocast(enabled=False)``): the layers take and give fp32 tensors, the
    query selection and prediction heads run in the autocast dtype."""
    decoder = _tiny_decoder().eval()
    feats, mask_features = _tiny_inputs()
    layer_dtypes = []
    hooks = [
        layer.register_forward_hook(
            lambda m, args, kwargs, out: layer_dtypes.append(
                (args[0].dtype, kwargs['value'].dtype, out.dtype)),
            with_kwargs=True) for layer in decoder.decoder.layers
    ]
    with torch.no_grad():
        reference, _ = decoder(feats, mask_features)
        layer_dtypes.clear()
        with torch.autocast('cpu', dtype=torch.bfloat16):
            outputs, _ = decoder(feats, mask_features)
    for hook in hooks:
        hook.remove()
    assert layer_dtypes == [(torch.float32, ) * 3] * len(
        decoder.decoder.layers)
    assert outputs['pred_logits'].dtype == torch.bfloat16
    # bf16 logits may rank the encoder tokens differently in the top-k
    # query selection, so the outputs are compared by shape, not value
    for key in ('pred_logits', 'pred_boxes', 'pred_masks'):
        assert outputs[key].shape == reference[key].shape
        assert torch.isfinite(_dense(outputs[key]).float()).all()
