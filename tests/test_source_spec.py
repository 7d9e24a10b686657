"""Where SOURCE is, decided once (``steps.find_source``) for ``convert``, ``check`` and ``run``:
a local directory with ``--revision`` is refused by each command the same way, before anything
is read or written (no model, no Hub: a few CLI start-ups)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import run_cli


@pytest.mark.parametrize("command", ["convert", "check", "run"])
def test_a_local_directory_with_a_revision_is_refused_by_every_command(
    tmp_path: Path, command: str
) -> None:
    source = tmp_path / "my-reranker"
    source.mkdir()
    out = tmp_path / "out"
    if command == "convert":
        args: list[str | Path] = ["convert", source, out, "--revision", "v1"]
    elif command == "check":
        out.mkdir()
        (out / "config.json").write_text("{}")
        args = ["check", source, out, "--revision", "v1"]
    else:
        args = ["run", "--model", source, "--target", "acme/target", "--revision", "v1"]
    result = run_cli(*args, env={"HF_HUB_OFFLINE": "1"})
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[-1] == (
        f"error: --revision applies to Hub repos, but {source} is a local directory"
    ), result.stderr
    assert "Traceback" not in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["my-reranker"] + (["out"] if command == "check" else [])
    )
