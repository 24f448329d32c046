# cifarlab: every task a user or CI runs. `make help` lists them.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
# the folder holding cifar-10-batches-py/: $CIFARLAB_DATA, else data/ in the checkout (CI: make test-full DATA=<folder>)
DATA   ?= $(or $(CIFARLAB_DATA),data)
EXPERIMENT ?= cpu_airbench
FORMAT ?= onnx
STAMP  := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev
export CIFARLAB_DATA := $(DATA)

.PHONY: help install install-dev train train-gpu speedrun lr-find sweep seeds evaluate compare predict export data-figures app browser test test-full lint results bench clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install -q -c constraints.txt -e '.[test]'
	touch $(STAMP)

$(DEV_STAMP): $(STAMP)
	$(PY) -m pip install -q -c constraints.txt -e '.[dev]'
	touch $(DEV_STAMP)

install: $(STAMP)  ## create .venv with what make train and make test need (pinned; versions of everything they pull in: constraints.txt)

install-dev: $(DEV_STAMP)  ## add the extras the full tests cover (onnx, mlflow, wandb), the browser test's driver and the linter

$(DATA)/cifar-10-batches-py/test_batch:
	@if [ -x $(DATA)/prepare ]; then $(DATA)/prepare; fi

train: install $(DATA)/cifar-10-batches-py/test_batch  ## the main job: real CIFAR-10, under 10 min on any 2-core CPU (EXPERIMENT=cpu_airbench; ARGS=... for overrides)
	$(PY) train.py experiment=$(EXPERIMENT) $(ARGS)

train-gpu: install $(DATA)/cifar-10-batches-py/test_batch  ## Page's 24-epoch ResNet-9 on a GPU (experiment=page_24ep)
	$(PY) train.py experiment=page_24ep $(ARGS)

speedrun: install $(DATA)/cifar-10-batches-py/test_batch  ## airbench94 in Lightning on a GPU (experiment=speedrun)
	$(PY) train.py experiment=speedrun $(ARGS)

lr-find: install $(DATA)/cifar-10-batches-py/test_batch  ## LR range test of a preset (EXPERIMENT=cpu_airbench): lr_finder.png/json in the run dir
	$(PY) train.py experiment=$(EXPERIMENT) lr_find=only $(ARGS)

sweep: install  ## example multirun: both models, fast_dev_run
	$(PY) train.py -m model=custom_resnet,resnet18 trainer.fast_dev_run=true $(ARGS)

seeds: install $(DATA)/cifar-10-batches-py/test_batch  ## seed=0,1,2 of a preset (EXPERIMENT=cpu_airbench): summary.md with mean ± std in the sweep dir
	$(PY) train.py -m experiment=$(EXPERIMENT) seed=0,1,2 $(ARGS)

evaluate: install  ## test report of a run into <run>/eval/ (predictions.npz, metrics, misclassified and GradCAM grids, curves), MODEL_CARD.md (CKPT=run dir or .ckpt)
	$(PY) evaluate.py ckpt_path=$(CKPT) $(ARGS)

predict: install  ## top-k classes of your own images: predictions.csv (CKPT=run dir or .ckpt, INPUTS=folder, glob or file)
	$(PY) predict.py ckpt_path=$(CKPT) inputs='$(INPUTS)' $(ARGS)

export: install  ## the model for serving, uint8 images in, logits out: model.onnx or model.pt + export.json (CKPT=..., FORMAT=onnx|torchscript)
	$(PY) export.py ckpt_path=$(CKPT) format=$(FORMAT) $(ARGS)

compare: install  ## is B better than A? two runs or seed groups (A=..., B=... run or sweep dirs): compare.md, compare.json
	$(PY) compare.py a=$(A) b=$(B) $(ARGS)

data-figures: install $(DATA)/cifar-10-batches-py/test_batch  ## samples.png and augmentations.png of the training data (no checkpoint)
	$(PY) data_figures.py $(ARGS)

app: install  ## start the Gradio app on a checkpoint (CKPT=... run dir or .ckpt; http://127.0.0.1:7860, or the next free port)
	$(PY) app.py ckpt_path=$(CKPT) $(ARGS)

browser:  ## Debian's chromium for the browser test (apt-get as root; without it that test skips); .ci/run calls it
	@command -v chromium >/dev/null || (apt-get update -q && apt-get install -y -q chromium) \
		|| echo "chromium not installed: the browser test will be skipped"

test: install  ## the fast tier for the edit loop: every test not marked slow (nothing trains for long or starts a process)
	$(PY) -m pytest -q -m "not slow" $(ARGS)

test-full: install-dev  ## every test, CI's: real-data tests skip when the DATA folder lacks CIFAR-10, the browser test without chromium
	$(PY) -m pytest -q $(ARGS)

lint: install-dev  ## ruff: pyflakes and pycodestyle errors (settings in pyproject.toml)
	$(VENV)/bin/ruff check .

results: install  ## rewrite the generated results tables (README, docs/results.md, src/cifarlab/training/frontier.csv) from docs/runs/
	$(PY) -m cifarlab.reports.results

bench: install $(DATA)/cifar-10-batches-py/test_batch  ## images/s of each model: bare step, device augmentation, train.py on each augment_on path
	$(PY) benchmarks/throughput.py --data-root $(DATA) $(ARGS)

clean:  ## remove caches (.pytest_cache, __pycache__, .ruff_cache); keeps outputs/, multirun/ and .venv
	rm -rf .pytest_cache .ruff_cache
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +
