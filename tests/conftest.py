"""Shared fixtures: tiny reranker checkpoints built once per session, and the CLI runner."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

# The loopback Hub server the Hub and Action tests talk to.
pytest_plugins = ["tests.loopback_hub.fixtures"]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "docker: builds and runs the Docker image (needs dockerd)")
    config.addinivalue_line("markers", "slow: takes more than a few seconds")
    config.addinivalue_line(
        "markers", "vllm: runs real vLLM from .venv-vllm (`make vllm-venv`; `make test` builds it)"
    )
    config.addinivalue_line(
        "markers",
        "llama: runs the real llama-server (`make llama-server`; `make test` builds it; "
        "$RERANKER_SEQCLS_LLAMA_SERVER overrides its path)",
    )


def repo_files(directory: Path) -> dict[str, bytes]:
    """Every file under ``directory`` by relative POSIX path: what ``seed_repo`` takes."""
    return {
        p.relative_to(directory).as_posix(): p.read_bytes()
        for p in directory.rglob("*")
        if p.is_file()
    }


# mxbai prompts end in "\n" ("Ċ"): with the pad token set to it, the converted classifier pools
# an earlier token, so its scores are not the original's (a conversion the check must refuse).
NEWLINE_PAD_PAIRS = (
    '{"query": "capital of France", "document": "Paris is the capital.\\n\\n"}\n'
    '{"query": "capital of France", "document": "Bananas are yellow.\\n\\n"}\n'
)


def with_newline_pad_token(files: dict[str, bytes]) -> dict[str, bytes]:
    """``files`` of a tiny model whose tokenizer pads with "\n" (see NEWLINE_PAD_PAIRS)."""
    tokenizer_config = json.loads(files["tokenizer_config.json"])
    tokenizer_config["pad_token"] = "Ċ"
    return {**files, "tokenizer_config.json": json.dumps(tokenizer_config).encode()}


def run_cli(
    *args: str | Path,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout: int = 300,
) -> subprocess.CompletedProcess[str]:
    """Run the real CLI in a subprocess, as a user would."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "reranker_seqcls", *map(str, args)],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=cwd,
        timeout=timeout,
        check=False,
    )


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """``tiny_model(family, tied=..., dtype=..., num_shards=...)`` → a cached source directory.

    Tests must not modify the returned directory (copy it first).
    """
    from testkit.tiny import build_model

    cache: dict[tuple, Path] = {}
    root = tmp_path_factory.mktemp("tiny-models")

    def build(
        family: str,
        *,
        tied: bool = True,
        dtype: str = "float32",
        num_shards: int = 1,
        name: str | None = None,
    ) -> Path:
        key = (family, tied, dtype, num_shards, name)
        if key not in cache:
            dirname = name or f"{family}-{'tied' if tied else 'untied'}-{dtype}-{num_shards}"
            cache[key] = build_model(
                family, root / dirname, tied=tied, dtype=dtype, num_shards=num_shards
            )
        return cache[key]

    return build


# Shape of the real-vocabulary models: tiny, but with head_dim 64 (vLLM's CPU attention refuses
# head_dim 16) and tied embeddings, so a 151,669-row vocabulary stays ~39 MB in float32.
REAL_VOCAB_SHAPE = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 1,
    "num_key_value_heads": 1,
    "head_dim": 64,
}


@pytest.fixture(scope="session")
def qwen_tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """``qwen_tokenizer_dir("qwen3" | "qwen2")`` → a directory holding the real Qwen tokenizer."""
    from tests.real_vocab import build_qwen_tokenizer

    cache: dict[str, Path] = {}
    root = tmp_path_factory.mktemp("real-tokenizers")

    def build(generation: str = "qwen3") -> Path:
        if generation not in cache:
            cache[generation] = build_qwen_tokenizer(root / generation, generation=generation)  # type: ignore[arg-type]
        return cache[generation]

    return build


@pytest.fixture(scope="session")
def gemma_tokenizer_dir() -> Path:
    """A directory holding the real Gemma 4 vocabulary as a transformers tokenizer
    (:mod:`tests.gemma_vocab`), built from llama.cpp's GGUF once per checkout into
    ``.cache/gemma4-tokenizer`` (about a minute and a half; ``make llama-src`` first)."""
    from tests.gemma_vocab import GGUF, build_gemma_tokenizer

    if not GGUF.is_file():
        pytest.fail(f"{GGUF} does not exist: run `make llama-src` (`make test` runs it)")
    cached = Path(__file__).resolve().parents[1] / ".cache" / "gemma4-tokenizer"
    if not (cached / ".built").is_file():
        staging = cached.with_name(f"{cached.name}.{os.getpid()}")
        shutil.rmtree(staging, ignore_errors=True)
        build_gemma_tokenizer(staging)
        (staging / ".built").write_text(str(GGUF.stat().st_size))
        shutil.rmtree(cached, ignore_errors=True)
        staging.rename(cached)
    return cached


@pytest.fixture(scope="session")
def real_vocab_model(
    tmp_path_factory: pytest.TempPathFactory,
    qwen_tokenizer_dir: Callable[[str], Path],
    request: pytest.FixtureRequest,
) -> Callable[..., Path]:
    """``real_vocab_model(family, tied=..., dtype=..., num_shards=..., name=..., **config)`` → a
    cached tiny random model of ``family`` ("qwen3" or "qwen2") on the real Qwen vocabulary
    (Qwen3 layout for qwen3, Qwen2.5 layout for qwen2), or ("gemma") on the real Gemma 4
    vocabulary, its classifier rows calibrated for ``preset`` (default: the family's). Tests
    must not modify it."""
    from testkit.tiny import build_model

    cache: dict[tuple, Path] = {}
    root = tmp_path_factory.mktemp("real-vocab-models")

    def build(
        family: str,
        *,
        tied: bool = True,
        dtype: str = "float32",
        num_shards: int = 1,
        name: str | None = None,
        preset: str | None = None,
        **config: object,
    ) -> Path:
        key = (family, tied, dtype, num_shards, name, preset, tuple(sorted(config.items())))
        if key not in cache:
            dirname = name or f"{family}-real-{'tied' if tied else 'untied'}-{dtype}-{num_shards}"
            cache[key] = build_model(
                family,  # type: ignore[arg-type]
                root / dirname,
                tied=tied,
                dtype=dtype,  # type: ignore[arg-type]
                num_shards=num_shards,
                tokenizer_dir=(
                    request.getfixturevalue("gemma_tokenizer_dir")
                    if family == "gemma"
                    else qwen_tokenizer_dir(family)
                ),
                config_overrides={**REAL_VOCAB_SHAPE, **config},
                preset=preset,
            )
        return cache[key]

    return build
