"""Wall and CPU seconds of one ``check --vllm-python`` (issue 22: vLLM once per check).

Runs ``python -m reranker_seqcls check SOURCE CONVERTED --vllm-python VLLM_PYTHON`` with this
tree's package and, with ``--before TREE``, with the package of another checkout of the project
(its ``src`` first on ``PYTHONPATH``), alternately, ``--rounds`` times each, so both see about
the same load on a shared machine. Prints one line per run (wall, CPU seconds of the check and
every process it waited for, vLLM's included, and the 1-minute load before and after) and the
medians.

    .venv/bin/python bench/bench_vllm_check.py SOURCE CONVERTED --before /tmp/base --rounds 2

SOURCE and CONVERTED are a small model and its conversion whose long pairs the check measures
(e.g. a tiny model of the suite, ``max_position_embeddings`` 512), so the check runs the
``vllm`` row, the over-length pairs offline and ``vllm serve``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _load() -> float:
    return os.getloadavg()[0]


def run_check(tree: Path, source: Path, converted: Path, vllm_python: Path) -> dict[str, object]:
    """One check with ``tree``'s package: wall, CPU, loads, exit code, the vllm row's
    metrics and the long-input rows (to see both trees report the same)."""
    env = {**os.environ, "PYTHONPATH": str(tree / "src"), "TOKENIZERS_PARALLELISM": "false"}
    with tempfile.TemporaryDirectory(prefix="bench-vllm-check-") as tmp:
        work = Path(tmp) / "converted"
        # a copy: the check writes its verdict into the converted directory
        subprocess.run(["cp", "-a", str(converted), str(work)], check=True)
        report = Path(tmp) / "report.json"
        load, cpu, started = _load(), _children_cpu(), time.monotonic()
        done = subprocess.run(
            [sys.executable, "-m", "reranker_seqcls", "check", str(source), str(work),
             "--vllm-python", str(vllm_python), "--report", str(report)],
            env=env, capture_output=True, text=True, check=False,
        )  # fmt: skip
        wall = time.monotonic() - started
        data = json.loads(report.read_text()) if report.is_file() else {}
    rows = [
        (r["consumer"], r["pair"], r["behaviour"])
        for r in (data.get("long_inputs") or {}).get("consumers", [])
    ]
    return {
        "tree": str(tree),
        "exit": done.returncode,
        "wall_s": round(wall, 1),
        "cpu_s": round(_children_cpu() - cpu, 1),
        "load_before": round(load, 1),
        "load_after": round(_load(), 1),
        "vllm_max_abs_prob": (data.get("metrics") or {}).get("vllm", {}).get("max_abs_prob"),
        "long_rows": rows,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path)
    parser.add_argument("converted", type=Path)
    parser.add_argument("--before", type=Path, help="another checkout, run before this one")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--vllm-python", type=Path, default=ROOT / ".venv-vllm/bin/python")
    args = parser.parse_args()
    trees = ([args.before] if args.before else []) + [ROOT]
    results: dict[str, list[dict[str, object]]] = {str(t): [] for t in trees}
    for _ in range(args.rounds):
        for tree in trees:
            result = run_check(tree, args.source, args.converted, args.vllm_python)
            results[str(tree)].append(result)
            print(json.dumps({k: v for k, v in result.items() if k != "long_rows"}), flush=True)
    for tree, runs in results.items():
        walls = [float(str(r["wall_s"])) for r in runs]
        cpus = [float(str(r["cpu_s"])) for r in runs]
        print(f"{tree}: median wall {statistics.median(walls):.0f} s, "
              f"CPU {statistics.median(cpus):.0f} s over {len(runs)} run(s)")  # fmt: skip
    if args.before:
        first, last = (results[str(t)][0]["long_rows"] for t in trees)
        print("same long-input rows:", first == last)


if __name__ == "__main__":
    main()
