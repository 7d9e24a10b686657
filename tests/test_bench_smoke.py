"""The benchmark script runs end to end on a tiny shape.

The benchmark itself (``make bench``) is not part of the suite: it takes minutes and gigabytes.
This only proves that ``bench/bench_convert.py`` still builds a checkpoint, runs every command it
times and writes its results file.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "bench" / "bench_convert.py"

pytestmark = pytest.mark.slow


def _bench(script: Path, *args: str) -> None:
    """Run a bench script as a user would; it must exit 0 within two minutes."""
    proc = subprocess.run(
        [sys.executable, str(script), *args], capture_output=True, text=True, timeout=120,
        check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_bench_script_on_tiny_shape(tmp_path: Path) -> None:
    results = tmp_path / "RESULTS.md"
    _bench(
        SCRIPT, "--shape", "tiny", "--runs", "1", "--warmup", "0", "--no-check",
        "--cache", str(tmp_path / "cache"), "--results", str(results),
    )  # fmt: skip

    text = results.read_text("utf-8")
    for command in (
        "`reranker-seqcls convert SRC OUT --preset qwen3-reranker`",
        "`reranker-seqcls convert SRC OUT --preset qwen3-reranker --copy`",
        "`python bench/reference_convert.py --model_name SRC",
        "`cp -r SRC OUT`",
        "`reranker-seqcls --help`",
    ):
        assert f"| tiny | {command}" in text
    for section in ("## Machine", "load average", ", transformers ", "## Ratios", "## Targets"):
        assert section in text

    raw = json.loads(results.with_suffix(".json").read_text("utf-8"))
    (shape,) = raw["shapes"]
    assert shape["shape"]["name"] == "tiny"
    for series in shape["series"].values():
        (sample,) = series["samples"]
        assert sample["wall_s"] > 0 and sample["rss_bytes"] > 0 and sample["returncode"] == 0

    # Outputs are cleaned up; the cached checkpoint stays for the next run.
    work = tmp_path / "cache" / "work"
    assert not any(work.iterdir())
    assert (tmp_path / "cache" / "checkpoints" / "tiny" / "config.json").is_file()


def test_hash_bench_on_a_few_megabytes(tmp_path: Path) -> None:
    """``bench/bench_hash.py`` times every case on real files and leaves none behind."""
    results = tmp_path / "HASH_RESULTS.md"
    work = tmp_path / "work"
    work.mkdir()
    _bench(
        ROOT / "bench" / "bench_hash.py", "--gb", "0.01", "--shard-gb", "0.004", "--runs", "1",
        "--dir", str(work), "--results", str(results),
    )  # fmt: skip
    text = results.read_text("utf-8")
    assert "0.02 GB in 3 random shard(s)" in text and "sha_ni" in text
    raw = json.loads(results.with_suffix(".json").read_text("utf-8"))
    # 10 MB of shards, the 11 MB tokenizer.json and three small JSON files
    assert 21_000_000 < raw["size_bytes"] < 21_010_000
    assert len(raw["wall_s"]) == len(raw["cpu_s"]) == 3
    assert all(len(s) == 1 and s[0] > 0 for s in raw["wall_s"].values())
    assert not any(work.iterdir())  # the built files are removed
