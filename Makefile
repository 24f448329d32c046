# cifarlab: every task a user or CI runs. `make help` lists them.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
DATA   ?= ../shared/data
STAMP  := $(VENV)/.installed

.PHONY: help install train train-gpu sweep evaluate data-figures app browser test bench clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

install: $(STAMP)  ## create .venv and install the pinned dependencies

$(DATA)/cifar-10-batches-py/test_batch:
	@if [ -x $(DATA)/prepare ]; then $(DATA)/prepare; fi

train: install $(DATA)/cifar-10-batches-py/test_batch  ## the main job: real CIFAR-10, ~10 min on 2 CPU cores (ARGS=... for overrides)
	$(PY) train.py experiment=cpu_quick data.root=$(DATA) $(ARGS)

train-gpu: install  ## Page's ResNet-9 recipe on a GPU: 24 epochs
	$(PY) train.py experiment=custom_resnet_24ep trainer=gpu data.root=$(DATA) $(ARGS)

sweep: install  ## example multirun: both models, fast_dev_run
	$(PY) train.py -m model=custom_resnet,resnet18 trainer.fast_dev_run=true data.root=$(DATA) $(ARGS)

evaluate: install  ## test report of a run: predictions.npz, metrics, misclassified and GradCAM grids, curves (CKPT=run dir or .ckpt)
	$(PY) evaluate.py ckpt_path=$(CKPT) $(ARGS)

data-figures: install $(DATA)/cifar-10-batches-py/test_batch  ## samples.png and augmentations.png of the training data (no checkpoint)
	$(PY) data_figures.py data.root=$(DATA) $(ARGS)

app: install  ## start the Gradio app on a checkpoint (CKPT=... run dir or .ckpt; http://127.0.0.1:7860)
	$(PY) app.py ckpt_path=$(CKPT) $(ARGS)

browser:  ## Debian's chromium for the browser test (apt-get as root; without it that test skips); .ci/run calls it
	@command -v chromium >/dev/null || (apt-get update -q && apt-get install -y -q chromium) \
		|| echo "chromium not installed: the browser test will be skipped"

test: install  ## the test suite (real-data tests skip when $(DATA) is absent, the browser test without chromium); installs no system packages
	$(PY) -m pytest -q $(ARGS)

bench: install  ## training images/s of each model: fp32 / bf16, NCHW / channels_last
	$(PY) benchmarks/throughput.py $(ARGS)

clean:  ## remove outputs and caches (not .venv)
	rm -rf outputs multirun .pytest_cache
