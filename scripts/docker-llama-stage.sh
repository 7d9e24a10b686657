#!/bin/sh
# The Dockerfile's `llama` stage: puts llama-server at /opt/llama/bin/llama-server. The stage
# copies this script and the build context's .docker-llama/ folder (when there is one) into
# /tmp/llama/, then runs it with the stage's build arguments in its environment:
#   LLAMA_SOURCE              "context": install /tmp/llama/llama-server (a binary that
#                             `make llama-server` built with the same flags; scripts/docker-build.sh
#                             checks it and puts it in .docker-llama/); "build": compile it here
#   LLAMA_CPP_PYTHON_VERSION  the llama-cpp-python sdist on PyPI whose vendor/llama.cpp is built
#   LLAMA_CPP_PYTHON_SHA256   that sdist's sha256 (change it with the version)
#   LLAMA_CMAKE_FLAGS         the Makefile's portable flags (tests/test_llama_build.py holds them
#                             equal): AVX2, no AVX-512, not -march=native
#
# `docker-llama-stage.sh check BINARY` runs only the portability check (scripts/docker-build.sh
# and tests/test_llama_build.py use it): the image runs on whatever CPU GitHub's runners or a
# user's machine have, so a binary whose code names an AVX-512 register (zmm: what GGML_NATIVE or
# an AVX-512 flag gives on a machine that advertises AVX-512) is refused before it is shipped,
# rather than dying with SIGILL there (docs/design.md, "llama.cpp").
#
# Copied together with .docker-llama/, this script also keeps that COPY from matching nothing,
# which the legacy builder refuses; it changes only with the stage, so the stage's cached compile
# survives every other change.
set -eu

# Fails (exit 1, one line) when $1 holds AVX-512 instructions; needs objdump (binutils).
check_portable() {
    if ! command -v objdump >/dev/null 2>&1; then
        echo "objdump (binutils) is needed to check $1 for AVX-512 instructions" >&2
        return 2
    fi
    zmm="$(objdump -d --no-show-raw-insn "$1" | grep -c zmm || true)"
    if [ "$zmm" != 0 ]; then
        echo "$1 holds $zmm AVX-512 instructions: it would die with SIGILL on CPUs without" \
            "AVX-512; build it with the portable LLAMA_CMAKE_FLAGS (GGML_NATIVE=OFF)" >&2
        return 1
    fi
    echo "$1: no AVX-512 instruction"
}

if [ "${1:-}" = check ]; then
    if [ "$#" != 2 ] || [ ! -f "$2" ]; then
        echo "usage: $0 check BINARY (an existing file)" >&2
        exit 2
    fi
    check_portable "$2"
    exit 0
fi

work=/tmp/llama
mkdir -p /opt/llama/bin
case "${LLAMA_SOURCE:-}" in
context)
    if [ ! -x "$work/llama-server" ]; then
        echo "LLAMA_SOURCE=context needs .docker-llama/llama-server in the build context" >&2
        exit 2
    fi
    install -m 0755 "$work/llama-server" /opt/llama/bin/llama-server
    ;;
build)
    # Debian packages are not pinned: bookworm's point releases replace the versions a pin names.
    apt-get update
    apt-get install -y --no-install-recommends build-essential cmake ninja-build libssl-dev
    # The sdist only: pip prepares its metadata with scikit-build-core, taken as a wheel (with
    # `--no-binary :all:` pip would compile scikit-build-core's whole build chain from source).
    python3 -m venv /tmp/fetch
    /tmp/fetch/bin/python -m pip download --quiet --no-deps --no-binary llama-cpp-python \
        -d "$work" "llama-cpp-python==$LLAMA_CPP_PYTHON_VERSION"
    sdist="$work/llama_cpp_python-$LLAMA_CPP_PYTHON_VERSION.tar.gz"
    echo "$LLAMA_CPP_PYTHON_SHA256  $sdist" | sha256sum -c -
    tar -C "$work" -xzf "$sdist"
    src="$work/llama_cpp_python-$LLAMA_CPP_PYTHON_VERSION/vendor/llama.cpp"
    # shellcheck disable=SC2086  # the flags are a list of words
    cmake -S "$src" -B "$work/build" $LLAMA_CMAKE_FLAGS >/dev/null
    # The flags as CMake resolved them, in the build log.
    echo "llama stage: $(grep -E '^GGML_(NATIVE|AVX|FMA|F16C|BMI2|AMX)[A-Z0-9_]*:' \
        "$work/build/CMakeCache.txt" | tr '\n' ' ')"
    started=$(date +%s)
    cmake --build "$work/build" --target llama-server -j"$(nproc)"
    echo "llama stage: compiled in $(($(date +%s) - started)) s on $(nproc) cores"
    check_portable "$work/build/bin/llama-server"
    install -m 0755 "$work/build/bin/llama-server" /opt/llama/bin/llama-server
    # It runs here (build-essential brought its OpenMP runtime; the final stage installs libgomp1).
    /opt/llama/bin/llama-server --version
    ;;
*)
    echo "LLAMA_SOURCE must be build or context, not ${LLAMA_SOURCE:-nothing}" >&2
    exit 2
    ;;
esac
