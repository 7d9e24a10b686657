"""Benchmark of the streamed ``run --gguf`` (``gguf/streamed.py``) against the loopback Hub, on
the random-weight Qwen3-Reranker shapes that ``bench_run.py`` builds (read from ``--cache``,
never built or deleted here).

For each shape of ``--forecast``: the disk the streamed run forecasts with ``--gguf TYPES`` and
without (``run ... --max-disk 1MB``: the run plans from the shard headers, prints its need and
refuses before any shard moves; nothing else is fetched), and with GGUFs both shapes' forecasts
(one pass; the second pass), from the line the run chooses by. For each shape of ``--measure``:
the whole streamed ``run --gguf TYPES`` (``--dry-run`` with ``--dry``: nothing uploaded), timed
under ``/usr/bin/time -v`` while a thread polls the disk it uses (``TMPDIR`` and ``HF_HOME``);
with ``--passes two`` (the default: both), a run forced into the second pass by a
``--max-disk`` between the two forecasts, each run to a fresh target.
Results go to ``--results`` (markdown) beside a JSON of the raw numbers.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
sys.path[:0] = [str(REPO_ROOT), str(BENCH_DIR)]

from bench_convert import machine_facts, package_versions  # noqa: E402
from bench_run import timed  # noqa: E402
from synthetic import SHAPES  # noqa: E402

from reranker_seqcls.sizes import parse_size  # noqa: E402
from tests.loopback_hub.fixtures import TEST_USER, make_hub_env, make_server  # noqa: E402

GB = 1e9
_SIZE = r"([\d.]+ ?[KMGT]?B)"


def _size(text: str) -> int:
    return parse_size(text.replace(" ", ""), "size")


def _log(message: str) -> None:
    print(f"[bench-gguf-stream] {message}", file=sys.stderr, flush=True)


def _source(cache: Path, name: str) -> Path:
    directory = cache / "checkpoints" / name
    if not any(directory.glob("*.safetensors")):
        raise SystemExit(f"{directory} holds no checkpoint: build it with bench/bench_run.py")
    return directory


def bench(args: argparse.Namespace) -> dict[str, dict[str, object]]:
    results: dict[str, dict[str, object]] = {}
    work = Path(tempfile.mkdtemp(prefix="bench-gguf-stream-", dir=args.work))
    try:
        for name in dict.fromkeys([*args.forecast, *args.measure]):
            results[name] = _one_shape(name, args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return results


def _one_shape(name: str, args: argparse.Namespace, work: Path) -> dict[str, object]:
    source = _source(args.cache, name)
    shards = sorted(source.glob("*.safetensors"))
    row: dict[str, object] = {
        "label": SHAPES[name].label,
        "model_bytes": sum(p.stat().st_size for p in shards),
        "shards": len(shards),
        "largest_shard": max(p.stat().st_size for p in shards),
    }
    repo = f"bench-org/Qwen3-Reranker-{name}"
    server = make_server(blob_dir=work / "hub-blobs")
    server.add_org("bench-org", [TEST_USER])
    with server:
        files = {p.name: p for p in sorted(source.iterdir())
                 if p.is_file() and not p.name.startswith(".")}  # fmt: skip
        server.seed_repo(repo, files)

        def env_for(label: str) -> tuple[dict[str, str], list[Path]]:
            home, tmp = work / name / label / "hf_home", work / name / label / "tmp"
            tmp.mkdir(parents=True)
            env = make_hub_env(server.url, home)
            env["TMPDIR"] = str(tmp)
            env["PYTHONPATH"] = f"{REPO_ROOT / 'src'}:{REPO_ROOT}"
            env["RERANKER_SEQCLS_LLAMA_SERVER"] = str(args.llama_server)
            return env, [home, tmp]

        base = [sys.executable, "-m", "reranker_seqcls", "run", "--model", repo,
                "--target", f"{TEST_USER}/{name}-seq-cls"]  # fmt: skip
        if name in args.forecast:
            for label, extra in (("without", []), ("with", ["--gguf", args.types])):
                env, _ = env_for(f"forecast-{label}")
                done = subprocess.run([*base, *extra, "--max-disk", "1MB"], env=env,
                                      capture_output=True, text=True)  # fmt: skip
                need = re.search(rf"this run needs up to {_SIZE}", done.stderr)
                if done.returncode != 2 or need is None:
                    raise SystemExit(f"{name}: no forecast ({done.returncode}):\n{done.stderr}")
                row[f"forecast_{label}_gguf"] = _size(need[1])
                splits = re.search(rf"gguf: [^:]*: {_SIZE} kept on disk", done.stderr)
                if splits is not None:
                    row["forecast_gguf_bytes"] = _size(splits[1])
                shapes = re.search(
                    rf"gguf: one pass needs {_SIZE} of disk, a second pass {_SIZE}", done.stderr
                )
                if shapes is not None:
                    row["forecast_one_pass"] = _size(shapes[1])
                    row["forecast_two_pass"] = _size(shapes[2])
                _log(f"{name}: forecast {label} --gguf {args.types}: {need[1]}")
        if name in args.measure:
            runs: list[tuple[str, list[str]]] = []
            if "one" in args.passes:
                runs.append(("one pass", []))
            if "two" in args.passes:
                one, two = row["forecast_one_pass"], row["forecast_two_pass"]
                assert isinstance(one, int) and isinstance(two, int)
                runs.append(("second pass", ["--max-disk", str((one + two) // 2)]))
            row["measured"] = {}
            for label, extra in runs:
                slug = label.replace(" ", "-")
                env, poll = env_for(f"measure-{slug}")
                target = f"{TEST_USER}/{name}-{slug}-seq-cls"  # a fresh target for each run
                argv = [sys.executable, "-m", "reranker_seqcls", "run", "--model", repo,
                        "--target", target, "--gguf", args.types, *extra,
                        *(["--dry-run"] if args.dry else [])]  # fmt: skip
                _log(f"{name}: run --gguf {args.types} {' '.join(extra)} ...")
                measured = timed(argv, env, poll)
                row["measured"][label] = {  # type: ignore[index]
                    "returncode": measured.returncode,
                    "wall_s": measured.wall_s,
                    "rss_bytes": measured.rss_bytes,
                    "peak_disk": measured.peak_disk,
                    "run_said": [
                        *measured.run_said,
                        *(x for x in measured.log_tail.splitlines() if x.startswith("gguf: ")),
                    ],
                    "log_tail": measured.log_tail,
                }
                _log(
                    f"{name} ({label}): exit {measured.returncode}, {measured.wall_s:.0f} s, disk "
                    f"{measured.peak_disk / GB:.2f} GB, RSS {measured.rss_bytes / GB:.2f} GB"
                )
    return row


def write_results(results: dict[str, dict[str, object]], args: argparse.Namespace) -> None:
    facts = machine_facts(BENCH_DIR)
    lines = [
        "",
        "## Streamed `run --gguf`: one pass or a second pass (`bench/bench_gguf_stream.py`)",
        "",
        f"Machine: {facts.get('CPU', '?')}, {facts.get('cores', '?')} cores (shared with other "
        "work). Types: `" + args.types + "`.",
        "",
        "| shape | model | shards (largest) | goal 2 x largest + 0.5 GB | forecast without "
        "GGUF | GGUF kept | one pass | second pass | chosen without --max-disk |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in results.values():

        def gb(key: str, row: dict[str, object] = row) -> str:
            value = row.get(key)
            return f"{value / GB:.2f} GB" if isinstance(value, int) else "–"

        largest = row["largest_shard"]
        assert isinstance(largest, int)
        goal = 2 * largest + 500_000_000
        one, two = row.get("forecast_one_pass"), row.get("forecast_two_pass")
        chosen = "–"
        if isinstance(one, int) and isinstance(two, int):
            chosen = "one pass" if one <= goal else "second pass" if two <= goal else "neither"
        lines.append(
            f"| {row['label']} | {gb('model_bytes')} | {row['shards']} ({largest / GB:.2f} GB) "
            f"| {goal / GB:.2f} GB | {gb('forecast_without_gguf')} | {gb('forecast_gguf_bytes')} "
            f"| {gb('forecast_one_pass')} | {gb('forecast_two_pass')} | {chosen} |"
        )
    lines += ["", "| shape | shape of the run | peak disk | peak RSS | wall | exit |",
              "|---|---|---|---|---|---|"]  # fmt: skip
    for row in results.values():
        for label, m in dict(row.get("measured") or {}).items():  # type: ignore[call-overload]
            lines.append(
                f"| {row['label']} | {label} | {m['peak_disk'] / GB:.2f} GB "
                f"| {m['rss_bytes'] / GB:.2f} GB | {m['wall_s']:.0f} s | {m['returncode']} |"
            )
    versions = package_versions()
    lines += ["", "Versions: " + ", ".join(f"{k} {v}" for k, v in sorted(versions.items()))]
    for row in results.values():
        for label, m in dict(row.get("measured") or {}).items():  # type: ignore[call-overload]
            lines += ["", f"{row['label']} ({label}), what the run said:", ""]
            lines += [f"- `{line}`" for line in m["run_said"]]
    with args.results.open("a") as out:
        out.write("\n".join(lines) + "\n")
    args.results.with_suffix(".stream.json").write_text(json.dumps(results, indent=2) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", type=Path, default=BENCH_DIR / ".cache")
    parser.add_argument("--work", type=Path, default=None, help="scratch directory's parent")
    parser.add_argument("--forecast", nargs="*", default=["0.6b", "4b", "8b"])
    parser.add_argument("--measure", nargs="*", default=["0.6b"])
    parser.add_argument("--types", default="q8_0")
    parser.add_argument("--dry", action="store_true", help="--dry-run: nothing uploaded")
    parser.add_argument(
        "--passes",
        default="one,two",
        help="the shapes of --measure runs: one (as the rule picks), two (a --max-disk between "
        "the two forecasts forces the second pass), or both",
    )
    parser.add_argument(
        "--llama-server", type=Path, default=REPO_ROOT / ".cache/llama-build/bin/llama-server"
    )
    parser.add_argument("--results", type=Path, default=BENCH_DIR / "GGUF_RESULTS.md")
    args = parser.parse_args()
    results = bench(args)
    write_results(results, args)


if __name__ == "__main__":
    main()
