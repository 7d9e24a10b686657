"""llama-server is built in two places, the Makefile (``make llama-server``: tests, CI) and the
Dockerfile's llama stage (``LLAMA_SOURCE=build``: the released image); a binary built by the
first goes into the image (``LLAMA_SOURCE=context``). Both must build the same llama.cpp with
the same portable flags."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

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


STAGE_SCRIPT = ROOT / "scripts" / "docker-llama-stage.sh"
STAGE_ARGS = (
    "LLAMA_SOURCE",
    "LLAMA_CPP_PYTHON_VERSION",
    "LLAMA_CPP_PYTHON_SHA256",
    "LLAMA_CMAKE_FLAGS",
)


def _portability_check(binary: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sh", str(STAGE_SCRIPT), "check", str(binary)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_llama_stage_runs_its_script_with_the_stage_args() -> None:
    """The stage's build arguments reach the script by name (the script reads them from its
    environment), and the build context lets the script in."""
    dockerfile = (ROOT / "Dockerfile").read_text("utf-8")
    stage = dockerfile[dockerfile.index(" AS llama\n") : dockerfile.index(" AS build\n")]
    script = STAGE_SCRIPT.read_text("utf-8")
    for name in STAGE_ARGS:
        assert re.search(rf"^ARG {name}=", stage, re.M), name
        assert re.search(rf"\$\{{?{name}\b", script), name
    assert "COPY scripts/docker-llama-stage.sh .docker-llam[a] /tmp/llama/" in stage
    assert "RUN sh /tmp/llama/docker-llama-stage.sh" in stage
    ignore = (ROOT / ".dockerignore").read_text("utf-8").splitlines()
    assert "!scripts/docker-llama-stage.sh" in ignore


def test_the_portability_check_refuses_avx512_code(tmp_path: Path) -> None:
    """What the llama stage and scripts/docker-build.sh run on llama-server before it goes into
    the image: an object whose code names an AVX-512 register is refused, an AVX2 one passes."""
    objects = {}
    for name, instruction in (("avx512", "vpxord %zmm0, %zmm0, %zmm0"),
                              ("avx2", "vpxor %ymm0, %ymm0, %ymm0")):  # fmt: skip
        source = tmp_path / f"{name}.c"
        source.write_text(f'void f(void) {{ __asm__ volatile("{instruction}"); }}\n', "utf-8")
        objects[name] = tmp_path / f"{name}.o"
        subprocess.run(["gcc", "-c", "-o", str(objects[name]), str(source)], check=True)

    refused = _portability_check(objects["avx512"])
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert f"{objects['avx512']} holds 1 AVX-512 instructions" in refused.stderr
    assert len(refused.stderr.splitlines()) == 1

    passed = _portability_check(objects["avx2"])
    assert passed.returncode == 0, passed.stderr
    assert passed.stdout.strip() == f"{objects['avx2']}: no AVX-512 instruction"

    missing = _portability_check(tmp_path / "missing")
    assert missing.returncode == 2 and "usage:" in missing.stderr


@pytest.mark.llama
def test_the_llama_server_the_image_takes_is_portable() -> None:
    """`make llama-server`'s binary, which scripts/docker-build.sh hands to the image
    (LLAMA_SOURCE=context), holds no AVX-512 instruction (about 6 s of objdump)."""
    binary = Path(
        os.environ.get("RERANKER_SEQCLS_LLAMA_SERVER")
        or ROOT / ".cache/llama-build/bin/llama-server"
    )
    assert binary.is_file(), f"{binary}: run `make llama-server`"
    proc = _portability_check(binary)
    assert proc.returncode == 0, proc.stderr
