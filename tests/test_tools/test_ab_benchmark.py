# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
"""``tools/analysis_tools/ab_benchmark.py``: interleaved A/B steps of two
checkouts in worker processes, on a tiny config."""
import json
import sys
from pathlib import Path

import torch

from tests.test_tools.e2e_utils import REPO, run_python

sys.path.insert(0, str(REPO / 'tools' / 'analysis_tools'))
from ab_benchmark import FixedFeatures, backbone_features  # noqa: E402


def test_backbone_features_have_the_backbone_shapes():
    from mmdet.models.backbones import ResNet
    backbone = ResNet(depth=18, out_indices=(0, 1, 2, 3))
    feats = backbone_features(backbone, 2, (100, 130))
    assert [tuple(f.shape)
            for f in feats] == [(2, 64, 32, 40), (2, 128, 16, 20),
                                (2, 256, 8, 10), (2, 512, 4, 5)]
    assert all((f >= 0).all() for f in feats)
    again = backbone_features(backbone, 2, (100, 130))
    assert all(torch.equal(a, b) for a, b in zip(feats, again))
    fixed = FixedFeatures(feats)
    assert fixed(torch.zeros(2, 3, 128, 160))[3] is feats[3]


def test_same_checkout_on_both_sides(tmp_path):
    """Both workers import the given trees, share the weights and the
    random stream: the same checkout gives identical check values."""
    out = tmp_path / 'ab.json'
    output = run_python('tools/analysis_tools/ab_benchmark.py',
                        '--baseline-root', str(REPO), '--config',
                        'maskdino_r18-tiny_1xb4-2.2k_shapes.py', '--img-size',
                        '96', '96', '--cases', 'instance', 'train', '--pairs',
                        '2', '--out', str(out))
    assert '| case | A median s |' in output
    result = json.loads(out.read_text())
    assert result['baseline'] == str(REPO)
    assert 'load_average' in result['machine']
    cases = {r['case']: r for r in result['results']}
    assert set(cases) == {'instance', 'train'}
    for r in cases.values():
        assert r['configs'] == dict(
            A='maskdino_r18-tiny_1xb4-2.2k_shapes.py',
            B='maskdino_r18-tiny_1xb4-2.2k_shapes.py')
        assert [len(r['seconds'][v]) for v in 'AB'] == [2, 2]
        ratios = [a / b for a, b in zip(r['seconds']['A'], r['seconds']['B'])]
        assert min(ratios) == r['time_ratio_range'][0] > 0
        assert r['checks']['A'] == r['checks']['B']
        assert r['process_peak_mib']['A'] > r['peak_mib']['A'] >= 0
        assert r['process_peak_mib']['B'] > r['peak_mib']['B'] >= 0
    assert cases['train']['checks']['A'] > 0  # a loss
    assert Path(out.with_suffix('.weights.pth')).is_file()
