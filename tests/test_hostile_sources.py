"""Issue 9, source side: one named test per way a hostile source checkpoint could hurt.

Each refused case runs the real CLI and asserts exit 2, one error line, no OUTPUT, and that
nothing in the test's whole tmp tree (source, victims, fake caches) changed. Names say which
item of the issue they cover.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Callable
from pathlib import Path

import pytest

from reranker_seqcls.safetensors_io.place import place_file
from tests.conftest import run_cli
from tests.hostile import (
    INDEX,
    copy_source,
    edit_json,
    fake_hub_snapshot,
    read_header,
    tree_state,
    write_header,
    write_raw,
)

QWEN = ("--preset", "qwen3-reranker")
HEAD_SHARD = "model-00001-of-00002.safetensors"  # the tied tiny model's embedding shard
OTHER_SHARD = "model-00002-of-00002.safetensors"


@pytest.fixture
def source(tiny_model, tmp_path) -> Path:
    return copy_source(tiny_model("qwen3", tied=True, num_shards=2), tmp_path / "some-model")


def refused(tmp_path: Path, src: Path, *args: str | Path, fragment: str, out: Path | None = None):
    """Convert must exit 2 with one line containing ``fragment`` and change nothing at all."""
    out = out or tmp_path / "out"
    before = tree_state(tmp_path, skip=out)
    out_before = tree_state(out) if out.exists() else None
    result = run_cli("convert", src, out, *(args or QWEN))
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert fragment in lines[0], lines[0]
    assert "Traceback" not in result.stderr
    assert tree_state(tmp_path, skip=out) == before  # nothing created, changed or deleted
    assert (tree_state(out) if out.exists() else None) == out_before
    return lines[0]


def converts(src: Path, out: Path, *args: str, cwd: Path | None = None) -> str:
    result = run_cli("convert", src, out, *(args or QWEN), cwd=cwd)
    assert result.returncode == 0, result.stderr
    return result.stderr


def _point_one_tensor_at(src: Path, shard_name: str) -> None:
    index = json.loads((src / INDEX).read_text())
    first = sorted(n for n, s in index["weight_map"].items() if s == OTHER_SHARD)[0]
    index["weight_map"][first] = shard_name
    (src / INDEX).write_text(json.dumps(index))


# --------------------------------------------------------------------------- item 1


@pytest.fixture
def victim(tmp_path, source) -> Path:
    """Another model's shard outside the source: a file that parses as safetensors."""
    path = tmp_path / "elsewhere" / "victim.safetensors"
    path.parent.mkdir()
    path.write_bytes((source / OTHER_SHARD).read_bytes())
    return path


def test_item1_absolute_shard_name_is_refused_and_the_file_kept(tmp_path, source, victim):
    _point_one_tensor_at(source, str(victim))
    refused(tmp_path, source, fragment="an absolute path")


def test_item1_dotdot_shard_name_is_refused_and_the_file_kept(tmp_path, source, victim):
    _point_one_tensor_at(source, "../elsewhere/victim.safetensors")
    refused(tmp_path, source, fragment="leaves the checkpoint directory")


def test_item1_same_shard_spelled_twice_is_refused(tmp_path, source):
    _point_one_tensor_at(source, f"./{OTHER_SHARD}")
    refused(tmp_path, source, fragment="names the same file as")


def test_item1_shard_name_with_control_characters_is_refused(tmp_path, source):
    _point_one_tensor_at(source, "model\n::error::x.safetensors")
    line = refused(tmp_path, source, fragment="control characters")
    assert "\n" not in line and "\\n" in line  # quoted with repr, never raw


def test_item1_shard_named_by_a_symlinked_directory_outside_is_refused(tmp_path, source, victim):
    (source / "more").symlink_to(victim.parent, target_is_directory=True)
    _point_one_tensor_at(source, "more/victim.safetensors")
    refused(tmp_path, source, fragment="outside it")


def test_item1_single_file_and_its_renamed_twin_are_refused(tmp_path, tiny_model):
    """model.safetensors is placed as model-00001-of-00001.safetensors: a source holding both
    used to place the second over the first's hard link, truncating the source shard."""
    src = copy_source(tiny_model("qwen3", tied=True), tmp_path / "some-model")
    extra = {"extra.weight": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}
    write_header(src / "model-00001-of-00001.safetensors", extra, b"\0" * 4)
    refused(tmp_path, src, fragment="remove the stray file")


def test_item1_place_file_never_writes_through_an_existing_file(tmp_path):
    src = tmp_path / "blob"
    src.write_bytes(b"precious")
    dst = tmp_path / "placed"
    os.link(src, dst)  # what an earlier placement of the same shard left
    with pytest.raises(FileExistsError):
        place_file(src, dst)
    with pytest.raises(FileExistsError):
        place_file(src, dst, force_copy=True)
    assert src.read_bytes() == b"precious"


def test_item1_hostile_hub_repo_cannot_touch_the_cache_or_the_machine(
    hub_server, hub_env, tiny_model, tmp_path
):
    """A Hub repo whose index names another cached model's blob (``../../..``) or an absolute
    path: convert HUB_ID refuses it and neither file changes."""
    model = tiny_model("qwen3", tied=True, num_shards=2)
    files = {p.name: p.read_bytes() for p in model.iterdir() if p.is_file()}
    hub_server.seed_repo("qwen-team/Qwen3-Reranker-legit", files)
    assert (
        run_cli(
            "convert", "qwen-team/Qwen3-Reranker-legit", tmp_path / "legit", env=hub_env
        ).returncode
        == 0
    )
    cache = Path(hub_env["HF_HOME"]) / "hub"
    legit_cache = cache / "models--qwen-team--Qwen3-Reranker-legit"
    blob = next(p for p in (legit_cache / "blobs").iterdir() if p.stat().st_size > 200_000)
    victim = tmp_path / "victim.safetensors"
    victim.write_bytes(blob.read_bytes())
    before = (tree_state(legit_cache), tree_state(victim.parent, skip=cache.parent))

    for repo, name, fragment in [
        (
            "evil/Qwen3-Reranker-dotdot",
            f"../../../{legit_cache.name}/blobs/{blob.name}",
            "leaves the checkpoint directory",
        ),
        ("evil/Qwen3-Reranker-absolute", str(victim), "an absolute path"),
    ]:
        index = json.loads(files[INDEX])
        tensor = sorted(index["weight_map"])[-1]
        index["weight_map"][tensor] = name
        hub_server.seed_repo(repo, {**files, INDEX: json.dumps(index).encode()})
        out = tmp_path / repo.replace("/", "_")
        result = run_cli("convert", repo, out, env=hub_env)
        assert result.returncode == 2, result.stderr
        assert fragment in result.stderr.strip().splitlines()[-1]
        assert not out.exists()
        assert (tree_state(legit_cache), tree_state(victim.parent, skip=cache.parent)) == before


# --------------------------------------------------------------------------- item 2


def test_item2_notice_linking_outside_the_source_is_refused(tmp_path, source):
    secret = tmp_path / "environ"
    secret.write_text("HF_TOKEN=hf_this_must_never_be_published\n")
    (source / "NOTICE").symlink_to(secret)
    refused(tmp_path, source, fragment="'NOTICE' in the source is a symlink to a file outside")


def test_item2_tokenizer_file_linking_outside_the_source_is_refused(tmp_path, source):
    outside = tmp_path / "tokenizer-elsewhere.json"
    (source / "tokenizer.json").rename(outside)  # valid content, but not the source's own file
    (source / "tokenizer.json").symlink_to(outside)
    refused(tmp_path, source, fragment="'tokenizer.json' in the source is a symlink")


def test_item2_license_that_is_a_fifo_is_refused(tmp_path, source):
    os.mkfifo(source / "LICENSE-extra")  # reading it would block forever
    refused(tmp_path, source, fragment="is not a regular file")


def test_item2_symlink_inside_the_source_is_copied_as_a_file(tmp_path, source):
    (source / "docs").mkdir()
    (source / "docs" / "notice.txt").write_text("notice text\n")
    (source / "NOTICE").symlink_to("docs/notice.txt")
    out = tmp_path / "out"
    converts(source, out)
    assert not (out / "NOTICE").is_symlink()
    assert (out / "NOTICE").read_text() == "notice text\n"


def test_item2_hub_snapshot_links_into_its_own_blobs_only(tmp_path, tiny_model):
    model = tiny_model("qwen3", tied=True, num_shards=2)
    cache = tmp_path / "cache"
    snapshot = fake_hub_snapshot(model, cache, "qwen-team/Qwen3-Reranker-tiny")
    converts(snapshot, tmp_path / "out")
    assert (tmp_path / "out" / "LICENSE").read_bytes() == (model / "LICENSE").read_bytes()

    other = fake_hub_snapshot(model, cache, "someone/else", sha="b" * 40)
    secret = other.parent.parent / "blobs" / "secret"
    secret.write_text("another repo's file\n")
    (snapshot / "NOTICE").symlink_to(os.path.relpath(secret, snapshot))
    refused(tmp_path, snapshot, fragment="'NOTICE' in the source is a symlink", out=tmp_path / "o2")


# --------------------------------------------------------------------------- item 3


def test_item3_source_inside_output_with_force_is_refused(tmp_path, tiny_model):
    out = tmp_path / "out"
    src = copy_source(tiny_model("qwen3", tied=True), out / "some-model")
    refused(tmp_path, src, *QWEN, "--force", fragment="contains the source", out=out)
    assert (src / "config.json").is_file()


def test_item3_output_inside_source_is_refused(tmp_path, source):
    refused(tmp_path, source, fragment="is inside the source", out=source / "converted")


def test_item3_output_holding_a_hub_snapshots_cache_is_refused(tmp_path, tiny_model):
    cache = tmp_path / "cache"
    snapshot = fake_hub_snapshot(tiny_model("qwen3", tied=True), cache, "qwen-team/Qwen3-x")
    out = cache / "models--qwen-team--Qwen3-x" / "converted"  # beside blobs/ and snapshots/
    refused(tmp_path, snapshot, fragment="is inside the source", out=out)


# --------------------------------------------------------------------------- item 6


def _mutate_head_shard(edit: Callable[[dict, bytes], tuple[object, bytes]]):
    def mutate(src: Path) -> None:
        path = src / HEAD_SHARD
        header, data = read_header(path)
        new_header, new_data = edit(header, data)
        write_header(path, new_header, new_data)

    return mutate


def _entries(header: dict) -> list[dict]:
    return sorted(
        (v for k, v in header.items() if k != "__metadata__"), key=lambda v: v["data_offsets"][0]
    )


def _past_eof(h, d):
    _entries(h)[-1]["data_offsets"][1] += 4
    return h, d


def _negative(h, d):
    _entries(h)[0]["data_offsets"][0] = -4
    return h, d


def _overlap(h, d):
    first, second = _entries(h)[:2]
    second["data_offsets"] = list(first["data_offsets"])
    return h, d


def _gap(h, d):
    last = _entries(h)[-1]
    last["data_offsets"] = [o + 4 for o in last["data_offsets"]]
    return h, d + b"\0" * 4


def _dtype_mismatch(h, d):
    _entries(h)[0]["dtype"] = "F16"
    return h, d


def _metadata_not_a_dict(h, d):
    h["__metadata__"] = ["format", "pt"]
    return h, d


def _duplicate_in_header(src: Path) -> None:
    path = src / HEAD_SHARD
    header, data = read_header(path)
    name = next(k for k in header if k != "__metadata__")
    text = json.dumps(header)
    entry = json.dumps({name: header[name]})[1:-1]
    write_raw(path, (text[:-1] + ", " + entry + "}").encode(), data)


def _duplicate_across_shards(src: Path) -> None:
    head, head_data = read_header(src / HEAD_SHARD)
    other, other_data = read_header(src / OTHER_SHARD)
    name = "model.embed_tokens.weight"
    info = dict(head[name])
    begin, end = info["data_offsets"]
    base = len(other_data)
    info["data_offsets"] = [base, base + end - begin]
    other[name] = info
    write_header(src / OTHER_SHARD, other, other_data + head_data[begin:end])


def _truncated_tied(src: Path) -> None:
    path = src / OTHER_SHARD  # not the head shard: placed by link, never rewritten
    path.write_bytes(path.read_bytes()[:-100])


def _vocab_below_token(src: Path) -> None:
    edit_json(src / "config.json", vocab_size=100)


def _pad_beyond_rows(src: Path) -> None:
    """A pad token the tokenizer numbers past the 705 embedding rows."""
    tokenizer = json.loads((src / "tokenizer.json").read_text())
    tokenizer["added_tokens"].append(
        {
            "id": 5000,
            "content": "<pad-far>",
            "single_word": False,
            "lstrip": False,
            "rstrip": False,
            "normalized": False,
            "special": True,
        }
    )
    (src / "tokenizer.json").write_text(json.dumps(tokenizer))
    edit_json(src / "tokenizer_config.json", pad_token="<pad-far>")
    edit_json(src / "config.json", vocab_size=None)


ITEM6 = {
    "offsets past EOF": (_mutate_head_shard(_past_eof), "not a readable safetensors file"),
    "negative offset": (_mutate_head_shard(_negative), "not a readable safetensors file"),
    # safetensors says "invalid offset", or "invalid shape, data type, or offset" when the
    # overlapping tensors differ in size
    "overlapping tensors": (_mutate_head_shard(_overlap), "offset"),
    "gap between tensors": (_mutate_head_shard(_gap), "offset"),
    "dtype x shape != bytes": (_mutate_head_shard(_dtype_mismatch), "not a readable"),
    "metadata not a dict": (_mutate_head_shard(_metadata_not_a_dict), "not a readable"),
    "duplicate name in one header": (_duplicate_in_header, "appears twice in the header"),
    "duplicate name across shards": (_duplicate_across_shards, "is in both"),
    "truncated shard of a tied model": (_truncated_tied, f"{OTHER_SHARD!r} is not a readable"),
    "vocab_size below a token id": (_vocab_below_token, "vocab_size 100"),
    "pad id beyond the embedding rows": (_pad_beyond_rows, "rows): the tokenizer does not match"),
}


@pytest.mark.parametrize("case", sorted(ITEM6))
def test_item6_broken_checkpoint_is_refused(tmp_path, source, case):
    mutate, fragment = ITEM6[case]
    mutate(source)
    refused(tmp_path, source, fragment=fragment)


# --------------------------------------------------------------------------- item 7 (sources)


def _header_is_a_list(src: Path) -> None:
    _, data = read_header(src / HEAD_SHARD)
    write_raw(src / HEAD_SHARD, b"[1, 2, 3]", data)


def _weight_map(value: object) -> Callable[[Path], None]:
    return lambda src: edit_json(src / INDEX, weight_map=value)


def _deep_config(src: Path) -> None:
    config = json.loads((src / "config.json").read_text())
    text = json.dumps(config)[:-1] + ', "deep": ' + "[" * 100_000 + "]" * 100_000 + "}"
    (src / "config.json").write_text(text)


def _logit_scale_abc(src: Path) -> None:
    edit_json(src / "config.json", logit_scale="abc")


ITEM7 = {
    "header is a JSON list": (_header_is_a_list, "not a readable safetensors file"),
    "weight_map is a list": (_weight_map([HEAD_SHARD]), "has no weight_map"),
    "weight_map holds ints": (_weight_map({"model.norm.weight": 1}), "has no weight_map"),
    "config nested 100k deep": (_deep_config, "nested too deeply"),
    "logit_scale is a string": (
        lambda s: edit_json(s / "config.json", logit_scale="abc"),
        'logit_scale is "abc", expected a number',
    ),
}


@pytest.mark.parametrize("case", sorted(ITEM7))
def test_item7_malformed_source_is_exit_2_not_4(tmp_path, source, case):
    mutate, fragment = ITEM7[case]
    mutate(source)
    refused(tmp_path, source, fragment=fragment)


def test_item7_template_from_dev_zero_is_exit_2(tmp_path, source):
    args = ("--tokens", '["no","yes"]', "--method", "from_2_way_softmax", "--template", "/dev/zero")
    refused(tmp_path, source, *args, fragment="is not a regular file")


def test_item7_huge_template_is_exit_2(tmp_path, source):
    template = tmp_path / "huge.jinja"
    template.write_bytes(b"x" * (1024 * 1024 + 1))
    args = ("--tokens", '["no","yes"]', "--method", "from_2_way_softmax", "--template", template)
    refused(tmp_path, source, *args, fragment="larger than 1 MiB")


def test_item7_output_dot_converts_into_the_current_directory(tmp_path, source):
    here = tmp_path / "here"
    here.mkdir()
    converts(source, Path("."), cwd=here)
    assert json.loads((here / "config.json").read_text())["num_labels"] == 1
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp left

    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "keep.txt").write_text("x")
    result = run_cli("convert", source, ".", *QWEN, cwd=tmp_path / "busy")
    assert result.returncode == 2 and "pass --force" in result.stderr
    assert (tmp_path / "busy" / "keep.txt").read_text() == "x"


# --------------------------------------------------------------------------- item 9


def test_item9_remote_code_pointers_are_dropped_from_the_output(tmp_path, source):
    auto_map = {"AutoModelForSequenceClassification": "evil/repo--modeling_evil.EvilSC"}
    edit_json(source / "config.json", auto_map=auto_map, custom_pipelines={"x": {"impl": "e.P"}})
    edit_json(source / "tokenizer_config.json", auto_map={"AutoTokenizer": ["evil--tok.T", None]})
    out = tmp_path / "out"
    log = converts(source, out)
    config = json.loads((out / "config.json").read_text())
    assert "auto_map" not in config and "custom_pipelines" not in config
    assert config["architectures"] == ["Qwen3ForSequenceClassification"]
    tokenizer_config = json.loads((out / "tokenizer_config.json").read_text())
    assert "auto_map" not in tokenizer_config
    assert (
        tokenizer_config["pad_token"]
        == json.loads((source / "tokenizer_config.json").read_text())["pad_token"]
    )
    assert "dropped auto_map" in log
    assert b"evil" not in b"".join(p.read_bytes() for p in out.iterdir() if p.is_file())


@pytest.mark.parametrize(
    ("key", "value", "fragment"),
    [
        ("tie_word_embeddings", "no", 'tie_word_embeddings is "no", expected true/false'),
        ("vocab_size", "705", 'vocab_size is "705", expected a number'),
        ("vocab_size", True, "vocab_size is true, expected a number"),
        ("architectures", "Qwen3ForCausalLM", 'architectures is "Qwen3ForCausalLM"'),
        ("architectures", [7], "architectures holds a non-string entry"),
        ("model_type", ["qwen3"], 'model_type is ["qwen3"], expected a string'),
        ("final_logit_softcapping", "30", 'final_logit_softcapping is "30"'),
        ("text_config", {"logit_scale": [2]}, "text_config.logit_scale is [2]"),
        pytest.param("logit_scale", 10**400, "logit_scale is 1000000000", id="huge-logit_scale"),
    ],
)
def test_item9_config_value_types_are_checked_by_key(tmp_path, source, key, value, fragment):
    edit_json(source / "config.json", **{key: value})
    refused(tmp_path, source, fragment=fragment)


def test_header_length_field_past_the_file_is_refused(tmp_path, source):
    path = source / HEAD_SHARD
    raw = path.read_bytes()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw[8:])
    refused(tmp_path, source, fragment="not a readable safetensors file")


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("model.safetensors", "model.safetensors"),
        ("./model.safetensors", "model.safetensors"),
        ("sub//model.safetensors", "sub/model.safetensors"),
        ("/etc/passwd", None),
        ("../x.safetensors", None),
        ("a/../../x.safetensors", None),
        ("a\\..\\x.safetensors", None),
        ("x\n.safetensors", None),
        ("x\x9b.safetensors", None),  # C1 CSI: a terminal escape
        ("x\u202e.safetensors", None),  # bidi override: shows another name
        ("", None),
        (".", None),
        (5, None),
    ],
)
def test_item1_safe_name_rules(name, expected):
    from reranker_seqcls.errors import BadInput
    from reranker_seqcls.source import safe_name

    if expected is None:
        with pytest.raises(BadInput):
            safe_name(name, what="index")
    else:
        assert safe_name(name, what="index") == expected


def test_item6_index_naming_a_tensor_its_shard_lacks_is_refused(tmp_path, source):
    """Found by the fuzz suite: a shard whose header was emptied converted with exit 0 and an
    output missing every tensor the index put in it."""
    write_header(source / OTHER_SHARD, {}, b"")
    refused(tmp_path, source, fragment="which does not hold it")


def test_empty_shard_without_an_index_is_not_placed(tmp_path, tiny_model):
    src = copy_source(tiny_model("qwen3", tied=True), tmp_path / "some-model")
    write_header(src / "model-extra.safetensors", {}, b"")
    out = tmp_path / "out"
    log = converts(src, out)
    assert "model-extra.safetensors: dropped (holds no tensors)" in log
    assert not (out / "model-extra.safetensors").exists()


def test_library_header_validation_keeps_convert_torch_free(tmp_path, source):
    """The safetensors reader validates headers without torch: convert never imports it."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from reranker_seqcls.cli import main\n"
        "try:\n"
        f"    main(['convert', {str(source)!r}, {str(tmp_path / 'out')!r}, *{list(QWEN)!r}])\n"
        "except SystemExit as exc:\n"
        "    print('exit', exc.code, 'torch' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert result.stdout.split() == ["exit", "0", "False"], result.stderr


def test_item2_run_with_a_notice_linking_to_the_environment_pushes_nothing(
    hub_server, hub_env, tmp_path, source
):
    """The reported leak: a local model whose NOTICE links to /proc/self/environ, run with a
    write token, pushed the token inside NOTICE. Now nothing is created on the Hub."""
    from tests.loopback_hub.fixtures import TEST_TOKEN, TEST_USER

    (source / "NOTICE").symlink_to("/proc/self/environ")
    target = f"{TEST_USER}/leaky-seq-cls"
    result_path = tmp_path / "result.json"
    args = ("--model", source, "--target", target, *QWEN, "--result-json", result_path)
    result = run_cli("run", *args, env=hub_env)
    assert result.returncode == 2, result.stderr
    assert "'NOTICE' in the source is a symlink to a file outside it" in result.stderr
    assert not hub_server.repo_exists(target)
    assert hub_server.request_count(method="POST") == 0
    for text in (result.stdout, result.stderr, result_path.read_text()):
        assert TEST_TOKEN not in text
