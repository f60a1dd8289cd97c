# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
"""A training run killed with SIGKILL mid-epoch and restarted with
``--resume`` logs, from the resume point on, the losses of an uninterrupted
run with the same seed to within 1e-6.

The reliability config trains deterministically (``randomness=dict(seed=0,
deterministic=True)``, no workers) with ``IterBasedTrainLoop`` and
``DefaultSampler``: on resume the loop replays the data loading of the
finished iterations, which restores the sampler position and the numpy state
of the augmentations; ``RNGStateHook`` (in the config) checkpoints the
model's torch random stream (denoising noise, point sampling).
"""
import signal
import subprocess
import time

from tests.conftest import REPO_ROOT
from tests.test_reliability.utils import (loss_terms, run_dirs, run_tool,
                                          tool_env, train_cmd, train_records)

MAX_ITERS = 12
CKPT_INTERVAL = 3
ITERS_PER_EPOCH = 4  # 8 bundled train images, batch 2
OPTIONS = [
    f'train_cfg.max_iters={MAX_ITERS}',
    f'default_hooks.checkpoint.interval={CKPT_INTERVAL}'
]


def test_sigkill_then_resume_matches_uninterrupted_run(shapes_root, tmp_path):
    reference = tmp_path / 'reference'
    run_tool(train_cmd(reference, shapes_root, cfg_options=OPTIONS))
    expected = train_records(run_dirs(reference)[0])
    assert sorted(expected) == list(range(1, MAX_ITERS + 1))

    work_dir = tmp_path / 'killed'
    proc = subprocess.Popen(
        train_cmd(work_dir, shapes_root, cfg_options=OPTIONS),
        cwd=REPO_ROOT,
        env=tool_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 240
        while not (work_dir / 'last_checkpoint').is_file():
            assert proc.poll() is None, 'training ended before a checkpoint'
            assert time.monotonic() < deadline, 'no checkpoint written'
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert not (work_dir / f'iter_{MAX_ITERS}.pth').exists()

    resumed_from = int(
        (work_dir / 'last_checkpoint').read_text().strip().rsplit(
            'iter_', 1)[1].split('.')[0])
    assert resumed_from % CKPT_INTERVAL == 0 and resumed_from < MAX_ITERS
    assert resumed_from % ITERS_PER_EPOCH != 0  # killed mid-epoch

    run_tool(train_cmd(work_dir, shapes_root, '--resume', cfg_options=OPTIONS))
    resumed = train_records(run_dirs(work_dir)[-1])
    assert sorted(resumed) == list(range(resumed_from + 1, MAX_ITERS + 1))
    for it, record in resumed.items():
        want = loss_terms(expected[it])
        got = loss_terms(record)
        assert got.keys() == want.keys() and len(got) > 30
        worst = max(abs(got[k] - want[k]) for k in want)
        assert worst <= 1e-6, (it, worst)
