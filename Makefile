# `make book` and `make test` set up .venv (if missing) and then build or test. Torch is installed
# first, on its own: requirements.txt only asks for a range that an installed torch satisfies, so
# a machine without torch never pulls the multi-GB CUDA build by accident. For a GPU build, install
# torch into .venv yourself first (see README), or set TORCH_SPEC. The library `utils` is installed
# in editable mode (pyproject.toml), so it imports from anywhere in the venv.
VENV ?= .venv
PYTHON := $(VENV)/bin/python
TORCH_SPEC ?= torch==2.13.0
INSTALLED := $(VENV)/.installed

.PHONY: install execute book lint test exercises clean

$(INSTALLED): requirements.txt pyproject.toml
	test -x $(PYTHON) || python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --upgrade pip
	$(PYTHON) -c "import torch" 2>/dev/null || $(PYTHON) -m pip install --quiet "$(TORCH_SPEC)"
	$(PYTHON) -m pip install --quiet -r requirements.txt
	$(PYTHON) -m pip install --quiet --no-deps -e .
	touch $@

install: $(INSTALLED)

# Every chapter runs once, two kernels at a time, into the cache the book build then reads; a
# chapter whose assertion fails stops here with its traceback (this is the grading run).
execute: $(INSTALLED)
	$(PYTHON) -m utils.execute_book

book: $(INSTALLED) execute
	$(VENV)/bin/jupyter-book build . --warningiserror --nitpick --keep-going

lint: $(INSTALLED)
	$(PYTHON) -m ruff check .

test: lint book
	$(PYTHON) -m utils.exercises --check
	$(PYTHON) -m pytest

exercises: $(INSTALLED)
	$(PYTHON) -m utils.exercises

clean:
	rm -rf _build
