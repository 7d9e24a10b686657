"""Shared fixtures: tiny reranker checkpoints built once per session, and the CLI runner."""

from __future__ import annotations

import os
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
    from reranker_seqcls.tiny import build_model

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
