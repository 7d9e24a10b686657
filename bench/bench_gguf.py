"""GGUF rows: write time and file size per type, and llama-server's scoring time, on the
Qwen3-Reranker-0.6B shape (random bfloat16 weights, ``synthetic.py``); the 8B's GGUF sizes and
the disk of ``run --gguf q8_0`` forecast from its shape.

    .venv/bin/python bench/bench_gguf.py [--shape 0.6b] [--types f16,q8_0]

Needs llama-server (``make llama-server``, or ``$RERANKER_SEQCLS_LLAMA_SERVER``). Writes
``bench/GGUF_RESULTS.md`` and ``GGUF_RESULTS.json``. Scoring time is llama-server's start
(model load) plus ``/v1/rerank`` over the built-in pairs without an instruction, one request per
query group, with ``-t 2``, as the check runs it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
sys.path[:0] = [str(REPO_ROOT), str(BENCH_DIR)]

from bench_convert import machine_facts, package_versions  # noqa: E402
from synthetic import HUB_SHARD_BYTES, SHAPES, Shape, cached_checkpoint  # noqa: E402

from reranker_seqcls.check.pairs import BUILTIN_PAIRS  # noqa: E402
from reranker_seqcls.gguf.row import score_gguf  # noqa: E402
from reranker_seqcls.gguf.server import LLAMA_SERVER_ENV, locate_llama_server  # noqa: E402
from reranker_seqcls.gguf.types import GGUF_TYPES, parse_gguf_types  # noqa: E402
from reranker_seqcls.gguf.writer import write_gguf  # noqa: E402
from reranker_seqcls.recipes.presets import PRESETS  # noqa: E402

# Vocabulary, merges and template: measured 5.6 MB on the real Qwen vocabulary (tests); the
# synthetic tokenizer is smaller, so the forecast uses the real figure.
METADATA_BYTES = 6 * 10**6


def forecast_gguf_bytes(shape: Shape, type_name: str) -> int:
    """The GGUF's size: each backbone tensor in its type (norms in float32, no LM head), the
    two-row float32 head, and the metadata."""
    import gguf

    qtype = getattr(gguf.GGMLQuantizationType, GGUF_TYPES[type_name].ggml_type)
    block, type_size = gguf.GGML_QUANT_SIZES[qtype]
    total = METADATA_BYTES + 2 * shape.hidden * 4
    for name, dims in shape.tensors():
        n = 1
        for d in dims:
            n *= d
        if name == "lm_head.weight":
            continue
        total += 4 * n if len(dims) == 1 else n // block * type_size
    return total


def run(shape_name: str, types: list[str]) -> dict:
    shape = SHAPES[shape_name]
    built = REPO_ROOT / ".cache/llama-build/bin/llama-server"  # `make llama-server`
    binary = locate_llama_server(None if os.environ.get(LLAMA_SERVER_ENV) else built)
    if binary is None:
        raise SystemExit("no llama-server: run `make llama-server` or set the env variable")
    source, _ = cached_checkpoint(shape, BENCH_DIR / ".cache", max_shard_bytes=HUB_SHARD_BYTES)
    pairs = [p for p in BUILTIN_PAIRS if p.instruction is None]
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-gguf-") as tmp:
        converted = Path(tmp) / "converted"
        subprocess.run(
            [sys.executable, "-m", "reranker_seqcls", "convert", str(source), str(converted),
             "--preset", "qwen3-reranker"],
            check=True, capture_output=True,
        )  # fmt: skip
        for name in types:
            start = time.monotonic()
            written = write_gguf(converted, Path(tmp) / f"m-{name}.gguf", GGUF_TYPES[name],
                                 PRESETS["qwen3-reranker"], name="bench")  # fmt: skip
            write_s = time.monotonic() - start
            # a long prompt bound: the synthetic tokenizer splits text finely
            _, score_s = score_gguf(binary, written.path, pairs, written.rerank_template, 2048)
            rows.append(
                {
                    "type": name,
                    "bytes": written.bytes,
                    "forecast_bytes": forecast_gguf_bytes(shape, name),
                    "write_s": round(write_s, 1),
                    "llama_server_start_and_score_s": round(score_s, 1),
                    "pairs": len(pairs),
                }
            )
            written.path.unlink()
            print(json.dumps(rows[-1]), flush=True)
    source_bytes = sum(f.stat().st_size for f in source.glob("*.safetensors"))
    eight = SHAPES["8b"]
    eight_source = sum(2 * _numel(d) for _, d in eight.tensors())
    forecast = {
        "8b_source_bytes": eight_source,
        **{f"8b_{t}_bytes": forecast_gguf_bytes(eight, t) for t in ("f16", "q8_0")},
    }
    # run --gguf takes the whole-snapshot road: the snapshot, the converted checkpoint (links
    # to it plus the rewritten head shard) and the GGUFs.
    forecast["8b_run_gguf_q8_0_disk_bytes"] = (
        eight_source + forecast["8b_q8_0_bytes"] + 2 * eight.hidden * 2 + 10**8
    )
    return {"shape": shape_name, "source_bytes": source_bytes, "rows": rows, **forecast}


def _numel(dims: tuple[int, ...]) -> int:
    n = 1
    for d in dims:
        n *= d
    return n


def render(result: dict, facts: dict, versions: dict) -> str:
    gb = 1e9
    lines = [
        "# GGUF results",
        "",
        f"`bench/bench_gguf.py` on the {SHAPES[result['shape']].label} shape (random bfloat16 "
        f"weights, {result['source_bytes'] / gb:.2f} GB of safetensors), this machine: "
        f"{facts.get('CPU', '?')}, {facts.get('cores', '?')} cores (shared with other work).",
        "",
        "| type | file | forecast | write | llama-server start + score |",
        "|---|---|---|---|---|",
    ]
    for row in result["rows"]:
        lines.append(
            f"| {row['type']} | {row['bytes'] / gb:.3f} GB | {row['forecast_bytes'] / gb:.3f} GB "
            f"| {row['write_s']} s | {row['llama_server_start_and_score_s']} s "
            f"({row['pairs']} pairs) |"
        )
    lines += [
        "",
        "## 8B forecast (from its shape; `forecast_gguf_bytes`)",
        "",
        f"- source (bfloat16 safetensors): {result['8b_source_bytes'] / gb:.2f} GB",
        f"- GGUF f16: {result['8b_f16_bytes'] / gb:.2f} GB; q8_0: "
        f"{result['8b_q8_0_bytes'] / gb:.2f} GB",
        f"- `run --gguf q8_0` disk peak (whole snapshot + converted + GGUF): "
        f"{result['8b_run_gguf_q8_0_disk_bytes'] / gb:.2f} GB, against the streamed run's "
        "9.90 GB without GGUF (`RUN_RESULTS.md`): `--gguf` does not stream yet.",
        "",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in sorted(versions.items())),
        "",
    ]
    return "\n".join(lines)


def _version(name: str) -> str:
    from importlib import metadata

    return metadata.version(name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shape", default="0.6b", choices=sorted(SHAPES))
    parser.add_argument("--types", default="f16,q8_0")
    args = parser.parse_args(argv)
    types = [t.name for t in parse_gguf_types(args.types)]
    result = run(args.shape, types)
    (BENCH_DIR / "GGUF_RESULTS.json").write_text(json.dumps(result, indent=2) + "\n")
    (BENCH_DIR / "GGUF_RESULTS.md").write_text(
        render(result, machine_facts(BENCH_DIR), {**package_versions(), "gguf": _version("gguf")})
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
