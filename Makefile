# saa-workbook: `make demo` and `make test` set everything up on a fresh machine.
PY      ?= python3
VENV    := .venv
PYTHON  := $(VENV)/bin/python
SAA     := $(VENV)/bin/saa
STAMP   := $(VENV)/.installed
MODELS  ?= official
DATASET ?= synthetic
ROOT    ?= data/synthetic
CATEGORIES ?=
OUT     ?= results/report
# Headless Jupyter / matplotlib / caches: temp dirs unless the caller set them.
TMPHOME := $(shell mktemp -d 2>/dev/null || echo /tmp/saa-home)
export IPYTHONDIR ?= $(TMPHOME)/ipython
export MPLCONFIGDIR ?= $(TMPHOME)/mpl
export JUPYTER_RUNTIME_DIR ?= $(TMPHOME)/jupyter-runtime
export MPLBACKEND ?= Agg
export PYDEVD_DISABLE_FILE_VALIDATION := 1

.PHONY: setup demo test lab report bench figures book clean-venv

# A new .venv (PyTorch with its CUDA libraries) takes about 7.5 GB: say so before pip runs out of disk half-way.
SETUP_GB := 8
$(STAMP): requirements.txt pyproject.toml
	@test -x $(PYTHON) || $(PY) -c 'import shutil, sys; free = shutil.disk_usage(".").free / 2**30; sys.exit(0 if free >= $(SETUP_GB) else f"make setup: a new $(VENV) needs about $(SETUP_GB) GB of disk and {free:.1f} GB is free on the disk of $(CURDIR): free some space, then run make again")'
	@test -x $(PYTHON) || $(PY) -m venv $(VENV)
	$(PYTHON) -m pip install -q --upgrade pip
	$(PYTHON) -m pip install -q -r requirements.txt
	$(PYTHON) -m pip install -q --no-deps --no-build-isolation -e .
	$(PYTHON) -m ipykernel install --sys-prefix --name python3 >/dev/null
	@touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(SAA) demo --models $(MODELS) --out results/demo

# The book's test renders the notebooks as nbval executed them (SAA_EXECUTED, written by notebooks/conftest.py), so
# it runs after nbval and the series is executed once.
test: setup
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 XDG_CACHE_HOME=$(TMPHOME)/cache SAA_HOME=$(TMPHOME)/saa \
	$(PYTHON) -m pytest -q -rs --ignore=tests/test_book.py tests
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 XDG_CACHE_HOME=$(TMPHOME)/cache SAA_HOME=$(TMPHOME)/saa \
	SAA_EXECUTED=$(TMPHOME)/executed \
	$(PYTHON) -m pytest -q --nbval-lax --nbval-sanitize-with notebooks/sanitize.cfg -p no:cacheprovider notebooks
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 XDG_CACHE_HOME=$(TMPHOME)/cache SAA_HOME=$(TMPHOME)/saa \
	SAA_EXECUTED=$(TMPHOME)/executed $(PYTHON) -m pytest -q -rs -p no:cacheprovider tests/test_book.py

# JupyterLab on the series. LAB_ARGS passes flags (e.g. LAB_ARGS="--ip=0.0.0.0 --port=8899"); as root (containers)
# --allow-root is added. Jupyter prints the URL with its token when the server is up.
LAB_ARGS ?=
LAB_ROOT := $(if $(filter 0,$(shell id -u 2>/dev/null)),--allow-root)
lab: setup
	@echo "Starting JupyterLab on notebooks/ (open the http://127.0.0.1:... URL with its token printed below)"
	$(VENV)/bin/jupyter lab $(LAB_ROOT) $(LAB_ARGS) notebooks

# make report: the notebooks' models="auto" (the official models when their weights are in the weights folder, else
# the tiny ones, marked NOT meaningful) unless MODELS is given (make report MODELS=official).
REPORT_MODELS := $(if $(filter command line environment,$(origin MODELS)),$(MODELS),auto)
report: setup
	$(SAA) report --dataset $(DATASET) --root $(ROOT) $(if $(CATEGORIES),--categories $(CATEGORIES)) --models $(REPORT_MODELS) --out $(OUT)

# The book: the series executed with papermill (synthetic set; the real samples too where they are found), rendered
# as a static site by Sphinx + MyST-NB. BOOK_ARGS passes options, e.g. BOOK_ARGS="--models official --n-images 20".
BOOK_ARGS ?=
book: setup
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(PYTHON) -m saa_lib.workbook.book --out results/book $(BOOK_ARGS)

bench: setup
	$(SAA) bench --models tiny --out results/bench

# The README figures: every notebook run with out_dir = the project root (each writes only its README figures).
figures: setup
	@mkdir -p $(TMPHOME)/figures-run
	for nb in notebooks/0*.ipynb; do \
	  HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(VENV)/bin/papermill -k python3 --cwd notebooks --no-progress-bar \
	    "$$nb" "$(TMPHOME)/figures-run/$$(basename $$nb)" -p out_dir "$(CURDIR)" \
	    -p saliency_backbone tf_efficientnet_lite0 || exit 1; \
	done
