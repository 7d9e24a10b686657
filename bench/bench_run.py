"""Benchmark of ``reranker-seqcls run`` against the loopback Hub: the quick check beside the
full one, the streamed pass beside the whole-snapshot design, on random-weight Qwen3-Reranker
shapes; and ``check`` of a local checkpoint.

For each shape the source checkpoint (``synthetic.py``, cached under ``--cache``) is seeded into
a loopback Hub served by this process, then ``run`` is timed in a fresh process under
``/usr/bin/time -v`` (peak RSS, mapped file pages included) while a thread polls the disk the
run uses (its ``TMPDIR``, ``HF_HOME`` and, for today's design, ``--output-dir``; allocated
blocks, hard links once). Designs:

* ``streamed``: ``run --model REPO --target T`` (a Hub source is streamed shard by shard; the
  quick check: a few short pairs on the real weights, every pair on the twin, the layers
  computed while the next shard arrives);
* ``streamed-full``: the same with ``--full-check``: every pair on the real weights, as every
  run did before the quick check;
* ``whole``: ``run ... --output-dir DIR``, the whole-snapshot path (whole snapshot in
  ``HF_HOME``, converted beside it, the check within ``--check-memory``, one upload);
* ``whole-full``: the whole-snapshot path with the whole-model check (``--check-memory 64GB
  --full-check``); only where the model fits this machine's memory in float32 (the 0.6B);
* ``check-local`` and ``check-local-full``: ``check SOURCE CONVERTED`` of two local
  directories (the source and its conversion, made beforehand and not timed), quick and full.

The parts a run's wall time is judged against, measured on the same machine: fetching the
source's bytes once (``snapshot_download``), uploading them once (``upload_folder`` of the
source to a scratch repo), and the real-model scoring a check makes: one float32 forward pass of
the quick pairs, and of every pair, through the model (``check.layerwise.LayerwiseScorer`` over
the local shards, without hashing, fetching or the twin). The quick ``run`` is judged against
1.3 x (fetch + upload) + 20 s, the full one against 1.3 x (fetch + upload + the pass of every
pair). Results go to ``bench/RUN_RESULTS.md`` (``--results``).

``make bench-large`` runs the 4B and 8B shapes too. The loopback Hub keeps LFS objects on disk
(``blob_dir`` under ``--work``, hard links of the cached shards: keep both on one filesystem):
the 8B needs ~50 GB of disk (the cached source, the pushed output and the run's own peak), not
memory.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
sys.path[:0] = [str(REPO_ROOT), str(BENCH_DIR)]

from bench_convert import machine_facts, package_versions  # noqa: E402
from synthetic import SHAPES, cached_checkpoint, with_real_vocabulary  # noqa: E402

from reranker_seqcls.stream.disk import disk_usage  # noqa: E402
from tests.loopback_hub import LoopbackHubServer  # noqa: E402
from tests.loopback_hub.fixtures import TEST_TOKEN, TEST_USER, make_hub_env, make_server  # noqa: E402

GB = 1e9
TIME_BIN = "/usr/bin/time"


@dataclass
class Measured:
    wall_s: float
    rss_bytes: int
    peak_disk: int
    returncode: int
    log_tail: str = ""
    run_said: list[str] = field(default_factory=list)  # the run's own "streamed run:" lines
    load: str = ""  # the 1-minute load average before and after: other jobs share the cores
    cpu_s: float = 0.0  # user + system seconds of the run's process (less sensitive to load)
    phases: dict[str, float] = field(default_factory=dict)  # from its log's timestamps


# The run's own log lines that open each phase (their text after the timestamp), in order:
# what its wall time was spent on, read from when it said what (``timed`` stamps each line).
PHASE_MARKS = (
    ("plan (listing, headers, imports, pairs)", ""),
    ("shards (fetch, layers, pre-upload)", "streamed run: "),
    ("twin (build, transformers, sentence-transformers)", "parity: consumers proven on the twin"),
    ("vLLM (start-up and scoring, offline)", "parity: scoring through vLLM's pooling runner"),
    ("verdict and commit", "parity: PASS"),
)
PHASE_NAMES = [name for name, _ in PHASE_MARKS]


def phases(lines: list[str], wall: float) -> dict[str, float]:
    """Seconds from each phase's first line to the next phase's (to ``wall`` for the last), for
    a streamed run's log (``SECONDS TEXT`` lines); empty when a mark is missing, except the
    vLLM one (a run without ``--vllm-python`` has no such phase)."""
    starts: dict[str, float] = {}
    for line in lines:
        stamp, _, text = line.strip().partition(" ")
        for name, mark in PHASE_MARKS:
            if name not in starts and text.startswith(mark):
                starts[name] = 0.0 if not mark else float(stamp)
    if any(name not in starts for name in PHASE_NAMES if not name.startswith("vLLM")):
        return {}
    order = sorted(starts.items(), key=lambda item: item[1])
    ends = [at for _, at in order[1:]] + [wall]
    return {name: end - at for (name, at), end in zip(order, ends, strict=True)}


@dataclass
class ShapeRun:
    shape: str
    label: str
    model_bytes: int
    shards: int
    largest_shard: int
    designs: dict[str, Measured] = field(default_factory=dict)
    parts: dict[str, float] = field(default_factory=dict)
    parts_load: dict[str, str] = field(default_factory=dict)  # as Measured.load
    parts_cpu: dict[str, float] = field(default_factory=dict)  # as Measured.cpu_s


def _log(message: str) -> None:
    print(f"[bench-run] {message}", file=sys.stderr, flush=True)


def timed(argv: list[str], env: dict[str, str], poll: list[Path]) -> Measured:
    """Run ``argv`` under ``/usr/bin/time -v`` while polling the disk under ``poll``."""
    peak = 0
    stop = threading.Event()

    def watch() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, disk_usage(*(p for p in poll if p.exists())))
            time.sleep(0.2)

    with tempfile.TemporaryDirectory(prefix="bench-run-time-") as tmp:
        report, output = Path(tmp) / "time.txt", Path(tmp) / "out.txt"
        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        before = os.getloadavg()[0]
        start = time.perf_counter()
        with output.open("w") as out:
            child = subprocess.Popen(
                [TIME_BIN, "-v", "-o", str(report), *argv],
                env={**env, "PYTHONUNBUFFERED": "1"},
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                errors="replace",
            )
            assert child.stdout is not None
            for line in child.stdout:  # each line with the seconds since the start: a timeline
                out.write(f"{time.perf_counter() - start:7.1f} {line}")
            code = child.wait()
        wall = time.perf_counter() - start
        stop.set()
        watcher.join()
        timings = report.read_text().splitlines()
        rss_kb = next(
            int(line.rsplit(":", 1)[1]) for line in timings if "Maximum resident set size" in line
        )
        cpu = sum(
            float(line.rsplit(":", 1)[1])
            for line in timings
            if "User time (seconds)" in line or "System time (seconds)" in line
        )
        lines = output.read_text(errors="replace").splitlines()
    if os.environ.get("BENCH_TIMELINE"):
        _log("timeline:\n" + "\n".join(lines))
    spent = phases(lines, wall)
    said = [
        line[8:]
        for line in lines
        if line[8:].startswith(("streamed run:", "  real model scored", "layerwise: embedded"))
    ]
    load = f"{before:.1f} -> {os.getloadavg()[0]:.1f}"
    tail = "\n".join(lines[-8:])
    return Measured(wall, rss_kb * 1024, peak, code, tail, said, load, cpu, spent)


# One layer-by-layer float32 pass of the family's parity prompts (the quick ones, or every one)
# through the source shards.
FORWARD_PASS = """
import json
from pathlib import Path
from transformers import AutoTokenizer
from reranker_seqcls.check.layerwise import LayerwiseScorer
from reranker_seqcls.check.scope import real_pairs
from reranker_seqcls.recipes.prompts import official_prompt
from reranker_seqcls.recipes.resolve import resolve_recipe
from reranker_seqcls.check.streamed import source_shards
from reranker_seqcls.steps import load_check_pairs
src = Path({source!r})
recipe = resolve_recipe(source_name={repo!r}, source_dir=src)
tok = AutoTokenizer.from_pretrained(str(src))
pairs = load_check_pairs(recipe, None)
pairs = real_pairs(pairs, full={full!r}).of(pairs)
prompts = [official_prompt(tok, recipe, p.query, p.document, p.instruction).ids for p in pairs]
print("prompt tokens:", sum(len(p) for p in prompts), "pairs:", len(prompts))
scorer = LayerwiseScorer(json.loads((src / "config.json").read_text()), prompts,
                         pad_id=tok.pad_token_id or 0, pack=not {full!r})
print("positions computed:", scorer.positions)
for shard in source_shards(src):
    scorer.feed(shard)
print(scorer.final_hidden().shape)
"""
QUICK_PASS = "float32 forward pass of the quick pairs"
FULL_PASS = "float32 forward pass of every pair"


def _python(code: str, env: dict[str, str], result: ShapeRun, part: str) -> float:
    before = os.getloadavg()[0]
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], env=env, check=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    result.parts_load[part] = f"{before:.1f} -> {os.getloadavg()[0]:.1f}"
    result.parts_cpu[part] = (after.ru_utime - used.ru_utime) + (after.ru_stime - used.ru_stime)
    return wall


def bench_shape(
    name: str,
    cache: Path,
    shard_bytes: int,
    work: Path,
    designs: list[str],
    full_pass: bool = True,
    before: Path | None = None,
    vllm_python: Path | None = None,
    real_vocab: bool = False,
    repeat: int = 1,
) -> ShapeRun:
    shape = SHAPES[name]
    source, built = cached_checkpoint(shape, cache, max_shard_bytes=shard_bytes)
    if real_vocab:  # the same weights with the real Qwen3 tokenizer (18.7 MB tokenizer.json)
        source = with_real_vocabulary(shape, source, cache)
        name = f"{name}-real-vocab"
    shards = sorted(source.glob("*.safetensors"))
    result = ShapeRun(
        name,
        f"{shape.label}, real Qwen3 vocabulary" if real_vocab else shape.label,
        sum(p.stat().st_size for p in shards),
        len(shards),
        max(p.stat().st_size for p in shards),
    )
    _log(
        f"{name}: {result.model_bytes / GB:.2f} GB in {len(shards)} shard(s) "
        f"({'built' if built else 'cached'})"
    )
    repo = f"bench-org/Qwen3-Reranker-{name}"
    blobs = work / "hub-blobs"  # this bench's own (a --cache shared by several benches)
    shutil.rmtree(blobs, ignore_errors=True)
    server = make_server(blob_dir=blobs)
    server.add_org("bench-org", [TEST_USER])
    with server:
        files = {
            p.name: p
            for p in sorted(source.iterdir())
            if p.is_file() and not p.name.startswith(".")
        }
        server.seed_repo(repo, files)
        env_root = work / name
        shutil.rmtree(env_root, ignore_errors=True)

        def env_for(label: str, tree: Path = REPO_ROOT) -> tuple[dict[str, str], list[Path]]:
            home, tmp = env_root / label / "hf_home", env_root / label / "tmp"
            tmp.mkdir(parents=True)
            env = make_hub_env(server.url, home)
            env["TMPDIR"] = str(tmp)
            env["PYTHONPATH"] = f"{tree / 'src'}:{tree}"
            return env, [home, tmp]

        # each design of --before's source tree right before the same design of this one;
        # with --repeat, rounds of every design and the parts, each judged by its own parts
        ordered = [d for d in designs if d != "parts"] + (["parts"] if "parts" in designs else [])
        runs = [
            (d, tree, round_label(k))
            for k in range(repeat)
            for d in ordered
            for tree in ([before, None] if before is not None and d != "parts" else [None])
        ]
        for design, tree, suffix in runs:
            if design == "parts":
                measure_parts(result, repo, source, env_for, server, full_pass, suffix)
                shutil.rmtree(env_root, ignore_errors=True)
                continue
            if tree is not None:
                _log(f"{name}: {design} with the source tree {tree}")
            env, poll = env_for(design, tree or REPO_ROOT)
            label = (f"{design} (before)" if tree is not None else design) + suffix
            argv = [sys.executable, "-m", "reranker_seqcls", "run", "--model", repo,
                    "--target", f"{TEST_USER}/{name}-{design}"]  # fmt: skip
            if design.startswith("check-local"):
                converted = env_root / design / "converted"
                subprocess.run(
                    [sys.executable, "-m", "reranker_seqcls", "convert", str(source),
                     str(converted), "--preset", "qwen3-reranker"],
                    env=env, check=True, capture_output=True,
                )  # fmt: skip
                argv = [sys.executable, "-m", "reranker_seqcls", "check", str(source),
                        str(converted), "--preset", "qwen3-reranker"]  # fmt: skip
            if design in ("whole", "whole-full"):
                out = env_root / design / "output"
                argv += ["--output-dir", str(out)]
                poll.append(out)
            if design == "whole-full":
                argv += ["--check-memory", "64GB"]
            if design.endswith("-full"):
                argv += ["--full-check"]
            if design.endswith("-vllm"):
                argv += ["--vllm-python", str(vllm_python)]
            _log(f"{name}: run ({design}) ...")
            measured = timed(argv, env, poll)
            _log(
                f"{name} {design}: exit {measured.returncode}, {measured.wall_s:.0f} s, "
                f"RSS {measured.rss_bytes / GB:.2f} GB, disk {measured.peak_disk / GB:.2f} GB"
            )
            if measured.returncode != 0:
                _log(measured.log_tail)
            result.designs[label] = measured
            shutil.rmtree(env_root / design, ignore_errors=True)
            if not design.startswith("check-local"):
                server.delete_repo(f"{TEST_USER}/{name}-{design}")

        shutil.rmtree(env_root, ignore_errors=True)
    return result


def round_label(k: int) -> str:
    """The suffix of round ``k``'s designs and parts (``--repeat``): none for the first."""
    return "" if k == 0 else f" #{k + 1}"


def measure_parts(
    result: ShapeRun,
    repo: str,
    source: Path,
    env_for: Callable[[str], tuple[dict[str, str], list[Path]]],
    server: LoopbackHubServer,
    full_pass: bool,
    suffix: str,
) -> None:
    """The parts a run is judged against (fetch once, upload once, the real-model passes),
    named with the round's ``suffix``."""
    env, (home, _) = env_for("parts")
    fetch_dir = home.parent / "fetched"
    part = "fetch once"
    result.parts[part + suffix] = _python(
        "from huggingface_hub import snapshot_download\n"
        f"snapshot_download({repo!r}, local_dir={str(fetch_dir)!r})\n",
        env,
        result,
        part + suffix,
    )
    scratch = f"{TEST_USER}/upload-once"
    part = "upload once"
    result.parts[part + suffix] = _python(
        "from huggingface_hub import HfApi\n"
        "api = HfApi()\n"
        f"api.create_repo({scratch!r})\n"
        f"api.upload_folder(repo_id={scratch!r}, folder_path={str(source)!r})\n",
        env,
        result,
        part + suffix,
    )
    server.delete_repo(scratch)
    for part, full in ((QUICK_PASS, False), (FULL_PASS, True))[: 2 if full_pass else 1]:
        result.parts[part + suffix] = _python(
            FORWARD_PASS.format(source=str(source), repo=repo, full=full),
            env,
            result,
            part + suffix,
        )


def wall_target(design: str, parts: dict[str, float], measured: Measured) -> float | None:
    """The wall time a design is judged against (issue 21's acceptance): the quick run 1.3 x
    (fetch + upload) + 20 s, the full run 1.3 x (fetch + upload + every pair's pass), a local
    quick check of the 0.6B 20 s; a run with ``--vllm-python`` adds its own vLLM phase (the
    acceptance measures without it and reports vLLM's start-up as a part of its own)."""
    design, _, k = design.partition(" #")  # a --repeat round's design: its round's parts
    suffix = f" #{k}" if k else ""
    design = design.removesuffix(" (before)")
    if design.endswith("-vllm"):
        vllm = measured.phases.get(PHASE_NAMES[3])
        quick = wall_target("streamed" + suffix, parts, measured)
        return None if vllm is None or quick is None else quick + vllm
    if design == "check-local":
        return 20.0
    fetch, upload = parts.get("fetch once" + suffix), parts.get("upload once" + suffix)
    if fetch is None or upload is None:
        return None
    transfer = fetch + upload
    if design.endswith("-full"):
        full = parts.get(FULL_PASS + suffix)
        return None if full is None else 1.3 * (transfer + full)
    return None if design.startswith("check-local") else 1.3 * transfer + 20


def render(results: list[ShapeRun], facts: dict[str, str], versions: dict[str, str]) -> str:
    lines = ["# `run` and `check`: the quick check beside the full one", ""]
    lines += ["Written by `bench/bench_run.py` (see its docstring for what is measured).", ""]
    lines += ["| machine | |", "|---|---|"] + [f"| {k} | {v} |" for k, v in facts.items()]
    lines += ["", "| package | version |", "|---|---|"] + [
        f"| {k} | {v} |" for k, v in versions.items()
    ]
    lines += ["", "| shape | model | shards (largest) | design | exit | peak disk | disk target "
              "(2 x largest + 0.5 GB) | peak RSS (target 1.5 GB) | wall | wall target "
              "| CPU s | load before -> after |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in results:
        target = 2 * r.largest_shard + 0.5 * GB
        for design, m in r.designs.items():
            goal = wall_target(design, r.parts, m)
            wall = (
                "-" if goal is None else f"{goal:.0f} s {'met' if m.wall_s <= goal else 'missed'}"
            )
            disk = (
                "-"
                if design.startswith("check-local")
                else f"{target / GB:.2f} GB {'met' if m.peak_disk <= target else 'missed'}"
            )
            rss = "met" if m.rss_bytes <= 1.5 * GB else "missed"
            if design.endswith("-vllm"):  # the largest process: vLLM's, outside the target
                rss = "(vLLM's process; the target is without it)"
            lines.append(
                f"| {r.label} | {r.model_bytes / GB:.2f} GB "
                f"| {r.shards} ({r.largest_shard / GB:.2f} GB) "
                f"| {design} | {m.returncode} | {m.peak_disk / GB:.2f} GB | {disk} "
                f"| {m.rss_bytes / GB:.2f} GB {rss} | {m.wall_s:.0f} s | {wall} "
                f"| {f'{m.cpu_s:.0f}' if m.cpu_s else '-'} | {m.load or '-'} |"
            )
    said = [
        (r.label, d, line) for r in results for d, m in r.designs.items() for line in m.run_said
    ]
    if said:
        lines += ["", "What the runs logged about themselves:", ""]
        lines += [f"- {label} ({design}): `{line}`" for label, design, line in said]
    timed_runs = [(r.label, d, m) for r in results for d, m in r.designs.items() if m.phases]
    if timed_runs:
        lines += [
            "",
            "Where the streamed runs' wall time went (seconds from the line that opens "
            "each phase in the run's log to the next one's; the twin phase is the consumer "
            "check on the structural twin, vLLM's inside it when given):",
            "",
        ]
        lines += [
            "| shape | design | wall | " + " | ".join(PHASE_NAMES) + " |",
            "|---|---|---|" + "---|" * len(PHASE_NAMES),
        ]
        for label, design, m in timed_runs:
            cells = [f"{m.phases[n]:.1f}" if n in m.phases else "-" for n in PHASE_NAMES]
            lines.append(f"| {label} | {design} | {m.wall_s:.0f} s | " + " | ".join(cells) + " |")
    lines += ["", "| shape | part | seconds | CPU s | load before -> after |"]
    lines += ["|---|---|---|---|---|"]
    for r in results:
        for part, secs in r.parts.items():
            cpu = f"{r.parts_cpu[part]:.1f}" if part in r.parts_cpu else "-"
            lines.append(
                f"| {r.label} | {part} | {secs:.1f} | {cpu} | {r.parts_load.get(part, '-')} |"
            )
    return "\n".join(lines) + "\n"


def write_results(results: list[ShapeRun], cache: Path, path: Path) -> None:
    path.write_text(render(results, machine_facts(cache), package_versions()))
    rows = [
        {**r.__dict__, "designs": {k: v.__dict__ for k, v in r.designs.items()}} for r in results
    ]
    path.with_suffix(".json").write_text(json.dumps(rows, indent=2) + "\n")


def read_results(path: Path) -> list[ShapeRun]:
    json_path = path.with_suffix(".json")
    if not json_path.is_file():
        return []
    runs = []
    for row in json.loads(json_path.read_text()):
        designs = {k: Measured(**v) for k, v in row.pop("designs").items()}
        runs.append(ShapeRun(**row, designs=designs))
    return runs


def merge(results: list[ShapeRun], new: ShapeRun) -> list[ShapeRun]:
    """``results`` with ``new``'s designs and parts replacing those it measured again."""
    for old in results:
        if old.shape == new.shape:
            old.designs |= new.designs
            old.parts |= new.parts
            return results
    return [*results, new]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--shape", action="append", choices=sorted(SHAPES), help="repeatable (default 0.6b)"
    )
    parser.add_argument("--large", action="store_true", help="add the 4B and 8B shapes")
    parser.add_argument(
        "--design",
        action="append",
        choices=[
            "streamed",
            "streamed-full",
            "streamed-vllm",
            "whole",
            "whole-full",
            "check-local",
            "check-local-full",
            "parts",
        ],
        help="repeatable (default: streamed, streamed-full and parts; for the 0.6B shapes also "
        "whole, whole-full and the local checks)",
    )
    parser.add_argument(
        "--max-shard-size",
        type=int,
        default=None,
        help="bytes (default: 100 MB for 0.6b/tiny, 5 GB otherwise)",
    )
    parser.add_argument(
        "--no-full-pass",
        action="store_true",
        help="leave out the part 'float32 forward pass of every pair' (8.5 min on the 8B)",
    )
    parser.add_argument(
        "--before",
        type=Path,
        default=None,
        help="another source tree (git archive REV | tar -x -C DIR): each design runs with it "
        "too, right before this tree's, as 'DESIGN (before)'",
    )
    parser.add_argument(
        "--vllm-python",
        type=Path,
        default=REPO_ROOT / ".venv-vllm" / "bin" / "python",
        help="the Python with vLLM for the design streamed-vllm (default: make vllm-venv's; "
        "the 0.6b shape runs that design by default when this Python exists)",
    )
    parser.add_argument(
        "--real-vocab",
        action="store_true",
        help="the shapes' weights with the real Qwen3 vocabulary (tests/real_vocab.py) instead "
        "of their tiny synthetic tokenizer",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="rounds of every design (and --before's) and the parts, one after the other; "
        "each round's runs are judged by its own parts (rows 'DESIGN #K'): one run on a "
        "shared host spreads by 15-20 %%",
    )
    parser.add_argument("--cache", type=Path, default=BENCH_DIR / ".cache")
    parser.add_argument("--work", type=Path, default=BENCH_DIR / ".cache" / "run-work")
    parser.add_argument("--results", type=Path, default=BENCH_DIR / "RUN_RESULTS.md")
    parser.add_argument(
        "--append",
        action="store_true",
        help="keep the shapes and designs already in the results (its .json), adding these",
    )
    args = parser.parse_args(argv)
    shapes = args.shape or ["0.6b"]
    if args.large:
        shapes += [s for s in ("4b", "8b") if s not in shapes]
    results = read_results(args.results) if args.append else []
    for name in shapes:
        designs = args.design or (
            ["streamed", "streamed-full", "parts", "whole", "whole-full", "check-local",
             "check-local-full"]
            if name.startswith("0.6b")
            else ["streamed", "streamed-full", "parts"]
        )  # fmt: skip
        if args.design is None and name == "0.6b" and args.vllm_python.exists():
            designs.insert(1, "streamed-vllm")
        shard_bytes = args.max_shard_size or (
            100 * 10**6 if name in ("tiny", "0.6b", "0.6b-untied") else 5 * 10**9
        )
        measured = bench_shape(
            name, args.cache, shard_bytes, args.work, designs, full_pass=not args.no_full_pass,
            before=args.before, vllm_python=args.vllm_python, real_vocab=args.real_vocab,
            repeat=args.repeat,
        )  # fmt: skip
        results = merge(results, measured)
        write_results(results, args.cache, args.results)  # after each shape: a long run
        _log(f"wrote {args.results}")  # that stops early keeps what it measured
    return 0 if all(m.returncode == 0 for r in results for m in r.designs.values()) else 1


if __name__ == "__main__":
    assert TEST_TOKEN  # the loopback fixtures' token authenticates the runs
    sys.exit(main())
