#!/usr/bin/env bash
# Build the project's image on a machine that reaches package registries but no image registry:
# a Debian base made by scripts/docker-base-image.sh, torch from the local CPU wheel that pip's
# find-links folder holds, the legacy builder with host networking. Needs a running engine
# (scripts/docker-engine.sh start).
#
# Usage: scripts/docker-build.sh [TAG [DOCKER-BUILD-OPTION...]]   (default reranker-seqcls:local)
#        e.g. scripts/docker-build.sh reranker-seqcls:local --no-cache
#
# Environment:
#   BASE_IMAGE     base image (default local/debian:bookworm, made here if missing)
#   TORCH_VERSION  torch version of the wheel (default 2.13.0+cpu)
#   TORCH_WHEEL    path of the torch wheel (default: looked up in pip's find-links and /opt/wheels)
#   LLAMA_SERVER   a llama-server built with the Makefile's flags (default: `make llama-server`'s
#                  .cache/llama-build/bin/llama-server when it exists): the image takes it from the
#                  build context (LLAMA_SOURCE=context) instead of compiling llama.cpp again; none:
#                  the image's llama stage compiles it (12 to 30 minutes on two cores, by load;
#                  bench/IMAGE_RESULTS.md). A handed-in binary with AVX-512 instructions is
#                  refused (scripts/docker-llama-stage.sh check)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tag="${1:-reranker-seqcls:local}"
shift || true
base="${BASE_IMAGE:-local/debian:bookworm}"
torch_version="${TORCH_VERSION:-2.13.0+cpu}"
wheel_dir="$root/.docker-wheels"  # the Dockerfile's TORCH_SOURCE=context reads it
llama_dir="$root/.docker-llama"    # the Dockerfile's LLAMA_SOURCE=context reads it

log() { printf 'docker-build: %s\n' "$*" >&2; }

if ! docker info >/dev/null 2>&1; then
    log "no Docker engine answers; run scripts/docker-engine.sh start first"
    exit 1
fi

if [[ "$base" == local/debian:* ]]; then
    "$root/scripts/docker-base-image.sh" "$base"
fi

find_wheel() {
    local dirs=() dir line
    if [[ -n "${PIP_FIND_LINKS:-}" ]]; then
        read -r -a dirs <<<"$PIP_FIND_LINKS"
    fi
    while IFS= read -r line; do
        [[ -n "$line" ]] && dirs+=("$line")
    done < <(python3 -m pip config list 2>/dev/null |
        sed -n "s/^[^=]*find-links='\(.*\)'\$/\1/p" | tr ' ' '\n')
    dirs+=(/opt/wheels)
    for dir in "${dirs[@]}"; do
        dir="${dir#file://}"
        [[ -d "$dir" ]] || continue
        for line in "$dir"/torch-"$torch_version"-cp311-cp311-*linux*_x86_64.whl; do
            if [[ -f "$line" ]]; then
                printf '%s\n' "$line"
                return 0
            fi
        done
    done
    return 1
}

wheel="${TORCH_WHEEL:-}"
if [[ -z "$wheel" ]] && ! wheel="$(find_wheel)"; then
    log "no torch-$torch_version wheel for cp311 in pip's find-links or /opt/wheels; set TORCH_WHEEL"
    exit 1
fi
log "torch wheel: $wheel"

cleanup() { rm -rf "$wheel_dir" "$llama_dir"; }
trap cleanup EXIT
rm -rf "$wheel_dir" "$llama_dir"
mkdir -p "$wheel_dir"
# A hard link when the wheel is on the same file system, else a copy.
ln "$wheel" "$wheel_dir/" 2>/dev/null || cp "$wheel" "$wheel_dir/"

llama_server="${LLAMA_SERVER:-$root/.cache/llama-build/bin/llama-server}"
if [[ -x "$llama_server" ]]; then
    log "llama-server: $llama_server (LLAMA_SOURCE=context)"
    # The image runs on other CPUs: the same check as the stage's own build (no AVX-512).
    sh "$root/scripts/docker-llama-stage.sh" check "$llama_server" >/dev/null
    mkdir -p "$llama_dir"
    cp "$llama_server" "$llama_dir/llama-server"
    llama_source=context
else
    log "no llama-server at $llama_server: the image compiles llama.cpp (LLAMA_SOURCE=build)"
    llama_source=build
fi

previous="$(docker image inspect --format '{{.Id}}' "$tag" 2>/dev/null || true)"
started=$SECONDS
DOCKER_BUILDKIT=0 docker build \
    --network=host \
    --build-arg "BASE=$base" \
    --build-arg "TORCH_VERSION=$torch_version" \
    --build-arg "TORCH_SOURCE=context" \
    --build-arg "LLAMA_SOURCE=$llama_source" \
    --tag "$tag" \
    "$@" \
    "$root"
elapsed=$((SECONDS - started))
size="$(docker image inspect --format '{{.Size}}' "$tag")"
log "built $tag in ${elapsed}s; image size $((size / 1000000)) MB"
# The image this tag named before is now untagged: remove it (its copy of the venv is over a GB),
# keeping the layer cache of the build stage.
if [[ -n "$previous" && "$previous" != "$(docker image inspect --format '{{.Id}}' "$tag")" ]]; then
    docker image rm "$previous" >/dev/null 2>&1 || true
fi

# Smoke test: the entrypoint runs, the CLI answers, the heavy imports work without a network.
docker run --rm --network=none "$tag" --help >/dev/null
docker run --rm --network=none --entrypoint /opt/venv/bin/python "$tag" -c \
    'import reranker_seqcls, safetensors, sentence_transformers, tokenizers, torch, transformers'
docker run --rm --network=none --entrypoint llama-server "$tag" --version >/dev/null 2>&1
log "smoke test passed"
