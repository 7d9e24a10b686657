"""llama-server is built in two places, the Makefile (``make llama-server``: tests, CI) and the
Dockerfile's llama stage (``LLAMA_SOURCE=build``: the released image); a binary built by the
first goes into the image (``LLAMA_SOURCE=context``). Both must build the same llama.cpp with
the same portable flags."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _makefile_value(name: str) -> str:
    text = (ROOT / "Makefile").read_text("utf-8").replace("\\\n", " ")
    match = re.search(rf"^{name} := (.+)$", text, re.M)
    assert match, name
    return " ".join(match.group(1).split())


def _dockerfile_arg(name: str) -> str:
    text = (ROOT / "Dockerfile").read_text("utf-8")
    match = re.search(rf'^ARG {name}="?([^"\n]+)"?$', text, re.M)
    assert match, name
    return " ".join(match.group(1).split())


def test_dockerfile_builds_the_makefiles_llama_server() -> None:
    flags = _makefile_value("LLAMA_CMAKE_FLAGS")
    assert "-DGGML_NATIVE=OFF" in flags and "-DBUILD_SHARED_LIBS=OFF" in flags
    assert _dockerfile_arg("LLAMA_CMAKE_FLAGS") == flags
    assert _dockerfile_arg("LLAMA_CPP_PYTHON_VERSION") == _makefile_value(
        "LLAMA_CPP_PYTHON_VERSION"
    )
    dockerfile = (ROOT / "Dockerfile").read_text("utf-8")
    assert "libgomp1" in dockerfile  # the binary's OpenMP runtime
    assert "COPY --from=llama /opt/llama/bin/llama-server /usr/local/bin/llama-server" in dockerfile
