# The two commands: `make book` (build the Jupyter Book) and `make test` (run the tests).
# Both set up a virtual environment in .venv on first use.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# CPU build of torch where there is no GPU (a plain `torch` pulls gigabytes of CUDA packages).
TORCH_CPU       ?= torch==2.13.0+cpu
TORCH_CPU_INDEX ?= https://download.pytorch.org/whl/cpu

.PHONY: test book bench clean-book help

help:
	@echo "make test   set up .venv and run the tests"
	@echo "make book   set up .venv, execute every notebook with papermill and build _build/html"
	@echo "make bench  run the benchmark scripts (KLOM, training)"

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	@if nvidia-smi >/dev/null 2>&1; then \
	  echo "GPU found: installing torch with CUDA"; $(PY) -m pip install "torch>=2.0"; \
	else \
	  echo "no GPU: installing the CPU build of torch"; \
	  $(PY) -m pip install "$(TORCH_CPU)" || $(PY) -m pip install torch --index-url "$(TORCH_CPU_INDEX)"; \
	fi
	$(PY) -m pip install -e ".[test,book]"
	touch $@

test: $(STAMP)
	$(PY) -m pytest -q

book: $(STAMP)
	$(PY) scripts/build_book.py

bench: $(STAMP)
	$(PY) scripts/bench_klom.py
	$(PY) scripts/bench_train.py

clean-book:
	rm -rf _build
