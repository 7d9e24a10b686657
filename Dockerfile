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
ARG BASE=python:3.11-slim-bookworm

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
COPY --from=build /opt/venv /opt/venv
COPY --from=build /entrypoint /entrypoint
ENTRYPOINT ["/entrypoint"]
