"""Benchmark ``reranker-seqcls convert`` against the reference conversion and ``cp -r``.

One command (``make bench``, or ``.venv/bin/python bench/bench_convert.py [--large]``):

1. builds random-weight bfloat16 checkpoints with real Qwen3-Reranker shapes (cached under
   ``bench/.cache/``; see ``synthetic.py``);
2. times, each in a fresh process under ``/usr/bin/time -v``, round-robin (reversed every
   other round) so that drifting machine load hits every method alike:
   ``reranker-seqcls convert``, ``convert --copy``, the reference conversion
   (``reference_convert.py``, vLLM's example script) and ``cp -r``; plus
   ``reranker-seqcls --help`` and ``reranker-seqcls check`` on the 0.6B (or tiny) shape;
3. writes the medians, the ratios and the targets met or missed, with the machine's facts and
   the package versions, to ``bench/RESULTS.md`` (raw samples to ``RESULTS.json`` beside it).
   Hand-written notes below the notes marker of an existing results file are kept.

Page cache: every run, warm-up included, starts from the same state — the previous output
deleted, ``sync`` (so the previous run's dirty pages are not written back during this one), the
disk idle (see ``wait_disk_idle``), and the whole source read once so that it sits in the page
cache. Each command is run once as a warm-up
(not counted) before the measured rounds, except ``check`` (see ``bench_cli``). Caches are not
dropped: that would measure the disk rather than the tools, and slow down everyone else on a
shared machine.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from synthetic import HUB_SHARD_BYTES, SHAPES, Shape, cached_checkpoint

BENCH_DIR = Path(__file__).resolve().parent
TIME_BIN = "/usr/bin/time"
HAVE_TIME = os.access(TIME_BIN, os.X_OK)
NOTES_MARKER = "<!-- notes: everything below this line is kept when bench_convert.py rewrites -->"
PRESET = "qwen3-reranker"
CLASSIFIER_TOKENS = '["no", "yes"]'
MB = 10**6
# Shapes on which --help and check are timed as well (check loads three models one at a time:
# on the 4B shapes it would mostly measure CPU inference, which is not what is compared here).
CHECK_SHAPES = ("tiny", "0.6b")
PACKAGES = (
    "reranker-seqcls",
    "torch",
    "transformers",
    "safetensors",
    "tokenizers",
    "huggingface_hub",
    "sentence-transformers",
    "numpy",
    "click",
)
# The targets of issue 6.
SPEEDUP_TARGET = 10.0  # reference / ours
COPY_TARGET = 1.3  # ours --copy / cp -r
RSS_FACTOR, RSS_SLACK = 1.2, 300 * MB  # peak RSS <= 1.2 x largest tensor + 300 MB
FLAT_TARGET = 1.10  # largest / smallest peak RSS of ours across shapes
HELP_TARGET_S = 0.5
CHECK_RSS_FACTOR = 1.3  # check peak RSS <= 1.3 x one model (its weights)


@dataclass
class Sample:
    wall_s: float
    rss_bytes: int
    returncode: int
    load1: float  # 1-minute load average just before the run


@dataclass
class Series:
    method: str
    command: str
    samples: list[Sample] = field(default_factory=list)
    note: str = ""

    @property
    def wall(self) -> float:
        return statistics.median(s.wall_s for s in self.samples)

    @property
    def rss(self) -> float:
        return statistics.median(s.rss_bytes for s in self.samples)

    def wall_range(self) -> str:
        walls = [s.wall_s for s in self.samples]
        return f"{_secs(min(walls))}–{_secs(max(walls))}"


@dataclass
class ShapeResult:
    shape: Shape
    on_disk: int
    shards: int
    build_s: float | None  # None: reused from the cache
    series: dict[str, Series] = field(default_factory=dict)


# --------------------------------------------------------------------------- running


def _secs(value: float) -> str:
    return f"{value:.3f}" if value < 1 else f"{value:.2f}"


def _mb(value: float) -> str:
    return f"{value / MB:,.0f}" if value >= 10 * MB else f"{value / MB:.2f}"


def _log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def run_timed(argv: list[str], env: dict[str, str], ok_codes: tuple[int, ...] = (0,)) -> Sample:
    """Run ``argv``; wall time measured here, peak RSS from ``/usr/bin/time -v``.

    Without ``/usr/bin/time`` the peak RSS comes from the child's own rusage (``wait4``), which
    is the same number GNU time reports (the largest resident set of the process and of any
    descendant it waited for).
    """
    load1 = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-run-") as tmp:
        report, output = Path(tmp) / "time.txt", Path(tmp) / "output.txt"
        command = [TIME_BIN, "-v", "-o", str(report), *argv] if HAVE_TIME else argv
        with output.open("w") as out:
            start = time.perf_counter()
            proc = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
            _, status, usage = os.wait4(proc.pid, 0)
            wall = time.perf_counter() - start
        proc.returncode = code = os.waitstatus_to_exitcode(status)
        if code not in ok_codes:
            tail = "\n".join(output.read_text(errors="replace").splitlines()[-15:])
            raise RuntimeError(f"{shlex.join(argv)} exited {code}:\n{tail}")
        if HAVE_TIME:
            rss_kb = next(
                int(line.rsplit(":", 1)[1])
                for line in report.read_text().splitlines()
                if line.strip().startswith("Maximum resident set size")
            )
        else:
            rss_kb = usage.ru_maxrss  # kilobytes on Linux
    return Sample(wall, rss_kb * 1024, code, load1)


def block_device_stat(path: Path) -> Path | None:
    """``/sys/class/block/<dev>/stat`` of the device holding ``path`` (None if not found)."""
    source = subprocess.run(
        ["findmnt", "-n", "-o", "SOURCE", "-T", str(path)], capture_output=True, text=True
    ).stdout.strip()
    stat = Path("/sys/class/block") / Path(os.path.realpath(source)).name / "stat"
    return stat if source.startswith("/dev/") and stat.is_file() else None


def wait_disk_idle(stat: Path | None, timeout: float = 30.0) -> None:
    """Wait until the block device has no I/O in flight and completed none for 0.5 s.

    ``sync`` returns once dirty pages are written, but deleting the previous run's multi-GB
    output also makes the filesystem send discards (ext4 ``discard``) that the device works
    through afterwards; a run started meanwhile is slowed, and in a fixed order that always
    penalises whatever follows the reference (the biggest writer).
    """
    if stat is None:
        return
    deadline = time.monotonic() + timeout
    previous = stat.read_text().split()
    while time.monotonic() < deadline:
        time.sleep(0.5)
        current = stat.read_text().split()
        if current == previous and current[8] == "0":  # field 9: I/Os in flight
            return
        previous = current


def settle(source: Path | None, output: Path | None, disk: Path | None = None) -> None:
    """The same starting state for every run: no previous output, no dirty pages, an idle disk,
    the source in the page cache."""
    if output is not None and output.exists():
        shutil.rmtree(output)
    os.sync()
    wait_disk_idle(disk)
    if source is None:
        return
    buffer = bytearray(16 * 1024 * 1024)
    for path in sorted(source.iterdir()):
        if path.is_file():
            with path.open("rb", buffering=0) as fh:
                while fh.readinto(buffer):
                    pass
    wait_disk_idle(disk)  # reading a source that was not cached is I/O too


def tool_path() -> str:
    beside = Path(sys.executable).parent / "reranker-seqcls"
    found = str(beside) if beside.exists() else shutil.which("reranker-seqcls")
    if found is None:
        sys.exit("reranker-seqcls is not installed: run `make venv` first")
    return found


def conversion_methods(tool: str, source: Path) -> dict[str, Callable[[Path], list[str]]]:
    reference = str(BENCH_DIR / "reference_convert.py")
    return {
        "reranker-seqcls convert": lambda out: [tool, "convert", str(source), str(out),
                                                "--preset", PRESET],
        "reranker-seqcls convert --copy": lambda out: [tool, "convert", str(source), str(out),
                                                       "--preset", PRESET, "--copy"],
        "reference (load both models, save)": lambda out: [
            sys.executable, reference, "--model_name", str(source),
            "--classifier_from_tokens", CLASSIFIER_TOKENS, "--method", "from_2_way_softmax",
            "--path", str(out),
        ],
        "cp -r": lambda out: ["cp", "-r", str(source), str(out)],
    }  # fmt: skip


def _display(argv: list[str], source: Path, out: Path) -> str:
    text = shlex.join(argv).replace(str(out), "OUT").replace(str(source), "SRC")
    return text.replace(sys.executable, "python").replace(str(BENCH_DIR) + "/", "bench/")


def bench_conversions(
    result: ShapeResult, source: Path, work: Path, env: dict[str, str], args: argparse.Namespace
) -> None:
    methods = conversion_methods(tool_path(), source)
    out = work / "out"
    for name, build in methods.items():
        display = _display(build(out), source, out)
        result.series[name] = Series(name, display.replace(tool_path(), "reranker-seqcls"))
    rounds = args.warmup + args.runs
    for round_no in range(rounds):
        warm = round_no < args.warmup
        order = list(methods.items())
        if round_no % 2:
            order.reverse()  # so that no command always follows the same one
        for name, build in order:
            settle(source, out, args.disk)
            sample = run_timed(build(out), env)
            label = "warm-up" if warm else f"run {round_no - args.warmup + 1}/{args.runs}"
            _log(
                f"{result.shape.name} {name}: {sample.wall_s:.2f} s, "
                f"{sample.rss_bytes / MB:.0f} MB ({label}, load {sample.load1:.2f})"
            )
            if not warm:
                result.series[name].samples.append(sample)
    settle(None, out)


HELP, CHECK, ONE_MODEL = (
    "reranker-seqcls --help",
    "reranker-seqcls check",
    "one model resident (check's baseline)",
)


def bench_cli(
    result: ShapeResult, source: Path, work: Path, env: dict[str, str], args: argparse.Namespace
) -> None:
    """``--help``, ``check`` (on an output of ``convert``, made once) and its baseline.

    The baseline (``one_model.py``) loads the source causal LM as ``check`` does and runs one
    short forward pass, so that every weight is resident once: the least a process holding one
    model needs. ``check`` gets no warm-up run (each takes minutes); the conversion runs before
    it have already cached torch and transformers, and sentence-transformers is imported once
    beforehand for the same reason.
    """
    tool = tool_path()
    converted = work / "converted"
    settle(None, converted)
    subprocess.run(
        [tool, "convert", str(source), str(converted), "--preset", PRESET],
        env=env,
        check=True,
        capture_output=True,
    )
    # name -> (argv, accepted exit codes, warm-up runs)
    jobs: dict[str, tuple[list[str], tuple[int, ...], int]] = {
        HELP: ([tool, "--help"], (0,), args.warmup),
    }
    if not args.no_check:
        subprocess.run([sys.executable, "-c", "import sentence_transformers"], env=env, check=False)
        one_model = [sys.executable, str(BENCH_DIR / "one_model.py"), str(source)]
        jobs[ONE_MODEL] = (one_model, (0,), args.warmup)
        # exit 1 is a parity verdict, not a crash: time it all the same and report the verdict
        jobs[CHECK] = ([tool, "check", str(source), str(converted)], (0, 1), 0)
    for name, (argv, ok, warmup) in jobs.items():
        text = shlex.join(argv).replace(str(converted), "OUT").replace(str(source), "SRC")
        text = text.replace(tool, "reranker-seqcls").replace(sys.executable, "python")
        display = text.replace(str(BENCH_DIR) + "/", "bench/")
        series = result.series[name] = Series(name, display)
        for round_no in range(warmup + args.runs):
            settle(None if name == HELP else source, None, args.disk)
            sample = run_timed(argv, env, ok)
            label = "warm-up" if round_no < warmup else f"run {round_no - warmup + 1}/{args.runs}"
            _log(
                f"{result.shape.name} {name}: {sample.wall_s:.2f} s, "
                f"{sample.rss_bytes / MB:.0f} MB ({label}, load {sample.load1:.2f})"
            )
            if round_no >= warmup:
                series.samples.append(sample)
        if name == CHECK:
            codes = {s.returncode for s in series.samples}
            series.note = "parity PASS" if codes == {0} else f"parity exit codes {sorted(codes)}"
    settle(None, converted)


# --------------------------------------------------------------------------- report


def machine_facts(bench_dir: Path) -> dict[str, str]:
    cpu = "unknown"
    flags: set[str] = set()
    with open("/proc/cpuinfo") as fh:
        for line in fh:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
            elif line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
            if cpu != "unknown" and flags:
                break
    mem_kb = 0
    with open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("MemTotal"):
                mem_kb = int(line.split()[1])
    fs = subprocess.run(
        ["findmnt", "-n", "-o", "FSTYPE,OPTIONS", "-T", str(bench_dir)],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.split()
    return {
        "CPU": cpu,
        "vector units": vector_units(flags),
        "cores": f"{os.cpu_count()} ({len(os.sched_getaffinity(0))} usable)",
        "RAM": f"{mem_kb / 1024**2:.1f} GiB",
        "filesystem of the bench dir": f"{fs[0]} ({fs[1]})" if len(fs) == 2 else "unknown",
        "kernel": f"{platform.system()} {platform.release()}",
        "Python": platform.python_version(),
        "reranker-seqcls source": source_revision(),
    }


def vector_units(flags: set[str]) -> str:
    """The vector and matrix units the CPU flags name: a check's float32 layers run faster with
    AVX-512 than with AVX2 (GitHub's standard runners: AVX2; bench/RUN_RESULTS.md has the 8B's
    quick pass both ways), so a timing is read beside this line, not the CPU's name alone."""
    found = [
        name
        for name, flag in (("AVX2", "avx2"), ("AVX-512", "avx512f"), ("AMX-BF16", "amx_bf16"))
        if flag in flags
    ]
    return ", ".join(found) or "no AVX2"


def source_revision() -> str:
    """The commit of the code under test, and whether src/ differed from it."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(BENCH_DIR.parent), *args], capture_output=True, text=True
        ).stdout.strip()

    head = git("rev-parse", "--short", "HEAD") or "unknown (not a git checkout)"
    dirty = git("status", "--porcelain", "--", "src")
    return f"{head}, with uncommitted changes in src/" if dirty else head


def package_fingerprint(env: dict[str, str]) -> tuple[str, str]:
    """Where the timed commands import reranker_seqcls from, and a hash of its files.

    Taken before and after the run: other people editing src/ during a run would otherwise mix
    two versions of the code in one table without anyone noticing.
    """
    probe = "import os, reranker_seqcls; print(os.path.dirname(reranker_seqcls.__file__))"
    where = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True
    ).stdout.strip()
    digest = hashlib.sha256()
    for path in sorted(Path(where).rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            digest.update(path.relative_to(where).as_posix().encode() + b"\0" + path.read_bytes())
    return where, digest.hexdigest()[:12]


def package_versions() -> dict[str, str]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


@dataclass
class Target:
    what: str
    value: str
    met: bool | None  # None: not measured in this run


def evaluate(results: list[ShapeResult]) -> list[Target]:
    targets: list[Target] = []
    ours, copy = "reranker-seqcls convert", "reranker-seqcls convert --copy"
    ref, cp = "reference (load both models, save)", "cp -r"
    for r in results:
        s = r.series
        speedup = s[ref].wall / s[ours].wall
        targets.append(
            Target(
                f"{r.shape.name}: convert ≥ {SPEEDUP_TARGET:g}× faster than the reference",
                f"{speedup:.1f}×",
                speedup >= SPEEDUP_TARGET,
            )
        )
        ratio = s[copy].wall / s[cp].wall
        targets.append(
            Target(
                f"{r.shape.name}: convert --copy ≤ {COPY_TARGET:g} × cp -r",
                f"{ratio:.2f}×",
                ratio <= COPY_TARGET,
            )
        )
        limit = RSS_FACTOR * r.shape.largest_tensor_bytes + RSS_SLACK
        worst = max(s[ours].rss, s[copy].rss)
        targets.append(
            Target(
                f"{r.shape.name}: convert peak RSS ≤ {RSS_FACTOR:g} × largest tensor + 300 MB "
                f"(= {_mb(limit)} MB)",
                f"{_mb(worst)} MB",
                worst <= limit,
            )
        )
    # Flat: the same code path (tied: links only; untied: one shard rewritten) at two sizes.
    for tied, path in ((True, "tied"), (False, "untied")):
        group = [r for r in results if r.shape.tied == tied and r.shape.name != "tiny"]
        what = f"convert peak RSS flat from 0.6B to 4B, {path} (largest/smallest ≤ {FLAT_TARGET:g})"
        if len(group) < 2:
            targets.append(Target(what, "needs two sizes: run with --large", None))
            continue
        rss = {r.shape.name: max(r.series[ours].rss, r.series[copy].rss) for r in group}
        growth = max(rss.values()) / min(rss.values())
        value = f"{growth:.2f} ({', '.join(f'{k} {_mb(v)} MB' for k, v in rss.items())})"
        targets.append(Target(what, value, growth <= FLAT_TARGET))
    for r in results:
        if HELP in r.series:
            wall = r.series[HELP].wall
            targets.append(
                Target(f"--help < {HELP_TARGET_S:g} s", f"{wall:.3f} s", wall < HELP_TARGET_S)
            )
        if CHECK in r.series:
            rss = r.series[CHECK].rss
            one = r.series[ONE_MODEL].rss
            targets.append(
                Target(
                    f"{r.shape.name}: check peak RSS ≤ {CHECK_RSS_FACTOR:g} × one model resident "
                    f"({_mb(one)} MB → {_mb(CHECK_RSS_FACTOR * one)} MB)",
                    f"{_mb(rss)} MB ({rss / one:.2f}×; {rss / r.shape.total_bytes:.2f}× the "
                    f"weights' {_mb(r.shape.total_bytes)} MB)",
                    rss <= CHECK_RSS_FACTOR * one,
                )
            )
    return targets


def render(
    results: list[ShapeResult],
    args: argparse.Namespace,
    facts: dict[str, str],
    started: datetime,
    loads: tuple[float, float],
    notes: str,
) -> str:
    versions = package_versions()
    every = [s for r in results for series in r.series.values() for s in series.samples]
    run_loads = [s.load1 for s in every] or [0.0]
    rss_source = "`/usr/bin/time -v`" if HAVE_TIME else "the child's `wait4` rusage"
    lines = [
        "# Conversion benchmark",
        "",
        f"Generated by `{' '.join(['python', 'bench/bench_convert.py', *args.argv])}` on "
        f"{started:%Y-%m-%d %H:%M} UTC; {args.runs} measured run(s) per command, each in a fresh "
        "process; wall time and peak RSS are medians. MB and GB are 10^6 and 10^9 bytes.",
        "",
        "Every run, warm-up included, starts from the same state: the previous output deleted, "
        "`sync` (no dirty pages left to write back), the disk idle (no I/O in flight or completed "
        "for 0.5 s: deleting GBs sends discards the device works through afterwards), and the "
        "whole source read once so it sits in the page cache. Commands run round-robin, in "
        "reverse order every other round, so that drifting load and what ran just before "
        "affect each alike. Caches are not dropped (that would time the disk, not the tools). "
        f"Peak RSS is {rss_source}'s maximum resident set size (file pages a process maps, "
        "such as memory-mapped safetensors weights, count). Each command gets "
        f"{args.warmup} uncounted warm-up run(s) first, except `check` (minutes per run; the "
        "conversions before it have already cached torch and transformers).",
        "",
        "## Machine",
        "",
        "| | |",
        "|---|---|",
        *[f"| {k} | {v} |" for k, v in facts.items()],
        f"| load average (1 min) | {loads[0]:.2f} at the start, {loads[1]:.2f} at the end, "
        f"{min(run_loads):.2f}–{max(run_loads):.2f} before the runs |",
        "",
        "Packages: " + ", ".join(f"{k} {v}" for k, v in versions.items()) + ".",
        "",
        "## Checkpoints",
        "",
        "| shape | hidden × layers, vocab | tied | on disk | shards | largest tensor | built |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        s = r.shape
        built = "cached" if r.build_s is None else f"in {r.build_s:.0f} s"
        lines.append(
            f"| {s.label} | {s.hidden} × {s.layers}, {s.vocab} | {'yes' if s.tied else 'no'} "
            f"| {r.on_disk / 1e9:.2f} GB | {r.shards} | {_mb(s.largest_tensor_bytes)} MB "
            f"| {built} |"
        )
    lines += [
        "",
        "## Results",
        "",
        "| shape | command | wall s (median) | min–max s | peak RSS MB (median) | runs | note |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        for series in r.series.values():
            lines.append(
                f"| {r.shape.name} | `{series.command}` | {_secs(series.wall)} "
                f"| {series.wall_range()} | {_mb(series.rss)} | {len(series.samples)} "
                f"| {series.note} |"
            )
    ours, copy = "reranker-seqcls convert", "reranker-seqcls convert --copy"
    ref, cp = "reference (load both models, save)", "cp -r"
    lines += [
        "",
        "## Ratios",
        "",
        "| shape | reference / ours (time) | reference / ours (peak RSS) "
        "| ours / cp -r (time) | ours --copy / cp -r (time) |",
        "|---|---|---|---|---|",
    ]
    for r in results:
        s = r.series
        lines.append(
            f"| {r.shape.name} | {s[ref].wall / s[ours].wall:.1f}× "
            f"| {s[ref].rss / s[ours].rss:.1f}× | {s[ours].wall / s[cp].wall:.3f}× "
            f"| {s[copy].wall / s[cp].wall:.2f}× |"
        )
    lines += ["", "## Targets (issue 6)", "", "| target | measured | met |", "|---|---|---|"]
    for t in evaluate(results):
        met = "–" if t.met is None else ("yes" if t.met else "**no**")
        lines.append(f"| {t.what} | {t.value} | {met} |")
    lines += ["", NOTES_MARKER]
    if notes:
        lines.append(notes.rstrip("\n"))
    return "\n".join(lines) + "\n"


def existing_notes(path: Path) -> str:
    if not path.is_file():
        return ""
    text = path.read_text("utf-8")
    return text.split(NOTES_MARKER, 1)[1].lstrip("\n") if NOTES_MARKER in text else ""


# --------------------------------------------------------------------------- main


def parse_size(text: str) -> int:
    units = {"KB": 10**3, "MB": 10**6, "GB": 10**9}
    upper = text.strip().upper()
    for suffix, factor in units.items():
        if upper.endswith(suffix):
            return int(float(upper[: -len(suffix)]) * factor)
    return int(upper)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--shape",
        action="append",
        choices=sorted(SHAPES),
        help="checkpoint shape to bench (repeatable; default 0.6b)",
    )
    parser.add_argument("--large", action="store_true", help="add 0.6b-untied, 4b and 4b-untied")
    parser.add_argument("--runs", type=int, default=3, help="measured runs per command (3)")
    parser.add_argument("--warmup", type=int, default=1, help="warm-up runs per command (1)")
    parser.add_argument(
        "--cache", type=Path, default=BENCH_DIR / ".cache", help="checkpoints and outputs"
    )
    parser.add_argument(
        "--results", type=Path, default=BENCH_DIR / "RESULTS.md", help="results file to write"
    )
    parser.add_argument(
        "--max-shard-size",
        type=parse_size,
        default=HUB_SHARD_BYTES,
        help="shard limit of the built checkpoints, e.g. 500MB (default 5GB, as on the Hub)",
    )
    parser.add_argument("--no-check", action="store_true", help="do not time `check`")
    args = parser.parse_args(argv)
    shapes = list(dict.fromkeys(args.shape or ["0.6b"]))
    if args.large:
        shapes += [s for s in ("0.6b-untied", "4b", "4b-untied") if s not in shapes]
    args.shapes = shapes
    args.argv = argv
    if args.runs < 1 or args.warmup < 0:
        parser.error("--runs must be >= 1 and --warmup >= 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if not HAVE_TIME:
        _log(f"{TIME_BIN} is missing (apt-get install -y time): peak RSS from wait4 instead")
    started = datetime.now(UTC)
    load_start = os.getloadavg()[0]
    cache = args.cache.resolve()
    work = cache / "work"
    work.mkdir(parents=True, exist_ok=True)
    args.disk = block_device_stat(work)
    # Offline: the reference must never reach for the Hub; no progress bars in captured output.
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1"}

    package_dir, fingerprint = package_fingerprint(env)
    results: list[ShapeResult] = []
    for name in args.shapes:
        shape = SHAPES[name]
        _log(f"{name}: checkpoint ({shape.total_bytes / 1e9:.2f} GB of weights)")
        t0 = time.perf_counter()
        source, built = cached_checkpoint(shape, cache, max_shard_bytes=args.max_shard_size)
        build_s = time.perf_counter() - t0 if built else None
        on_disk = sum(p.stat().st_size for p in source.iterdir() if p.is_file())
        shards = len(list(source.glob("*.safetensors")))
        result = ShapeResult(shape, on_disk, shards, build_s)
        bench_conversions(result, source, work, env, args)
        if name in CHECK_SHAPES:
            bench_cli(result, source, work, env, args)
        results.append(result)

    facts = machine_facts(BENCH_DIR)
    _, fingerprint_end = package_fingerprint(env)
    code = f"`{package_dir}`, files sha256 {fingerprint}"
    if fingerprint_end == fingerprint:
        code += " (unchanged during the run)"
    else:
        code += f" → {fingerprint_end}: **changed during the run, rows mix two versions; rerun**"
        _log("warning: reranker_seqcls changed during the run; the results mix two versions")
    facts["reranker-seqcls code timed"] = code
    loads = (load_start, os.getloadavg()[0])
    results_path = args.results
    text = render(results, args, facts, started, loads, existing_notes(results_path))
    results_path.parent.mkdir(parents=True, exist_ok=True)
    results_path.write_text(text, "utf-8")
    raw = {
        "started": started.isoformat(),
        "argv": args.argv,
        "machine": facts,
        "packages": package_versions(),
        "load_average": loads,
        "shapes": [
            {
                "shape": asdict(r.shape),
                "on_disk": r.on_disk,
                "series": {k: asdict(v) for k, v in r.series.items()},
            }
            for r in results
        ],
    }
    results_path.with_suffix(".json").write_text(json.dumps(raw, indent=2) + "\n", "utf-8")
    _log(f"wrote {results_path}")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
