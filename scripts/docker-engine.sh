#!/usr/bin/env bash
# Start or stop a private Docker engine for building and testing the image on a machine without
# a running daemon (CI, developer sandboxes). It leaves the host network alone: no bridge, no
# iptables rules, no IP forwarding; containers use --network=host.
#
# Usage: scripts/docker-engine.sh start|stop|status
#
# Environment:
#   RERANKER_SEQCLS_CACHE   state directory, outside the git tree (default /var/cache/reranker-seqcls)
#   DOCKER_STORAGE_DRIVER   storage driver for dockerd (default overlay2; vfs works but is slow)
#
# `start` reuses a daemon that already answers and then never stops it: `stop` only ends the
# daemon this script started (by the PID it recorded).
set -euo pipefail

CACHE_DIR="${RERANKER_SEQCLS_CACHE:-/var/cache/reranker-seqcls}"
DATA_ROOT="$CACHE_DIR/docker"
EXEC_ROOT="$CACHE_DIR/docker-exec"
PIDFILE="$CACHE_DIR/dockerd.pid"
LOGFILE="$CACHE_DIR/dockerd.log"
STORAGE_DRIVER="${DOCKER_STORAGE_DRIVER:-overlay2}"

log() { printf 'docker-engine: %s\n' "$*" >&2; }

install_engine() {
    if command -v dockerd >/dev/null 2>&1 && command -v docker >/dev/null 2>&1; then
        return 0
    fi
    log "installing docker.io"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq docker.io >/dev/null
}

engine_ready() { docker info >/dev/null 2>&1; }

our_pid() {
    # Prints the PID of the dockerd this script started, if it is still running.
    [[ -f "$PIDFILE" ]] || return 1
    local pid
    pid="$(cat "$PIDFILE")"
    [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null || return 1
    printf '%s\n' "$pid"
}

start() {
    install_engine
    if engine_ready; then
        log "a Docker engine already answers; using it"
        return 0
    fi
    mkdir -p "$DATA_ROOT" "$EXEC_ROOT"
    log "starting dockerd (data-root $DATA_ROOT, storage driver $STORAGE_DRIVER)"
    # The PID file is written by dockerd itself; a stale one from a killed run would stop it.
    if ! our_pid >/dev/null; then rm -f "$PIDFILE"; fi
    nohup dockerd \
        --storage-driver="$STORAGE_DRIVER" \
        --bridge=none --iptables=false --ip6tables=false --ip-forward=false --ip-masq=false \
        --data-root="$DATA_ROOT" --exec-root="$EXEC_ROOT" --pidfile="$PIDFILE" \
        >"$LOGFILE" 2>&1 </dev/null &
    local launcher=$!
    local i
    for ((i = 0; i < 120; i++)); do
        if engine_ready; then
            log "ready (pid $(cat "$PIDFILE" 2>/dev/null || echo "$launcher"))"
            return 0
        fi
        if ! kill -0 "$launcher" 2>/dev/null; then
            log "dockerd exited; last lines of $LOGFILE:"
            tail -n 20 "$LOGFILE" >&2 || true
            return 1
        fi
        sleep 0.5
    done
    log "dockerd did not become ready in 60 s; last lines of $LOGFILE:"
    tail -n 20 "$LOGFILE" >&2 || true
    return 1
}

stop() {
    local pid
    if ! pid="$(our_pid)"; then
        log "no dockerd started by this script is running"
        rm -f "$PIDFILE"
        return 0
    fi
    log "stopping dockerd (pid $pid)"
    kill -TERM "$pid"
    local i
    for ((i = 0; i < 120; i++)); do
        if ! kill -0 "$pid" 2>/dev/null; then
            rm -f "$PIDFILE"
            log "stopped"
            return 0
        fi
        sleep 0.5
    done
    log "dockerd (pid $pid) still running after 60 s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    rm -f "$PIDFILE"
}

status() {
    local pid
    if pid="$(our_pid)"; then
        log "running (pid $pid, started by this script)"
    elif engine_ready; then
        log "a Docker engine answers (not started by this script)"
    else
        log "not running"
        return 1
    fi
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) status ;;
    *)
        printf 'usage: %s start|stop|status\n' "$0" >&2
        exit 2
        ;;
esac
