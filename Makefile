# cifarlab: every task a user or CI runs. `make help` lists them.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
DATA   ?= ../shared/data
EXPERIMENT ?= cpu_quick
STAMP  := $(VENV)/.installed

.PHONY: help install train train-gpu speedrun lr-find sweep seeds evaluate compare data-figures app browser test bench clean

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

train: install $(DATA)/cifar-10-batches-py/test_batch  ## the main job: real CIFAR-10, ~10 min on any 2-core CPU (a 450 s training budget; ARGS=... for overrides)
	$(PY) train.py experiment=cpu_quick data.root=$(DATA) $(ARGS)

train-gpu: install $(DATA)/cifar-10-batches-py/test_batch  ## Page's 24-epoch ResNet-9 on a GPU (experiment=page_24ep)
	$(PY) train.py experiment=page_24ep data.root=$(DATA) $(ARGS)

speedrun: install $(DATA)/cifar-10-batches-py/test_batch  ## airbench94 in Lightning on a GPU (experiment=speedrun)
	$(PY) train.py experiment=speedrun data.root=$(DATA) $(ARGS)

lr-find: install $(DATA)/cifar-10-batches-py/test_batch  ## LR range test of a preset (EXPERIMENT=cpu_quick): lr_finder.png/json in the run dir
	$(PY) train.py experiment=$(EXPERIMENT) lr_find=only data.root=$(DATA) $(ARGS)

sweep: install  ## example multirun: both models, fast_dev_run
	$(PY) train.py -m model=custom_resnet,resnet18 trainer.fast_dev_run=true data.root=$(DATA) $(ARGS)

seeds: install $(DATA)/cifar-10-batches-py/test_batch  ## seed=0,1,2 of a preset (EXPERIMENT=cpu_quick): summary.md with mean ± std in the sweep dir
	$(PY) train.py -m experiment=$(EXPERIMENT) seed=0,1,2 data.root=$(DATA) $(ARGS)

evaluate: install  ## test report of a run: predictions.npz, metrics, misclassified and GradCAM grids, curves (CKPT=run dir or .ckpt)
	$(PY) evaluate.py ckpt_path=$(CKPT) $(ARGS)

compare: install  ## is B better than A? two runs or seed groups (A=..., B=... run or sweep dirs): compare.md, compare.json
	$(PY) compare.py a=$(A) b=$(B) $(ARGS)

data-figures: install $(DATA)/cifar-10-batches-py/test_batch  ## samples.png and augmentations.png of the training data (no checkpoint)
	$(PY) data_figures.py data.root=$(DATA) $(ARGS)

app: install  ## start the Gradio app on a checkpoint (CKPT=... run dir or .ckpt; http://127.0.0.1:7860)
	$(PY) app.py ckpt_path=$(CKPT) $(ARGS)

browser:  ## Debian's chromium for the browser test (apt-get as root; without it that test skips); .ci/run calls it
	@command -v chromium >/dev/null || (apt-get update -q && apt-get install -y -q chromium) \
		|| echo "chromium not installed: the browser test will be skipped"

test: install  ## the test suite (real-data tests skip when $(DATA) is absent, the browser test without chromium); installs no system packages
	$(PY) -m pytest -q $(ARGS)

bench: install $(DATA)/cifar-10-batches-py/test_batch  ## images/s of each model: bare step, device augmentation, train.py on each augment_on path
	$(PY) benchmarks/throughput.py --data-root $(DATA) $(ARGS)

clean:  ## remove outputs and caches (not .venv)
	rm -rf outputs multirun .pytest_cache
