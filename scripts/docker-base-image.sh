#!/usr/bin/env bash
# Make a Debian bookworm base image from Debian packages (debootstrap) and import it into the
# local Docker engine, for machines that reach Debian's and PyPI's package mirrors but no image
# registry. Everyone else uses the Dockerfile's default public base image instead.
#
# Usage: scripts/docker-base-image.sh [IMAGE]      (default local/debian:bookworm)
#
# Environment:
#   RERANKER_SEQCLS_CACHE   state directory, outside the git tree (default /var/cache/reranker-seqcls)
#   DEBIAN_MIRROR           mirror for debootstrap (default: the first one in apt's sources)
#   FORCE=1                 rebuild the rootfs and re-import the image even if they exist
set -euo pipefail

IMAGE="${1:-local/debian:bookworm}"
CACHE_DIR="${RERANKER_SEQCLS_CACHE:-/var/cache/reranker-seqcls}"
ROOTFS="$CACHE_DIR/rootfs-bookworm"
STAMP="$CACHE_DIR/rootfs-bookworm.complete"
# python3-venv brings ensurepip (the Dockerfile makes a venv); ca-certificates for pip over TLS.
PACKAGES="python3,python3-venv,ca-certificates"

log() { printf 'docker-base-image: %s\n' "$*" >&2; }

if [[ "${FORCE:-0}" != 1 ]] && docker image inspect "$IMAGE" >/dev/null 2>&1; then
    log "$IMAGE already exists"
    exit 0
fi

if ! command -v debootstrap >/dev/null 2>&1; then
    log "installing debootstrap"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq debootstrap >/dev/null
fi

mirror="${DEBIAN_MIRROR:-}"
if [[ -z "$mirror" ]]; then
    mirror="$(grep -hoE '^URIs:[[:space:]]*[^[:space:]]+/debian/?$' /etc/apt/sources.list.d/*.sources \
        2>/dev/null | head -n 1 | awk '{print $2}' || true)"
fi
if [[ -z "$mirror" ]]; then
    mirror="$(grep -hoE '^deb[[:space:]]+[^[:space:]]+/debian/?[[:space:]]' /etc/apt/sources.list \
        2>/dev/null | head -n 1 | awk '{print $2}' || true)"
fi
mirror="${mirror:-http://deb.debian.org/debian}"

if [[ "${FORCE:-0}" == 1 || ! -f "$STAMP" ]]; then
    log "debootstrap bookworm into $ROOTFS from $mirror"
    rm -rf "$ROOTFS" "$STAMP"
    mkdir -p "$CACHE_DIR"
    debootstrap --variant=minbase --include="$PACKAGES" bookworm "$ROOTFS" "$mirror" \
        >"$CACHE_DIR/debootstrap.log" 2>&1 || {
        log "debootstrap failed; last lines of $CACHE_DIR/debootstrap.log:"
        tail -n 20 "$CACHE_DIR/debootstrap.log" >&2
        exit 1
    }
    # Trust the same extra certificate authorities as the host (a package proxy may use its own).
    shopt -s nullglob
    extra_cas=(/usr/local/share/ca-certificates/*.crt)
    shopt -u nullglob
    if ((${#extra_cas[@]})); then
        mkdir -p "$ROOTFS/usr/local/share/ca-certificates"
        cp "${extra_cas[@]}" "$ROOTFS/usr/local/share/ca-certificates/"
        chroot "$ROOTFS" update-ca-certificates >/dev/null 2>&1
    fi
    # Smaller image: no apt lists or downloaded packages.
    rm -rf "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/var/cache/apt/archives/*.deb
    touch "$STAMP"
fi

log "importing $ROOTFS as $IMAGE"
tar -C "$ROOTFS" -c . | docker import \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["/bin/bash"]' \
    - "$IMAGE" >/dev/null
log "done: $(docker image inspect --format '{{.Size}}' "$IMAGE") bytes"
