"""Issue 9: property-based fuzzing of everything a source checkpoint controls.

Hypothesis generates safetensors headers (mutated from a real shard and random), index files,
file names and links (including a fake Hub cache with ``blobs/`` and ``snapshots/`` symlinks and
another model's blobs beside it), configs and tokenizer configs. Every generated case runs
``convert`` and asserts:

- exit 0 or 2, never 4, never a traceback; at most a few lines of output, the last one the error;
- nothing created, changed or deleted anywhere in the test tree outside OUTPUT (every file's
  bytes hashed, links read, temp directories counted);
- on exit 2 no OUTPUT at all; on exit 0 a complete OUTPUT whose shards the safetensors library
  accepts and whose index names exactly those shards.

The bulk runs the CLI in-process (``cli.main`` catching ``SystemExit``, stderr captured): a
subprocess per case would cost ~2 s of imports. A small sample runs the real CLI in a subprocess.

Profiles (``HYPOTHESIS_PROFILE``): ``ci`` (default, the normal suite) and ``deep`` (ten times the
examples, ``make fuzz-deep``). Counts per profile are in :data:`EXAMPLES` and docs/design.md.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reranker_seqcls.cli import main
from tests.conftest import run_cli
from tests.hostile import INDEX, fake_hub_snapshot, read_header, tree_state, write_raw

# in-process examples per fuzz test, and subprocess examples, per profile
EXAMPLES = {"ci": (500, 8), "deep": (5000, 80)}
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")
IN_PROCESS, SUBPROCESS = EXAMPLES[PROFILE]
for _name, (_n, _) in EXAMPLES.items():
    settings.register_profile(
        _name,
        max_examples=_n,
        deadline=None,
        database=None,
        print_blob=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
settings.load_profile(PROFILE)

QWEN = ["--preset", "qwen3-reranker"]
HEAD_SHARD = "model-00001-of-00002.safetensors"
OTHER_SHARD = "model-00002-of-00002.safetensors"
OTHER_REPO = "someone/other-model"
MAX_LINES = 10  # a success logs ~6 lines (recipe, tokens, shards, result); a failure adds one
CASE_TIMEOUT_S = 30


@dataclass
class Arena:
    """The whole tree a case may touch: a base model, victims outside the source, a fake cache."""

    root: Path
    base: Path  # pristine tiny model, copied into work/ for each case
    victim: Path  # a safetensors file outside any source
    secret: Path  # a file whose content must never reach OUTPUT
    other_blob: Path  # another cached model's shard blob
    other_snapshot: Path

    @property
    def work(self) -> Path:
        return self.root / "work"

    def fresh_work(self) -> Path:
        shutil.rmtree(self.work, ignore_errors=True)
        self.work.mkdir()
        return self.work


@pytest.fixture(scope="module")
def arena(tiny_model, tmp_path_factory) -> Arena:
    root = tmp_path_factory.mktemp("fuzz-arena")
    base = root / "base-model"
    shutil.copytree(tiny_model("qwen3", tied=True, num_shards=2), base)
    victim = root / "victim" / "other.safetensors"
    victim.parent.mkdir()
    victim.write_bytes((base / OTHER_SHARD).read_bytes())
    secret = root / "environ"
    secret.write_text("HF_TOKEN=hf_fuzz_secret_never_published\n")
    other_snapshot = fake_hub_snapshot(base, root / "cache", OTHER_REPO, sha="b" * 40)
    other_blob = (other_snapshot / OTHER_SHARD).resolve()
    return Arena(root, base, victim, secret, other_blob, other_snapshot)


# --------------------------------------------------------------------------- running a case


class CaseTimeout(BaseException):
    """A case that blocks (e.g. reading a FIFO) fails the test instead of hanging the suite."""


@contextlib.contextmanager
def _time_limit(seconds: int) -> Iterator[None]:
    def expire(_sig, _frame):
        raise CaseTimeout(f"case ran over {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def run_in_process(argv: list[str]) -> tuple[int, str]:
    """``reranker-seqcls ARGV`` in this process: (exit code, stderr)."""
    err, out = io.StringIO(), io.StringIO()
    code: object = None
    with (
        contextlib.redirect_stderr(err),
        contextlib.redirect_stdout(out),
        _time_limit(CASE_TIMEOUT_S),
    ):
        try:
            main(argv)
        except SystemExit as exc:
            code = exc.code
    assert isinstance(code, int), code
    return code, err.getvalue()


def check_case(
    arena: Arena,
    source: Path,
    out: Path,
    args: list[str],
    *,
    runner: Callable[[list[str]], tuple[int, str]] = run_in_process,
) -> int:
    """Run convert on the prepared case and assert every property of the module docstring."""
    before = tree_state(arena.root, skip=out)
    out_before = _state_of(out)
    code, stderr = runner(["convert", str(source), str(out), *args])
    lines = stderr.strip().splitlines()
    assert code in (0, 2), stderr
    assert "Traceback" not in stderr and "internal error" not in stderr, stderr
    assert len(lines) <= MAX_LINES, stderr
    assert tree_state(arena.root, skip=out) == before, stderr
    if code == 2:
        assert lines and lines[-1].startswith("error: "), stderr
        assert _state_of(out) == out_before, stderr
    else:
        _assert_complete_output(out)
        secret = arena.secret.read_bytes()
        for path in out.rglob("*"):
            assert not path.is_file() or secret not in path.read_bytes(), path
    return code


def _state_of(out: Path) -> object:
    """OUTPUT as it was before the case: absent, a file, a link or a directory tree."""
    if out.is_dir() and not out.is_symlink():
        return tree_state(out)
    if out.is_symlink():
        return ("link", os.readlink(out))
    return out.read_bytes() if out.exists() else None


def _assert_complete_output(out: Path) -> None:
    from safetensors import safe_open

    index = json.loads((out / INDEX).read_text())
    shards = sorted(set(index["weight_map"].values()))
    on_disk = sorted(p.name for p in out.glob("*.safetensors"))
    assert shards == on_disk
    held: dict[str, str] = {}
    for shard in shards:
        with safe_open(str(out / shard), framework="numpy") as handle:
            for name in handle.keys():  # noqa: SIM118 - safe_open is not a mapping
                assert held.setdefault(name, shard) == shard
    assert held == index["weight_map"]
    config = json.loads((out / "config.json").read_text())
    assert config["architectures"] == ["Qwen3ForSequenceClassification"]
    assert "auto_map" not in config
    assert (out / "reranker_seqcls.json").is_file()


def local_source(arena: Arena) -> Path:
    return shutil.copytree(arena.base, arena.fresh_work() / "Qwen3-Reranker-fuzz")


def hub_source(arena: Arena) -> Path:
    """A snapshot in a fake cache under work/, beside the arena's other cached model."""
    return fake_hub_snapshot(arena.base, arena.fresh_work() / "cache", "qwen/Qwen3-Reranker-x")


def replace_with_file(path: Path, content: bytes) -> None:
    """Write ``content`` at ``path`` without writing through a Hub snapshot's blob link."""
    if path.is_symlink():
        path.unlink()
    path.write_bytes(content)


# --------------------------------------------------------------------------- strategies

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**64), max_value=2**64)
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=12)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=8,
)
DTYPES = [
    "F32",
    "F16",
    "BF16",
    "F64",
    "I64",
    "I32",
    "I16",
    "I8",
    "U8",
    "BOOL",
    "F8_E4M3",
    "F8_E5M2",
    "F8_E8M0",
    "U16",
    "U32",
    "U64",
    "C64",
    "F4",
    "f32",
    "",
    "X",
]
offsets = st.integers(min_value=-16, max_value=300_000) | st.integers(
    min_value=-(2**63), max_value=2**64
)
header_ops = st.one_of(
    st.tuples(st.just("dtype"), st.integers(0, 40), st.sampled_from(DTYPES) | st.text(max_size=6)),
    st.tuples(
        st.just("shape"),
        st.integers(0, 40),
        st.lists(st.integers(-2, 2**40), max_size=4) | json_values,
    ),
    st.tuples(st.just("offsets"), st.integers(0, 40), st.lists(offsets, min_size=0, max_size=3)),
    st.tuples(st.just("shift"), st.integers(0, 40), st.integers(-64, 64)),
    st.tuples(st.just("info"), st.integers(0, 40), json_values),
    st.tuples(st.just("extra_field"), st.integers(0, 40), json_values),
    st.tuples(st.just("drop"), st.integers(0, 40)),
    st.tuples(
        st.just("rename"),
        st.integers(0, 40),
        st.sampled_from(
            [
                "model.embed_tokens.weight",
                "lm_head.weight",
                "score.weight",
                "model.norm.weight",
                "__metadata__",
            ]
        )
        | st.text(max_size=10),
    ),
    st.tuples(st.just("dup"), st.integers(0, 40)),
    st.tuples(
        st.just("metadata"), json_values | st.dictionaries(st.text(max_size=5), st.text(max_size=5))
    ),
    st.tuples(st.just("truncate"), st.integers(1, 400_000)),
    st.tuples(st.just("append"), st.binary(min_size=1, max_size=64)),
    st.tuples(st.just("length_field"), st.integers(0, 2**64 - 1)),
    st.tuples(st.just("raw_header"), st.binary(max_size=64)),
    st.tuples(st.just("header_json"), json_values),
    st.tuples(st.just("pad_header"), st.integers(1, 64)),
)


_EDITS_INFO = {"dtype", "shape", "offsets", "shift", "extra_field"}
_PER_TENSOR = {"dtype", "shape", "offsets", "shift", "info", "extra_field", "drop", "rename", "dup"}


def apply_header_ops(path: Path, ops: list[tuple]) -> None:
    """Apply ``header_ops`` to a real shard: edits of its parsed header, then raw bytes."""
    header, data = read_header(path)
    raw_header: bytes | None = None
    length_field: int | None = None
    names = [k for k in header if k != "__metadata__"]
    dup: str | None = None
    for op, *params in ops:
        name = names[params[0] % len(names)] if op in _PER_TENSOR and names else None
        if name is not None and not (isinstance(header, dict) and name in header):
            continue  # dropped, renamed or replaced by an earlier op
        if op in _EDITS_INFO and not isinstance(header[name], dict):
            continue
        if op == "metadata" and not isinstance(header, dict):
            continue
        if op == "dtype":
            header[name]["dtype"] = params[1]
        elif op == "shape":
            header[name]["shape"] = params[1]
        elif op == "offsets":
            header[name]["data_offsets"] = params[1]
        elif op == "shift" and _two_ints(header[name]):
            begin, end = header[name]["data_offsets"]
            header[name]["data_offsets"] = [begin + params[1], end + params[1]]
        elif op == "info":
            header[name] = params[1]
        elif op == "extra_field":
            header[name]["x"] = params[1]
        elif op == "drop":
            del header[name]
        elif op == "rename":
            header[params[1]] = header.pop(name)
        elif op == "dup":
            dup = name
        elif op == "metadata":
            header["__metadata__"] = params[0]
        elif op == "truncate":
            data = data[: max(0, len(data) - params[0])]
        elif op == "append":
            data += params[0]
        elif op == "length_field":
            length_field = params[0]
        elif op == "raw_header":
            raw_header = params[0]
        elif op == "header_json":
            header = params[0]
        elif op == "pad_header":
            raw_header = (raw_header or json.dumps(header).encode()) + b" " * params[0]
    if raw_header is None:
        text = json.dumps(header)
        if dup is not None and isinstance(header, dict) and dup in header and text.endswith("}"):
            text = text[:-1] + ", " + json.dumps({dup: header[dup]})[1:-1] + "}"
        raw_header = text.encode()
    replace_with_file(path, b"")
    write_raw(path, raw_header, data, length=length_field)


def _two_ints(info: object) -> bool:
    offsets = info.get("data_offsets") if isinstance(info, dict) else None
    return isinstance(offsets, list) and len(offsets) == 2 and all(type(o) is int for o in offsets)


def _shard_names(arena: Arena) -> st.SearchStrategy[str]:
    other_rel = os.path.relpath(arena.other_blob, arena.root / "work" / "Qwen3-Reranker-fuzz")
    cache_rel = "../../../../../cache/" + os.path.relpath(arena.other_blob, arena.root / "cache")
    return st.one_of(
        st.sampled_from([HEAD_SHARD, OTHER_SHARD]),
        st.sampled_from(
            [
                f"./{OTHER_SHARD}",
                f".//{OTHER_SHARD}",
                f"{OTHER_SHARD}/",
                f"x/../{OTHER_SHARD}",
                f"/{OTHER_SHARD}",
                str(arena.victim),
                str(arena.other_blob),
                "../victim/other.safetensors",
                other_rel,
                cache_rel,
                "../" * 12 + "etc/passwd",
                "missing.safetensors",
                "config.json",
                "tokenizer.json",
                "model.safetensors.index.json",
                f"{OTHER_SHARD}\n",
                f"a\x00{OTHER_SHARD}",
                "sub/x.safetensors",
                "score.safetensors",
                "model.safetensors",
                ".",
                "",
                "..",
                "C:\\x.safetensors",
                "~/x.safetensors",
            ]
        ),
        st.text(max_size=20),
        json_values,
    )


# --------------------------------------------------------------------------- the fuzz tests


@given(data=st.data())
def test_fuzz_safetensors_headers(arena, data):
    """Mutated and random shard headers and bytes, in a local directory or a Hub snapshot."""
    hub = data.draw(st.booleans(), label="hub snapshot")
    source = hub_source(arena) if hub else local_source(arena)
    shard = data.draw(st.sampled_from([HEAD_SHARD, OTHER_SHARD]), label="shard")
    ops = data.draw(st.lists(header_ops, min_size=1, max_size=4), label="ops")
    apply_header_ops(source / shard, ops)
    check_case(arena, source, arena.work / "out", QWEN)


@given(data=st.data())
def test_fuzz_index_files(arena, data):
    """Weight maps whose shard names escape, repeat, collide or are not names at all."""
    hub = data.draw(st.booleans(), label="hub snapshot")
    source = hub_source(arena) if hub else local_source(arena)
    index = json.loads((arena.base / INDEX).read_text())
    names = _shard_names(arena)
    weight_map = index["weight_map"]
    for tensor in data.draw(st.lists(st.sampled_from(sorted(weight_map)), max_size=4), label="t"):
        weight_map[tensor] = data.draw(names, label=f"shard of {tensor}")
    shape = data.draw(st.sampled_from(["index", "weight_map", "top", "bytes", "gone"]), label="k")
    if shape == "weight_map":
        index["weight_map"] = data.draw(json_values, label="weight_map")
    elif shape == "top":
        index = data.draw(json_values, label="index")
    if shape == "gone":
        (source / INDEX).unlink()
    else:
        raw = json.dumps(index).encode() if shape != "bytes" else data.draw(st.binary(max_size=64))
        replace_with_file(source / INDEX, raw)
    check_case(arena, source, arena.work / "out", QWEN)


LINKABLE = [
    "LICENSE",
    "NOTICE",
    "LICENSE-extra",
    "COPYING",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "config.json",
    "chat_template.jinja",
    "additional_chat_templates/extra.jinja",
    "vocab.json",
    HEAD_SHARD,
    OTHER_SHARD,
    "model.safetensors",
    "score.safetensors",
    INDEX,
    "pytorch_model.bin",
    "sub/model.safetensors",
]
KINDS = [
    "secret",
    "victim",
    "other_blob",
    "other_snapshot_dir",
    "inside",
    "dangling",
    "loop",
    "directory",
    "fifo",
    "empty",
    "garbage",
    "absolute_inside",
    "dir_link_outside",
]


def _place(arena: Arena, source: Path, name: str, kind: str, garbage: bytes) -> None:
    path = source / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if os.path.lexists(path):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
    targets = {
        "secret": arena.secret,
        "victim": arena.victim,
        "other_blob": arena.other_blob,
        "other_snapshot_dir": arena.other_snapshot,
        "inside": Path(os.path.relpath(source / "tokenizer.json", path.parent)),
        "dangling": Path("does-not-exist"),
        "loop": Path(path.name),
        "absolute_inside": source.resolve() / "LICENSE",
        "dir_link_outside": arena.victim.parent,
    }
    if kind in targets:
        path.symlink_to(targets[kind])
    elif kind == "directory":
        path.mkdir()
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "empty":
        path.write_bytes(b"")
    else:
        path.write_bytes(garbage)


@given(data=st.data())
def test_fuzz_file_names_and_links(arena, data):
    """Files replaced by links out of the source, into the cache, loops, FIFOs and directories;
    OUTPUT placed inside, around or on top of the source."""
    hub = data.draw(st.booleans(), label="hub snapshot")
    source = hub_source(arena) if hub else local_source(arena)
    for name, kind in data.draw(
        st.lists(st.tuples(st.sampled_from(LINKABLE), st.sampled_from(KINDS)), max_size=3),
        label="entries",
    ):
        _place(arena, source, name, kind, data.draw(st.binary(max_size=32), label="garbage"))
    where = data.draw(
        st.sampled_from(
            ["beside", "inside", "around", "file", "full", "link", "cache", "snapshot"]
        ),
        label="output",
    )
    args = list(QWEN)
    out = arena.work / "out"
    if where == "inside":
        out = source / "converted"
    elif where == "around":
        out, args = source.parent, [*args, "--force"]
    elif where == "file":
        out.write_text("not a directory")
    elif where == "full":
        out.mkdir()
        (out / "old.txt").write_text("old")
        args.append("--force")
    elif where == "link":
        out.symlink_to(arena.victim.parent, target_is_directory=True)
        args.append("--force")
    elif where == "cache":
        out, args = arena.other_snapshot.parent.parent / "converted", [*args, "--force"]
    elif where == "snapshot" and hub:
        out, args = source.parent.parent, [*args, "--force"]
    code = check_case(arena, source, out, args)
    if where in ("inside", "around", "file", "link") or (where == "snapshot" and hub):
        assert code == 2


CONFIG_KEYS = [
    "model_type",
    "architectures",
    "text_config",
    "final_logit_softcapping",
    "logit_scale",
    "logits_scaling",
    "tie_word_embeddings",
    "vocab_size",
    "auto_map",
    "custom_pipelines",
    "method",
    "classifier_from_token",
    "pad_token_id",
]
TOKENIZER_KEYS = ["pad_token", "unk_token", "eos_token", "auto_map", "tokenizer_class"]


def _deep(depth: int) -> str:
    return "[" * depth + "]" * depth


@given(data=st.data())
def test_fuzz_configs(arena, data):
    """config.json, tokenizer_config.json and --tokens with values of every type and shape."""
    source = local_source(arena)
    config = json.loads((arena.base / "config.json").read_text())
    special = st.sampled_from(
        [
            "qwen3",
            "Qwen3ForCausalLM",
            ["Qwen3ForCausalLM"],
            705,
            4,
            0,
            -1,
            1.0,
            "abc",
            True,
            False,
            None,
            2**63,
            1e308,
            [7],
            {"a": 1},
        ]
    )
    for key in data.draw(st.lists(st.sampled_from(CONFIG_KEYS), max_size=4), label="config keys"):
        config[key] = data.draw(special | json_values, label=key)
    form = data.draw(st.sampled_from(["object", "deep", "not_object", "bytes"]), label="form")
    if form == "object":
        text = json.dumps(config)
    elif form == "deep":
        depth = data.draw(st.integers(1, 200_000), label="depth")
        text = json.dumps(config)[:-1] + f', "deep": {_deep(depth)}}}'
    elif form == "not_object":
        text = json.dumps(data.draw(json_values, label="config"))
    else:
        text = data.draw(st.binary(max_size=64), label="raw").decode("latin-1")
    (source / "config.json").write_text(text, "latin-1" if form == "bytes" else "utf-8")

    tokenizer_config = json.loads((arena.base / "tokenizer_config.json").read_text())
    tok_values = st.sampled_from(
        [
            "<|endoftext|>",
            "<|im_end|>",
            "yes",
            "",
            None,
            5,
            {"content": "<|endoftext|>"},
            {"content": 3},
            ["x"],
        ]
    )
    for key in data.draw(st.lists(st.sampled_from(TOKENIZER_KEYS), max_size=3), label="tok keys"):
        tokenizer_config[key] = data.draw(tok_values | json_values, label=key)
    (source / "tokenizer_config.json").write_text(json.dumps(tokenizer_config))

    recipe = data.draw(st.sampled_from(["preset", "tokens", "tokens_raw"]), label="recipe")
    args = list(QWEN)
    if recipe != "preset":
        tokens = (
            json.dumps(
                data.draw(
                    st.lists(
                        st.sampled_from(["no", "yes", "a", " yes", ""]) | st.text(max_size=4),
                        max_size=3,
                    )
                )
            )
            if recipe == "tokens"
            else data.draw(st.text(max_size=12) | st.just(_deep(50_000)), label="tokens")
        )
        method = data.draw(st.sampled_from(["from_2_way_softmax", "no_post_processing"]))
        args = ["--tokens", tokens, "--method", method]
    check_case(arena, source, arena.work / "out", args)


def _run_subprocess(argv: list[str]) -> tuple[int, str]:
    result = run_cli(*argv, timeout=120)
    return result.returncode, result.stderr


@settings(max_examples=SUBPROCESS)
@given(data=st.data())
def test_fuzz_sample_through_the_real_cli(arena, data):
    """A sample of the header and index cases through the installed CLI in a subprocess."""
    hub = data.draw(st.booleans(), label="hub snapshot")
    source = hub_source(arena) if hub else local_source(arena)
    if data.draw(st.booleans(), label="header or index"):
        ops = data.draw(st.lists(header_ops, min_size=1, max_size=3), label="ops")
        apply_header_ops(source / data.draw(st.sampled_from([HEAD_SHARD, OTHER_SHARD])), ops)
    else:
        index = json.loads((arena.base / INDEX).read_text())
        tensor = data.draw(st.sampled_from(sorted(index["weight_map"])), label="tensor")
        index["weight_map"][tensor] = data.draw(_shard_names(arena), label="shard")
        replace_with_file(source / INDEX, json.dumps(index).encode())
    check_case(arena, source, arena.work / "out", QWEN, runner=_run_subprocess)


def test_fuzz_harness_detects_a_changed_file(arena):
    """The harness itself: a case that changes a file outside OUTPUT must fail the check."""
    source = local_source(arena)

    def tamper(argv: list[str]) -> tuple[int, str]:
        with arena.victim.open("r+b") as fh:
            fh.seek(0)
            first = fh.read(1)
            fh.seek(0)
            fh.write(bytes([first[0] ^ 1]))
        return 2, "error: tampered\n"

    try:
        with pytest.raises(AssertionError):
            check_case(arena, source, arena.work / "out", QWEN, runner=tamper)
    finally:
        tamper([])  # flip the bit back
    assert struct.unpack("<Q", arena.victim.read_bytes()[:8])[0] > 0
