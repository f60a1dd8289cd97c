# One-command set-up for CPU machines (Python 3.11). GPU users: see README "GPU install".
PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.mmmaskdino-installed
TORCH_VERSION ?= 2.13.0
MMCV_VERSION  ?= 2.1.0
PYTEST_ARGS   ?=
MAIN_CONFIG   ?= configs/maskdino/maskdino_r18-tiny_1xb4-2.2k_shapes.py
MAIN_WORK_DIR ?= work_dirs/main

.PHONY: install lint data test main clean-data

install: $(STAMP)

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(VENV)/bin/python requirements/runtime.txt requirements/tests.txt setup.py
	$(PIP) install --upgrade "pip>=24" "setuptools>=77.0.3,<81" wheel ninja
	$(PY) -c "import torch" 2>/dev/null || $(PIP) install torch==$(TORCH_VERSION)
	$(PIP) install "mmengine==0.10.7"
	# mmcv 2.1.0 has no wheel for this torch: build it with its compiled ops (pip caches the wheel).
	$(PY) -c "import mmcv.ops" 2>/dev/null || \
	  MMCV_WITH_OPS=1 MAX_JOBS=$${MAX_JOBS:-2} $(PIP) install --no-build-isolation "mmcv==$(MMCV_VERSION)"
	$(PIP) install "mmdet==3.3.0" "mmsegmentation==1.2.2" pycocotools scipy "numpy<2.5" -r requirements/tests.txt
	# openmim's dependency openxlab downgrades setuptools to 60, which cannot do PEP 660 editable installs.
	$(PIP) install "setuptools>=77.0.3,<81"
	# panopticapi is not on PyPI; panopticapi-lite ships the same module but pins numpy<2 needlessly.
	$(PIP) install --no-deps "panopticapi-lite==0.2.0"
	$(PIP) install --no-build-isolation --no-deps -e .
	# mim looks for <site-packages>/mmmaskdino, which PEP 660 editable installs do not create.
	$(PY) -c "import os, sysconfig; link = os.path.join(sysconfig.get_paths()['purelib'], 'mmmaskdino'); \
	  os.path.lexists(link) or os.symlink(os.path.abspath('mmmaskdino'), link)"
	$(PY) -c "import mmmaskdino, mmcv.ops, mmdet.models, mmseg, panopticapi"
	touch $(STAMP)

# flake8, isort, yapf, codespell, docstring coverage and whitespace checks
# (.pre-commit-config.yaml, settings in setup.cfg) on every file; they fix
# what they can and fail when they changed or found something.
lint: $(VENV)/bin/python
	$(PIP) install -q -r requirements/lint.txt
	$(PY) -m pre_commit run --all-files --show-diff-on-failure

data: install
	$(PY) tools/misc/make_bundled_dataset.py --out data/shapes

test: data
	$(PY) -m pytest tests $(PYTEST_ARGS)

# Train a small Mask DINO on the bundled data (CPU), evaluate it (bbox and segm
# AP) and draw its predictions on the val images into $(MAIN_WORK_DIR)/*/vis.
main: data
	$(PY) tools/train.py $(MAIN_CONFIG) --work-dir $(MAIN_WORK_DIR)
	$(PY) tools/test.py $(MAIN_CONFIG) $$(cat $(MAIN_WORK_DIR)/last_checkpoint) \
	  --work-dir $(MAIN_WORK_DIR) --show-dir vis

clean-data:
	rm -rf data/shapes
