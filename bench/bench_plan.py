"""Benchmark ``reranker-seqcls plan`` on fleets of N entries against the loopback Hub.

``.venv/bin/python bench/bench_plan.py`` (from the repository root) seeds the loopback Hub
(``tests/loopback_hub``) with N sources and their targets, half of them current, a quarter with
an older upstream commit recorded, a quarter missing, writes the fleet file, and times the real
CLI (a fresh process each run: interpreter start, imports, every Hub call) for each N and each
simulated Hub round-trip latency (the server sleeps that long before answering each request;
the real Hub answers metadata calls in roughly 50-300 ms). Medians, extremes and the number of
requests per run go to ``bench/PLAN_RESULTS.md``; notes below the marker are kept.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "src")]

from reranker_seqcls import __version__  # noqa: E402
from reranker_seqcls.recipes.presets import PRESETS  # noqa: E402
from reranker_seqcls.schedule.plan import MAX_WORKERS  # noqa: E402
from tests.loopback_hub.fixtures import TEST_USER, make_hub_env, make_server  # noqa: E402

NOTES_MARKER = "<!-- notes: everything below this line is kept when bench_plan.py rewrites -->"


def seed(server, entries: int) -> tuple[list[dict[str, str]], set[str]]:
    """Sources and targets for a fleet of ``entries``; returns the fleet and the stale targets."""
    recipe = PRESETS["qwen3-reranker"].to_json()
    fleet, stale = [], set()
    for i in range(entries):
        source, target = f"bench/Qwen3-Reranker-{i}", f"{TEST_USER}/bench-{i}-seq-cls"
        sha = server.seed_repo(source, {"config.json": b"{}"})
        fleet.append({"model": source, "target": target})
        kind = i % 4
        if kind == 3:
            stale.add(target)  # no target repo
            continue
        if kind == 2:
            stale.add(target)
            sha = "0" * 40  # an older upstream commit recorded
        record = {
            "tool": {"name": "reranker-seqcls", "version": __version__},
            "source": {"repo_id": source, "commit_sha": sha},
            "recipe": recipe,
        }
        server.seed_repo(target, {"reranker_seqcls.json": json.dumps(record)})
    return fleet, stale


def add_latency(server, seconds: float) -> None:
    dispatch = server._dispatch

    def delayed(request):
        time.sleep(seconds)
        return dispatch(request)

    server._dispatch = delayed


def bench(entries: int, latency: float, runs: int, work: Path) -> dict[str, object]:
    server = make_server().start()
    try:
        fleet, stale = seed(server, entries)
        add_latency(server, latency)
        fleet_file = work / f"fleet-{entries}.yml"
        fleet_file.write_text(json.dumps({"rerankers": fleet}))  # JSON is YAML
        samples, requests = [], []
        for run in range(runs):
            # A fresh HF_HOME each run: a fresh runner has no cached provenance files.
            env = make_hub_env(server.url, work / f"hf-home-{entries}-{latency}-{run}")
            env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")])
            server.clear_requests()
            started = time.monotonic()
            done = subprocess.run(
                [sys.executable, "-m", "reranker_seqcls", "plan", str(fleet_file)],
                env=env, capture_output=True, text=True, check=False,
            )  # fmt: skip
            samples.append(time.monotonic() - started)
            requests.append(server.request_count())
            if done.returncode != 0:
                raise SystemExit(f"plan failed: {done.stderr[-2000:]}")
            listed = {item["target_repo"] for item in json.loads(done.stdout)["include"]}
            if listed != stale:
                raise SystemExit("plan listed the wrong entries")
    finally:
        server.stop()
    return {
        "entries": entries,
        "latency_ms": round(latency * 1000),
        "median_s": statistics.median(samples),
        "min_s": min(samples),
        "max_s": max(samples),
        "requests": statistics.median(requests),
        "samples_s": samples,
    }


def write_results(path: Path, rows: list[dict[str, object]], runs: int) -> None:
    notes = ""
    if path.exists() and NOTES_MARKER in path.read_text("utf-8"):
        notes = path.read_text("utf-8").split(NOTES_MARKER, 1)[1]
    lines = [
        "# `reranker-seqcls plan` benchmark",
        "",
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, reranker-seqcls {__version__}, Python "
        f"{platform.python_version()}, {os.cpu_count()} CPUs, load average "
        f"{os.getloadavg()[0]:.2f}; {runs} runs each, a fresh process per run, "
        f"{MAX_WORKERS} entries looked up concurrently, an empty Hub cache each run. "
        "Written by `bench/bench_plan.py`.",
        "",
        "| entries | simulated Hub latency | median | min | max | requests |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['entries']} | {row['latency_ms']} ms | {row['median_s']:.2f} s "
            f"| {row['min_s']:.2f} s | {row['max_s']:.2f} s | {row['requests']:.0f} |"
        )
    lines += ["", NOTES_MARKER]
    path.write_text("\n".join(lines) + (notes or "\n"), "utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, action="append", help="fleet size (repeatable)")
    parser.add_argument(
        "--latency-ms", type=int, action="append", help="per-request delay (repeatable)"
    )
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--results", type=Path, default=ROOT / "bench" / "PLAN_RESULTS.md")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-plan-") as tmp:
        for entries in args.entries or [20, 100]:
            for latency_ms in args.latency_ms or [0, 100]:
                row = bench(entries, latency_ms / 1000, args.runs, Path(tmp))
                print(
                    f"{entries} entries, {latency_ms} ms: median {row['median_s']:.2f} s, "
                    f"{row['requests']:.0f} requests",
                    flush=True,
                )
                rows.append(row)
    write_results(args.results, rows, args.runs)


if __name__ == "__main__":
    main()
