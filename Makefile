# The README's Quick start is `make train` and `make test`; both set up .venv first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# CPU build that lies on this machine's disk; an unpinned torch would pull a multi-GB CUDA build.
TORCH_PIN ?= torch==2.13.0

.PHONY: setup train test bench clean

$(VENV)/.installed: setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q $(TORCH_PIN)
	$(PY) -m pip install -q -e .[test,fused]
	touch $@

setup: $(VENV)/.installed

# Trains the default config (YOLOv8-n on the built-in synthetic shapes; CUDA
# when present) and prints the final val mAP@.5; work dir work_dirs/yolov8_n_synthetic.
TRAIN_CONFIG ?= configs/yolov8/yolov8_n_synthetic.py
train: setup
	$(PY) tools/train.py $(TRAIN_CONFIG)

test: setup
	$(PY) -m pytest -q $(PYTEST_ARGS)

bench: setup
	$(PY) benchmarks/bench_basic_losses.py

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
