# The image behind the GitHub Action (action.yml) and `docker run` one-shots:
#   docker run --rm -e HF_TOKEN IMAGE run --model SRC --target TGT
# CPU-only torch; everything else pinned by constraints.txt. No USER or WORKDIR: the Actions
# runner mounts the workspace as the working directory and needs root to write to it.
#
# Build arguments (the defaults are what the release workflow uses):
#   BASE             base image with Python 3.11 and `python3 -m venv`
#   TORCH_VERSION    torch build to install (a CPU build)
#   TORCH_SOURCE     "index": from TORCH_INDEX_URL; "context": the wheel that the build
#                    context's .docker-wheels/ folder holds, no index (offline builds; see
#                    scripts/docker-build.sh)
#   TORCH_INDEX_URL  index to take torch from (PyTorch's CPU-only index)
#   LLAMA_SOURCE     "build": llama-server compiled in a stage of its own from the llama.cpp tree
#                    of the llama-cpp-python sdist on PyPI (LLAMA_CPP_PYTHON_VERSION), with the
#                    Makefile's portable flags (LLAMA_CMAKE_FLAGS: AVX2, not -march=native, which
#                    dies with SIGILL on other CPUs); "context": the llama-server binary that the
#                    build context's .docker-llama/ folder holds (`make llama-server` built it with
#                    the same flags; scripts/docker-build.sh puts it there), so that a machine
#                    that already built it does not compile llama.cpp twice
ARG BASE=python:3.11-slim-bookworm

# llama-server, for `--gguf` (the llama.cpp rows of the check). Statically linked against
# llama.cpp and ggml; it needs libgomp1 (OpenMP) and libssl3 at run time.
FROM ${BASE} AS llama
ARG LLAMA_SOURCE=build
ARG LLAMA_CPP_PYTHON_VERSION=0.3.36
ARG LLAMA_CPP_PYTHON_SHA256=832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e
ARG LLAMA_CMAKE_FLAGS="-G Ninja -DCMAKE_BUILD_TYPE=Release -DLLAMA_BUILD_SERVER=ON -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON -DGGML_AVX512=OFF -DBUILD_SHARED_LIBS=OFF"
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore
# scripts/docker-llama-stage.sh installs or compiles llama-server (see there). The glob copies
# .docker-llama/'s contents when it exists and nothing otherwise.
COPY scripts/docker-llama-stage.sh .docker-llam[a] /tmp/llama/
RUN sh /tmp/llama/docker-llama-stage.sh

FROM ${BASE} AS build
ARG TORCH_VERSION=2.13.0+cpu
ARG TORCH_SOURCE=index
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore
# Dependencies first, in their own layer, so that changing the package's source rebuilds in
# seconds: torch without its dependencies from the CPU-only source, then every pinned version
# (they pin torch==X.Y.Z, which the CPU build X.Y.Z+cpu satisfies). The glob copies the local
# wheel folder's contents when it exists and nothing otherwise.
COPY constraints.txt .docker-wheel[s] /tmp/deps/
RUN set -eu; \
    python3 -m venv /opt/venv; \
    case "$TORCH_SOURCE" in \
        index) set -- --index-url "$TORCH_INDEX_URL" ;; \
        context) set -- --no-index --find-links /tmp/deps ;; \
        *) echo "TORCH_SOURCE must be index or context, not $TORCH_SOURCE" >&2; exit 2 ;; \
    esac; \
    /opt/venv/bin/python -m pip install --no-deps "$@" "torch==$TORCH_VERSION"; \
    /opt/venv/bin/python -m pip install --requirement /tmp/deps/constraints.txt
# The package itself (README and LICENSE when present); its dependencies are already there and
# pip checks them against the pins. pip is not needed at run time.
COPY pyproject.toml README.m[d] LICENS[E] entrypoint /src/
COPY src/ /src/src/
RUN set -eu; \
    /opt/venv/bin/python -m pip install --constraint /tmp/deps/constraints.txt "/src[check]"; \
    /opt/venv/bin/python -m pip uninstall --yes pip; \
    install -m 0755 /src/entrypoint /entrypoint

FROM ${BASE}
LABEL org.opencontainers.image.title="reranker-seqcls" \
      org.opencontainers.image.description="Convert causal-LM rerankers into *ForSequenceClassification checkpoints" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HF_HUB_DISABLE_TELEMETRY=1
# libgomp1: llama-server's OpenMP runtime (libssl3 comes with the base's Python); unpinned, as
# above.
# hadolint ignore=DL3008
RUN set -eu; \
    apt-get update; \
    apt-get install -y --no-install-recommends libgomp1; \
    apt-get clean; \
    rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin
COPY --from=build /opt/venv /opt/venv
COPY --from=build /entrypoint /entrypoint
COPY --from=llama /opt/llama/bin/llama-server /usr/local/bin/llama-server
ENTRYPOINT ["/entrypoint"]
