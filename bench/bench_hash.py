"""Time what binding a verdict to its files costs: sha256 of every file of a converted directory.

``check`` (and the whole-snapshot ``run``) write the verdict with the sha256 of every file
(:func:`reranker_seqcls.check.record.checked_files`); ``push`` hashes them all again to prove the
verdict is still the files' (:func:`~reranker_seqcls.check.record.recorded_verdict`), and
huggingface_hub hashes each file once more when its upload needs the sha256 (the LFS path:
``CommitOperationAdd.upload_info.sha256``, computed lazily). This script builds a directory
shaped like a converted checkpoint (``--gb`` of random bytes in shards of at most
``--shard-gb``, plus small JSON files), then times, each ``--runs`` times with the files in the
page cache:

- ``checked_files``: the record's code path: what ``check`` runs to write the verdict and
  ``push`` runs (inside ``recorded_verdict``, beside parsing a small JSON) before asking the Hub;
- ``huggingface_hub UploadInfo``: the second hash of an LFS upload;
- ``sha256sum``: the coreutils baseline for the same bytes.

Results, with the machine's facts, go to ``bench/HASH_RESULTS.md`` (raw samples in
``HASH_RESULTS.json``); notes below the marker are kept. Caches are not dropped: that would time
the disk, shared with other work here, not the hashing (a cold read adds the disk's read time).

``.venv/bin/python bench/bench_hash.py [--gb 2] [--runs 3]``
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "bench")]

import huggingface_hub  # noqa: E402
from bench_convert import machine_facts  # noqa: E402
from huggingface_hub.lfs import UploadInfo  # noqa: E402

from reranker_seqcls import __version__  # noqa: E402
from reranker_seqcls.check.record import checked_files  # noqa: E402
from reranker_seqcls.names import PARITY_REPORT_FILE  # noqa: E402

NOTES_MARKER = "<!-- notes: everything below this line is kept when bench_hash.py rewrites -->"
GB = 10**9
CHUNK = 1 << 24
# The 8B family's converted size (Qwen3-Reranker-8B, bfloat16, untied: bench/RUN_RESULTS.md).
EIGHT_B = 16.4 * GB


def build(directory: Path, total: int, shard: int) -> list[Path]:
    """Random shards totalling ``total`` bytes and the small files a converted directory has."""
    directory.mkdir(parents=True)
    paths = []
    left, index = total, 1
    count = -(-total // shard)
    while left:
        size = min(shard, left)
        path = directory / f"model-{index:05d}-of-{count:05d}.safetensors"
        with path.open("wb") as out:
            written = 0
            while written < size:
                piece = os.urandom(min(CHUNK, size - written))
                out.write(piece)
                written += len(piece)
        paths.append(path)
        left -= size
        index += 1
    for name in ("config.json", "tokenizer_config.json", "reranker_seqcls.json"):
        (directory / name).write_text(json.dumps({"name": name, "pad": "x" * 2000}))
    (directory / "tokenizer.json").write_bytes(os.urandom(11_000_000))  # a Qwen3 tokenizer's size
    return paths


def upload_infos(directory: Path) -> None:
    for path in sorted(directory.iterdir()):
        if path.name != PARITY_REPORT_FILE:
            _ = UploadInfo.from_path(str(path)).sha256


def sha256sum(directory: Path) -> None:
    files = sorted(str(p) for p in directory.iterdir())
    subprocess.run(["sha256sum", *files], check=True, stdout=subprocess.DEVNULL)


def _cpu() -> float:
    """CPU seconds of this process and its finished children (``sha256sum``)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def timed(action: Callable[[], object], runs: int) -> tuple[list[float], list[float]]:
    """Wall and CPU seconds of each measured run. Hashing is CPU-bound: on a busy machine the
    wall time grows with the load, the CPU time stays what one idle core would take."""
    action()  # warm-up: the page cache holds every file afterwards
    wall, cpu = [], []
    for _ in range(runs):
        start, start_cpu = time.perf_counter(), _cpu()
        action()
        wall.append(time.perf_counter() - start)
        cpu.append(_cpu() - start_cpu)
    return wall, cpu


def machine(bench_dir: Path) -> dict[str, str]:
    """bench_convert's machine facts, and what a hashing bench adds: SHA extensions, the
    hashlib backend, huggingface_hub's version, the load at the start."""
    flags: set[str] = set()
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            break
    return {
        **machine_facts(bench_dir),
        "SHA extensions (sha_ni)": "yes" if "sha_ni" in flags else "no",
        "hashlib backend": hashlib.sha256().__class__.__module__ + " " + _openssl(),
        "huggingface_hub": huggingface_hub.__version__,
        "reranker-seqcls": __version__,
        "load average (1 min) at the start": f"{os.getloadavg()[0]:.2f}",
    }


def _openssl() -> str:
    import ssl

    return ssl.OPENSSL_VERSION


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gb", type=float, default=2.0, help="bytes of shards, in GB (10^9)")
    parser.add_argument("--shard-gb", type=float, default=1.0, help="largest shard, in GB")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--dir", type=Path, help="where to build the files (default: a temp dir)")
    parser.add_argument("--results", type=Path, default=ROOT / "bench" / "HASH_RESULTS.md")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-hash-", dir=args.dir))
    try:
        directory = work / "converted"
        facts = machine(work)
        shards = build(directory, int(args.gb * GB), int(args.shard_gb * GB))
        size = sum(p.stat().st_size for p in directory.iterdir())
        cases = {
            "checked_files (the verdict's hashes; check, then push)": lambda: checked_files(
                directory
            ),
            "huggingface_hub UploadInfo.sha256 (an LFS upload's hash)": lambda: upload_infos(
                directory
            ),
            "sha256sum (coreutils)": lambda: sha256sum(directory),
        }
        samples = {name: timed(action, args.runs) for name, action in cases.items()}
        facts["load average (1 min) at the end"] = f"{os.getloadavg()[0]:.2f}"
    finally:
        shutil.rmtree(work, ignore_errors=True)
    write_results(args, facts, size, len(shards), samples)
    return 0


def write_results(
    args: argparse.Namespace,
    facts: dict[str, str],
    size: int,
    shards: int,
    samples: dict[str, tuple[list[float], list[float]]],
) -> None:
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    rows = []
    for name, (wall, cpu) in samples.items():
        median, cpu_median = statistics.median(wall), statistics.median(cpu)
        rows.append(
            f"| {name} | {median:.2f} | {min(wall):.2f}–{max(wall):.2f} | {cpu_median:.2f} | "
            f"{size / cpu_median / GB:.2f} | {EIGHT_B / size * median:.0f} | "
            f"{EIGHT_B / size * cpu_median:.0f} |"
        )
    lines = [
        "# Hashing benchmark: what binding the verdict to its files costs",
        "",
        f"Generated by `python bench/bench_hash.py --gb {args.gb:g} --runs {args.runs}` on {now}. "
        f"The directory: {size / GB:.2f} GB in {shards} random shard(s) of at most "
        f"{args.shard_gb:g} GB and 5 small files; each case is run once uncounted (the page "
        f"cache then holds every file), then measured {args.runs} time(s); medians. GB = 10^9 "
        "bytes. CPU s is the process's (and sha256sum's) user + system time: hashing is "
        "CPU-bound, so on a shared machine the wall time grows with the load while the CPU "
        "time is what one idle core takes. The 8B columns scale the medians to the 8B "
        f"family's converted size ({EIGHT_B / GB:.1f} GB): hashing is linear in the bytes, so "
        "this is the warm-cache cost; a cold read adds the disk's time.",
        "",
        "## Machine",
        "",
        "| | |",
        "|---|---|",
        *(f"| {key} | {value} |" for key, value in facts.items()),
        "",
        "## Results",
        "",
        "| what | wall s (median) | min–max s | CPU s (median) | GB per CPU s | 8B: wall s "
        "| 8B: CPU s |",
        "|---|---|---|---|---|---|---|",
        *rows,
        "",
    ]
    old = args.results.read_text() if args.results.is_file() else ""
    notes = old.split(NOTES_MARKER, 1)[1] if NOTES_MARKER in old else "\n"
    args.results.write_text("\n".join(lines) + "\n" + NOTES_MARKER + notes)
    raw = {
        "size_bytes": size,
        "shards": shards,
        "machine": facts,
        "wall_s": {name: wall for name, (wall, _) in samples.items()},
        "cpu_s": {name: cpu for name, (_, cpu) in samples.items()},
    }
    args.results.with_suffix(".json").write_text(json.dumps(raw, indent=2) + "\n")


if __name__ == "__main__":
    raise SystemExit(main())
