# The project's runner. Quick start (README): `make main` runs the main job, `make test` runs every test.
# Both create .venv and install what they need first (idempotent: a stamp file records the install).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.mac-installed
# CPU wheel of torch that lies on local disk here; GPU users: `make setup TORCH_PIN=` keeps whatever torch you have.
TORCH_PIN ?= torch==2.13.0
export MUJOCO_GL ?= egl

.PHONY: setup main test docs docs-check readme pair export clean-nbs check help

help:
	@echo "make main   - the main job (see README)"
	@echo "make test   - every test: notebooks (nbdev_test) + pytest"
	@echo "make docs   - render the notebooks to docs/ (nbdev_docs when quarto exists, else static HTML)"
	@echo "make docs-check - the static docs in headless Chromium (installed with apt-get when missing): math typeset offline"
	@echo "make export - nbdev_export + nbdev_clean + jupytext pairs + README (run after editing notebooks)"

setup: $(STAMP)

$(STAMP): pyproject.toml setup.py settings.ini
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 10), f"mac needs Python >= 3.10, found {sys.version.split()[0]}: set PYTHON=/path/to/python3.10+"'
	@echo "==> creating $(VENV) and installing mac[dev] (first run only; a few minutes)"
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(if $(TORCH_PIN),$(BIN)/python -m pip install -q '$(TORCH_PIN)')
	$(BIN)/python -m pip install -q -e '.[dev]'
	$(BIN)/python -m pip check
	@touch $(STAMP)

main: setup
	@echo "==> main job: cube-single dataset (generated if missing) -> train MAC (cpu preset, 20k steps, task 2) -> evaluate -> results/quickstart/"
	$(BIN)/mac_quickstart --out results/quickstart --seed 0   # MAIN_STEPS = 20,000 (chapter 10a)

# pytest-xdist: TEST_WORKERS processes share the tests out (tests that must stay together carry an xdist_group mark);
# tests/conftest.py gives each worker cores / TEST_WORKERS threads. `make test TEST_WORKERS=1` runs them in one process.
TEST_WORKERS ?= 2
test: setup
	@echo "==> every test: each notebook through nbdev_test, then tests/ (pytest, $(TEST_WORKERS) workers)"
	$(BIN)/python -m pytest tests -v -n $(TEST_WORKERS) --dist loadgroup --durations=15

docs: setup
	$(BIN)/python tools/render_docs.py

# tests/test_docs.py opens a rendered chapter in headless Chromium; it skips where Chromium is missing, so this target
# (run by CI) installs Chromium from Debian first (root, or sudo) and makes a missing browser fail instead of skip.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
docs-check: setup
	@command -v chromium >/dev/null || { echo "==> installing Chromium from Debian's packages (headless browser for tests/test_docs.py)"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  $(SUDO) apt-get install -y -q --no-install-recommends chromium \
	  || { $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q --no-install-recommends chromium; }; }
	MAC_DOCS_CHECK=1 $(BIN)/python -m pytest tests/test_docs.py -v

readme: setup
	@echo "==> the contents page re-executed (its results table reads results/), then README.md from it"
	cd nbs && $(abspath $(BIN))/jupyter nbconvert --to notebook --execute --inplace index.ipynb
	$(BIN)/nbdev_clean --fname nbs/index.ipynb
	$(BIN)/python tools/pair.py --write
	$(BIN)/python tools/make_readme.py

pair: setup
	$(BIN)/python tools/pair.py --write

export: setup
	$(BIN)/nbdev_export
	$(BIN)/nbdev_clean
	$(BIN)/python tools/pair.py --write
	$(BIN)/python tools/make_readme.py
