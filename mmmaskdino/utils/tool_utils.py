# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
"""Config handling shared by ``tools/train.py`` and ``tools/test.py``."""
import argparse
import logging
import os
import os.path as osp

import torch
from mmengine.config import Config, DictAction
from mmengine.hub import get_config
from mmengine.logging import print_log
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

from .cpu_allocator import add_retain_malloc_arg, retain_freed_memory


def add_common_args(parser: argparse.ArgumentParser) -> None:
    """Arguments every runner tool accepts."""
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--data-root',
        help='read the data from this folder instead of the config\'s '
        '`data_root`: every path under it (datasets, evaluator annotation '
        'files) is redirected, e.g. --data-root data/bundled/coco/')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings, e.g. "train_cfg.max_iters=100"')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    add_retain_malloc_arg(parser)
    # torch.distributed.launch passes --local-rank (or --local_rank).
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


def enable_amp(cfg: Config) -> None:
    """Switch ``cfg.optim_wrapper`` to automatic mixed precision in place.

    With CUDA: mmengine's ``AmpOptimWrapper`` (float16 unless the config sets
        ``dtype``, dynamic ``GradScaler``). Without CUDA:
        ``CPUAmpOptimWrapper`` (bfloat16
    autocast, no scaler), since mmengine's wrapper refuses to start there.
    A config that already asks for ``AmpOptimWrapper`` is switched to the
    CPU wrapper on a CPU-only machine (with bfloat16: float16 without a
    loss scaler would underflow).

    Raises:
        ValueError: If the config uses an optimizer wrapper other than
            ``OptimWrapper`` or an AMP wrapper.
    """
    wrapper = cfg.optim_wrapper
    optim_type = wrapper.get('type', 'OptimWrapper')
    amp_types = ('AmpOptimWrapper', 'CPUAmpOptimWrapper')
    if optim_type not in ('OptimWrapper', *amp_types):
        raise ValueError('--amp needs optim_wrapper.type OptimWrapper, got '
                         f'{optim_type}')
    if torch.cuda.is_available():
        wrapper.type = 'AmpOptimWrapper'
        wrapper.setdefault('loss_scale', 'dynamic')
    else:
        wrapper.type = 'CPUAmpOptimWrapper'
        wrapper.pop('loss_scale', None)
        wrapper.dtype = 'bfloat16'


def load_runner_config(args: argparse.Namespace) -> Config:
    """Load ``args.config`` and apply the common command-line options.

    The work dir defaults to ``./work_dirs/<config name>``. Without CUDA the
    distributed backend falls back from NCCL to gloo, so ``dist_train.sh``
    also runs several CPU processes (``--launcher pytorch``; the process
    group is then started here, see :func:`_init_cpu_process_group`).
    """
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    cfg = load_config(args.config)
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    if args.data_root is not None:
        redirect_data_root(cfg, args.data_root)
    add_weights_only_checkpoint_hook(cfg)
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])
    # mmengine's AmpOptimWrapper refuses to start without CUDA; the COCO
    # configs ask for it as the official recipe does
    if not torch.cuda.is_available() and use_fp32_optim_wrapper(cfg):
        print_log(
            'The config trains with CUDA mixed precision (AmpOptimWrapper), '
            'which needs a GPU: training in fp32 on this CPU-only machine '
            '(--amp: bfloat16 autocast)',
            logger='current',
            level=logging.WARNING)
    if not torch.cuda.is_available():
        if args.retain_malloc and retain_freed_memory():
            print_log(
                'CPU run: freed memory is kept for reuse (glibc mallopt, '
                'see mmmaskdino.utils.cpu_allocator)',
                logger='current')
        env_cfg = cfg.setdefault('env_cfg', {})
        env_cfg.setdefault('dist_cfg', {})['backend'] = 'gloo'
        if cfg.launcher == 'pytorch':
            _init_cpu_process_group(cfg)
    return cfg


def add_weights_only_checkpoint_hook(cfg: Config) -> None:
    """Add ``WeightsOnlyCheckpointHook`` to ``cfg.custom_hooks`` unless it is
    there, so that the checkpoints of any config (stock MMDetection ones
    too) load under torch >= 2.6's default ``weights_only=True``."""
    hooks = list(cfg.get('custom_hooks', None) or [])
    if not any(
            str(h.get('type', '')).endswith('WeightsOnlyCheckpointHook')
            for h in hooks):
        hooks.append(dict(type='mmdet.WeightsOnlyCheckpointHook'))
    cfg.custom_hooks = hooks


def use_fp32_optim_wrapper(cfg: Config) -> bool:
    """Turn a config's ``AmpOptimWrapper`` into a plain fp32 ``OptimWrapper``.

    Returns:
        bool: Whether the config asked for AMP (and was changed).
    """
    wrapper = cfg.get('optim_wrapper')
    if wrapper is None or wrapper.get('type') != 'AmpOptimWrapper':
        return False
    wrapper.type = 'OptimWrapper'
    for key in ('loss_scale', 'dtype', 'use_fsdp'):
        wrapper.pop(key, None)
    return True


def load_config(config: str) -> Config:
    """A config file, or a package's config as ``mmdet::path/to/cfg.py``
    (resolved in the installed package's ``.mim/configs``, as mim does)."""
    if '::' in config:
        return get_config(config)
    if not osp.isfile(config):
        raise FileNotFoundError(f'config file not found: {config}')
    return Config.fromfile(config)


def redirect_data_root(cfg: Config, data_root: str) -> None:
    """Rewrite every path under the config's ``data_root`` to ``data_root``.

    Dataset roots and the evaluators' ``ann_file`` / ``seg_prefix`` (which
    configs spell as ``data_root + '...'``, so they hold the old root
    already joined) all move; nothing else changes.

    Raises:
        ValueError: If the config has no top-level ``data_root``.
    """
    old = cfg.get('data_root')
    if not isinstance(old, str) or not old:
        raise ValueError('--data-root needs a top-level `data_root` in the '
                         f'config {cfg.filename}')
    old = old.rstrip('/') + '/'
    new = data_root.rstrip('/') + '/'

    def rewrite(node):
        if isinstance(node, str):
            if node.startswith(old) or node == old.rstrip('/'):
                return new + node[len(old):]
            return node
        if isinstance(node, dict):
            for key in list(node):
                node[key] = rewrite(node[key])
            return node
        if isinstance(node, (list, tuple)):
            return type(node)(rewrite(v) for v in node)
        return node

    for key in list(cfg.keys()):
        cfg[key] = rewrite(cfg[key])


def _init_cpu_process_group(cfg: Config) -> None:
    """Start a gloo process group for a CPU-only ``torchrun`` launch.

    mmengine 0.10's ``init_dist('pytorch')`` calls ``torch.cuda.set_device``
    and its default DDP wrapper passes ``device_ids=[LOCAL_RANK]``; both fail
    without CUDA. The group is started here from the ``torchrun`` environment
    (the Runner then skips its own initialisation) and DDP gets
    ``device_ids=None``, as it requires for CPU modules.
    """
    if not torch.distributed.is_initialized():
        torch.distributed.init_process_group(backend='gloo')
    wrapper = cfg.get('model_wrapper_cfg') or dict(
        type='MMDistributedDataParallel',
        find_unused_parameters=cfg.get('find_unused_parameters', False))
    if wrapper.get(
            'type',
            'MMDistributedDataParallel') in ('MMDistributedDataParallel',
                                             'DistributedDataParallel'):
        wrapper['device_ids'] = None
    cfg.model_wrapper_cfg = wrapper


def build_runner(cfg: Config) -> Runner:
    """The Runner of ``cfg``: mmengine's default, or ``cfg.runner_type``."""
    if 'runner_type' not in cfg:
        return Runner.from_cfg(cfg)
    return RUNNERS.build(cfg)
