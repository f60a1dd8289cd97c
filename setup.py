# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
"""Packaging for mmmaskdino, following OpenMMLab's mim conventions.

``add_mim_extension`` copies (wheel/sdist) or symlinks (develop) ``configs/``,
``tools/``, ``demo/`` and ``model-index.yml`` into ``mmmaskdino/.mim`` so that
``mim search/download/train/test`` find them in an installed package.
"""
import os
import os.path as osp
import platform
import shutil
import subprocess
import sys
import warnings
from setuptools import find_packages, setup

MIM_ENTRIES = ['tools', 'configs', 'demo', 'model-index.yml']
MMCV_HELP = (
    'mmmaskdino needs mmcv>=2.0.0rc4,<2.2.0 with its compiled ops (mmcv-lite '
    'is not enough), installed before mmmaskdino:\n'
    '  pip install -U openmim && mim install "mmcv==2.1.0"   # prebuilt for '
    'torch 2.1 + CUDA 11.8/12.1\n'
    '  MMCV_WITH_OPS=1 pip install --no-build-isolation mmcv==2.1.0   # '
    'builds it for any other torch\n'
    'See README.md, "GPU install". (Set MMMASKDINO_SKIP_MMCV_CHECK=1 to build '
    'a wheel without mmcv.)')


def readme() -> str:
    with open('README.md', encoding='utf-8') as f:
        return f.read()


def get_version() -> str:
    namespace: dict = {}
    with open(osp.join('mmmaskdino', 'version.py'), encoding='utf-8') as f:
        exec(compile(f.read(), 'version.py', 'exec'), namespace)
    return namespace['__version__']


def parse_requirements(fname: str) -> list:
    """Read a requirements file, skipping comments and blank lines."""
    with open(fname, encoding='utf-8') as f:
        lines = (line.split('#')[0].strip() for line in f)
        return [line for line in lines if line and not line.startswith('-')]


def check_mmcv() -> None:
    """Stop an install into an environment without mmcv, with instructions.

    pip builds the package in an isolated environment, so the check runs
    the target interpreter without pip's isolation variables.
    """
    if os.environ.get('MMMASKDINO_SKIP_MMCV_CHECK') == '1' or not any(
            cmd in sys.argv for cmd in ('bdist_wheel', 'install', 'develop',
                                        'editable_wheel')):
        return
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ('PYTHONPATH', 'PYTHONNOUSERSITE', 'PYTHONHOME')
    }
    probe = subprocess.run([sys.executable, '-c', 'import mmcv.ops'],
                           env=env,
                           capture_output=True)
    if probe.returncode != 0:
        sys.exit(MMCV_HELP)


def add_mim_extension() -> None:
    """Populate ``mmmaskdino/.mim`` for mim (symlinks in develop mode)."""
    if 'develop' in sys.argv or 'editable_wheel' in sys.argv:
        mode = 'copy' if platform.system() == 'Windows' else 'symlink'
    elif any(cmd in sys.argv for cmd in ('sdist', 'bdist_wheel', 'install')):
        mode = 'copy'
    else:
        return

    repo_path = osp.dirname(osp.abspath(__file__))
    mim_path = osp.join(repo_path, 'mmmaskdino', '.mim')
    os.makedirs(mim_path, exist_ok=True)
    for entry in MIM_ENTRIES:
        src = osp.join(repo_path, entry)
        dst = osp.join(mim_path, entry)
        if osp.lexists(dst):
            if osp.isfile(dst) or osp.islink(dst):
                os.remove(dst)
            else:
                shutil.rmtree(dst)
        if mode == 'symlink':
            try:
                os.symlink(osp.relpath(src, osp.dirname(dst)), dst)
                continue
            except OSError:
                warnings.warn(f'Failed to symlink {src}; copying instead.')
        if osp.isfile(src):
            shutil.copyfile(src, dst)
        elif osp.isdir(src):
            shutil.copytree(
                src, dst, ignore=shutil.ignore_patterns('__pycache__'))


if __name__ == '__main__':
    check_mmcv()
    add_mim_extension()
    setup(
        name='mmmaskdino',
        version=get_version(),
        description='Mask DINO for MMDetection 3.x: detection, instance, '
        'panoptic and semantic segmentation in one model',
        long_description=readme(),
        long_description_content_type='text/markdown',
        keywords='computer vision, object detection, segmentation, mask dino',
        packages=find_packages(
            exclude=('configs', 'tools', 'demo', 'tests', 'tests.*')),
        include_package_data=True,
        python_requires='>=3.8',
        license='Apache-2.0',
        classifiers=[
            'Operating System :: OS Independent',
            'Programming Language :: Python :: 3',
        ],
        install_requires=parse_requirements('requirements/runtime.txt'),
        extras_require={
            'tests':
            parse_requirements('requirements/tests.txt'),
            'mim':
            parse_requirements('requirements/mminstall.txt'),
            'onnx': ['onnx>=1.14', 'onnxruntime>=1.16'],
            'all':
            parse_requirements('requirements/runtime.txt') +
            parse_requirements('requirements/tests.txt'),
        },
        zip_safe=False)
