"""Small pieces whose exactness everything else relies on."""

from __future__ import annotations

import pytest
import torch

from reranker_seqcls.convert.architectures import _auto_mappings
from reranker_seqcls.redact import redact, register_secret
from reranker_seqcls.safetensors_io.floats import decode_floats, encode_floats

DTYPES = [(torch.bfloat16, "BF16"), (torch.float16, "F16"), (torch.float32, "F32")]


def _raw(tensor: torch.Tensor) -> bytes:
    return tensor.contiguous().view(torch.uint8).numpy().tobytes()


@pytest.mark.parametrize(("dtype", "name"), DTYPES, ids=[d[1] for d in DTYPES])
def test_float_codecs_match_torch_bit_for_bit(dtype, name):
    torch.manual_seed(0)
    rows = (torch.randn(2, 4096) * torch.logspace(-6, 4, 4096)).to(dtype)
    decoded = [decode_floats(_raw(rows[i]), name) for i in range(2)]
    assert decoded[0] == rows[0].float().tolist()
    # the score of from_2_way_softmax: float32 difference, stored back in the checkpoint dtype
    expected = (rows[1].float() - rows[0].float()).to(dtype)
    diff = [[t - f for f, t in zip(decoded[0], decoded[1], strict=True)]]
    assert encode_floats(diff, name) == _raw(expected)


def test_auto_mappings_equal_transformers_own():
    from transformers.models.auto import modeling_auto

    mappings = _auto_mappings()
    for name in (
        "MODEL_FOR_CAUSAL_LM_MAPPING_NAMES",
        "MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES",
    ):
        assert mappings[name] == dict(getattr(modeling_auto, name))


def test_redact(monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "secret-token-value")
    register_secret("another-secret")
    text = (
        "GET https://hub/x?token=abc123 Authorization: Bearer hf_abcdefghijklmnop "
        "secret-token-value another-secret"
    )
    cleaned = redact(text)
    for secret in ("abc123", "hf_abcdefghijklmnop", "secret-token-value", "another-secret"):
        assert secret not in cleaned


def test_first_error_line_finds_the_root_cause_in_a_vllm_log():
    from reranker_seqcls.check.vllm import first_error_line

    log = "\n".join(
        [
            "(EngineCore pid=7) INFO 12-01 10:48:03 [core.py:1] Initializing a V1 LLM engine",
            "(VllmWorker-0 pid=9) ERROR 12-01 10:48:03 [multiproc_executor.py:953] Traceback:",
            "(VllmWorker-0 pid=9) ERROR 12-01 10:48:03 [multiproc_executor.py:953] ValueError: "
            "Available memory on node 0 (10.01/12.21 GiB) is less than desired",
            "RuntimeError: Engine core initialization failed. See root cause above.",
        ]
    )
    assert first_error_line(log) == (
        "ValueError: Available memory on node 0 (10.01/12.21 GiB) is less than desired"
    )
    assert first_error_line("plain output\nno failure here") is None
    assert first_error_line("importlib.metadata.PackageNotFoundError: vllm") == (
        "importlib.metadata.PackageNotFoundError: vllm"
    )


def test_a_signal_wrapped_by_python_is_still_a_stop():
    """Python wraps an exception raised in ``__set_name__`` (a signal landing while a dataclass
    is built during an import) in a RuntimeError: the CLI must still see the stop signal."""
    import signal
    from dataclasses import dataclass, field

    from reranker_seqcls.interrupt import Interrupted, interruption_behind

    class Landing:
        def __set_name__(self, owner, name):
            raise Interrupted(signal.SIGINT)

    with pytest.raises(RuntimeError) as caught:

        @dataclass
        class Built:  # building the class is what raises
            merges: list[str] = field(default_factory=list)
            hook = Landing()

    stopped = interruption_behind(caught.value)
    assert stopped is not None and stopped.exit_code == 130
    assert interruption_behind(RuntimeError("plain")) is None


LOST_STOP = """
import os, signal, sys, time
from reranker_seqcls.interrupt import Interrupted, raise_if_stopped, raise_on_stop_signals

raise_on_stop_signals()

class Collected:
    def __del__(self):  # the handler runs here: Python prints the exception and drops it
        os.kill(os.getpid(), signal.SIGTERM)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            pass

Collected()
print("went on", flush=True)
try:
    raise_if_stopped()
except Interrupted as stop:
    sys.exit(stop.exit_code)
"""


def test_a_stop_whose_exception_was_lost_is_raised_again_before_publishing():
    """A SIGTERM whose handler ran inside a ``__del__`` (seen in CI: ``regex``'s ``Group.__del__``
    during a garbage collection): Python drops the exception and the run went on to publish.
    The stop is remembered and :func:`raise_if_stopped` (before a commit, between shards) raises
    it again: exit 143."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", LOST_STOP], capture_output=True, text=True,
                          timeout=60, check=False)  # fmt: skip
    assert "Exception ignored" in done.stderr and "Interrupted" in done.stderr, done.stderr
    assert done.stdout.strip() == "went on"
    assert done.returncode == 143, done.stderr


@pytest.mark.parametrize("name", ["from_2_way_softmax", "no_post_processing"])
@pytest.mark.parametrize("scale", [1.0, 0.2])
def test_a_methods_head_rows_score_what_its_reference_logits_score(name, scale):
    """The converter's head (``head_rows``) applied to a hidden state gives the check's
    reference score (``score_logits`` of the tokens' logits): the one table defines both."""
    from reranker_seqcls.recipes.methods import scoring_method

    method = scoring_method(name)
    generator = torch.Generator().manual_seed(7)
    head = torch.randn(11, 6, generator=generator, dtype=torch.float64)
    hidden = torch.randn(3, 6, generator=generator, dtype=torch.float64)
    ids = [4, 9]
    rows = method.head_rows(head[ids].tolist(), scale)
    served = hidden @ torch.tensor(rows, dtype=torch.float64).T
    reference = method.score_logits((hidden @ head.T)[:, ids], scale)
    assert served.shape == (3, method.num_labels(len(ids))) == reference.shape
    assert torch.allclose(served, reference, rtol=0, atol=1e-12)
    assert len(method.labels(["no", "yes"])) == method.num_labels(2)
