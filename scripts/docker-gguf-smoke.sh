#!/usr/bin/env bash
# Proves that an image's llama-server scores GGUFs on this machine's CPU, end to end and offline:
# the image itself builds a tiny random Qwen3 reranker (this checkout's testkit/, mounted for the
# run only: the image ships none of it), converts it with `--gguf f16,q8_0`, and checks it, the
# `llama.cpp f16` and `llama.cpp q8_0` rows scored by the image's own llama-server through
# /v1/rerank. A llama-server built for another CPU dies here (SIGILL showed on q8_0 first: see
# docs/design.md, "llama.cpp"), so the release workflow runs this on the runner before it pushes
# an image whose llama stage compiled llama.cpp (LLAMA_SOURCE=build).
#
# Usage: scripts/docker-gguf-smoke.sh IMAGE        (about a minute; needs a running engine)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
image="${1:?usage: $0 IMAGE}"

log() { printf 'docker-gguf-smoke: %s\n' "$*" >&2; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# As the calling user, so the files it writes can be removed afterwards; HOME for the caches.
in_image() {
    docker run --rm --network=none --user "$(id -u):$(id -g)" -e HOME=/work -e PYTHONPATH=/smoke \
        -v "$root/testkit:/smoke/testkit:ro" -v "$work:/work" "$@"
}

started=$SECONDS
in_image --entrypoint python "$image" -c \
    "from testkit.tiny import build_model; build_model('qwen3', '/work/Qwen3-Reranker-tiny', tied=True)"
in_image "$image" convert /work/Qwen3-Reranker-tiny /work/seqcls --preset qwen3-reranker \
    --gguf f16,q8_0 --gguf-dir /work/gguf
set +e
in_image "$image" check /work/Qwen3-Reranker-tiny /work/seqcls --preset qwen3-reranker \
    --gguf-file /work/gguf/Qwen3-Reranker-tiny-f16.gguf \
    --gguf-file /work/gguf/Qwen3-Reranker-tiny-q8_0.gguf >"$work/check.log" 2>&1
status=$?
set -e
cat "$work/check.log"
if ((status != 0)); then
    log "the check exited $status"
    exit 1
fi
for row in "llama.cpp f16" "llama.cpp q8_0"; do
    if ! grep -qE "^  $row +[-0-9]" "$work/check.log"; then
        log "the check's table has no '$row' row"
        exit 1
    fi
done
log "passed: the image's llama-server scored f16 and q8_0 in $((SECONDS - started)) s"
