# The two commands of the README: `make book` and `make test`.
# Both create the virtual environment .venv (Python 3.10+) and install what is missing.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# PyTorch and torchvision pinned to releases that install offline on the CI machines
# (torchvision is needed by learn2learn, the oracle of the tests); elsewhere any recent
# pair works, e.g. `make TORCH="torch torchvision" book`.
TORCH ?= torch==2.14.1 torchvision==0.29.1
STAMP := $(VENV)/.installed
SHELL := /bin/bash

# Notebooks run from chapters/, so a relative data folder is made absolute here.
ifneq ($(strip $(METABOOK_DATA)),)
export METABOOK_DATA := $(abspath $(METABOOK_DATA))
endif

.PHONY: book test lint typecheck pytest book-check notebooks notebook clean

$(STAMP): pyproject.toml Makefile scripts/install_learn2learn.sh
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet $(TORCH)
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	scripts/install_learn2learn.sh $(BIN)/python
	touch $(STAMP)

## book: render the book into _build/html from the outputs committed with the chapters
## (no chapter is executed: `make notebooks` does that)
book: $(STAMP)
	$(BIN)/jupyter-book build . --builder html -W -n --keep-going
	@echo "The book is at _build/html/index.html"

## test: ruff, mypy on the package, the book build (without execution), then pytest:
## package tests, notebook pairing and every chapter executed by nbval under quick settings
test: lint typecheck book-check pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

# `jupyter-book build` cannot switch execution off from the command line, so the check
# renders through sphinx-build with the configuration Jupyter Book generates (conf.py).
book-check: $(STAMP)
	rm -rf _build/check
	$(BIN)/jupyter-book config sphinx . > /dev/null
	PYTHONPATH=book/_ext $(BIN)/sphinx-build -b html -W -n --keep-going -q -c . \
		-D nb_execution_mode=off \
		. _build/check/html; status=$$?; rm -f conf.py; exit $$status

pytest: $(STAMP)
	METABOOK_QUICK=1 METABOOK_PROGRESS=0 $(BIN)/python -m pytest --nbval-lax -p no:cacheprovider \
		tests chapters

## notebooks: after editing chapters' .md files, update their .ipynb twins and execute every
## chapter (CPU settings: about 1.5 hours on two cores; the full settings on a GPU). The .md is
## the source: --update keeps the notebook's metadata. Progress bars are off, so that no
## progress output is saved; the streams of a cell are merged into one output, and the
## chapter's running time with the CPU settings is written into its text.
notebooks: $(STAMP)
	for md in chapters/*.md; do $(MAKE) --no-print-directory notebook CHAPTER=$$md || exit 1; done

## notebook CHAPTER=chapters/NN_name.md: the same for one chapter
notebook: $(STAMP)
	test -n "$(CHAPTER)" || { echo "make notebook CHAPTER=chapters/NN_name.md"; exit 2; }
	$(BIN)/jupytext --update --to ipynb "$(CHAPTER)"
	METABOOK_PROGRESS=0 $(BIN)/jupyter-execute --inplace --timeout=3600 "$(CHAPTER:.md=.ipynb)"
	$(BIN)/python scripts/merge_streams.py "$(CHAPTER:.md=.ipynb)"
	$(BIN)/python scripts/running_time.py "$(CHAPTER)"
	$(BIN)/jupytext --update --to ipynb "$(CHAPTER)"

clean:
	rm -rf _build .pytest_cache
