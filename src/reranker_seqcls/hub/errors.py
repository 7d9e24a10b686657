"""Hub and network exceptions → one-line, token-free :class:`BadInput` (exit 2: the repo,
revision or token is wrong) or :class:`HubError` (exit 3: the Hub or network failed after the
retries), raised *from* the exception they translate so that ``--debug`` shows the cause."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from reranker_seqcls.errors import BadInput, HubError, SeqClsError
from reranker_seqcls.redact import redact

if TYPE_CHECKING:
    from huggingface_hub.errors import HfHubHTTPError

# Exceptions of the HTTP stack under huggingface_hub are network failures, whatever their class.
_NETWORK_MODULES = ("httpx", "httpx2", "httpcore", "h11")


@contextmanager
def hub_errors(what: str) -> Iterator[None]:
    """Translate huggingface_hub and network exceptions raised inside into one-line errors
    that start with ``what`` ("source owner/name@sha", "push to owner/name").

    The client wraps some failures in its own exceptions (an LFS upload that failed after its
    retries is a ``RuntimeError`` raised *from* the HTTP error), so the chain of explicit causes
    (``raise … from``) is searched for the first exception that says what went wrong.
    A :class:`SeqClsError` (already one line) and anything else (an internal error) pass
    through untouched.
    """
    try:
        yield
    except SeqClsError:  # translated already (its cause may be a Hub error: keep its message)
        raise
    except Exception as exc:
        translated = translate_chain(what, exc)
        if translated is None:
            raise
        raise translated from exc


def translate_chain(what: str, exc: BaseException) -> BadInput | HubError | None:
    """The one-line error for ``exc`` or the first of its explicit causes the Hub raised."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        translated = _translate(what, cause)
        if translated is not None:
            return translated
        cause = cause.__cause__
    return None


def _translate(what: str, exc: BaseException) -> BadInput | HubError | None:
    """The one-line error for one Hub or network exception; None for anything else."""
    from huggingface_hub import errors as hf

    if isinstance(exc, hf.GatedRepoError):
        return BadInput(
            f"{what}: the repo is gated: accept its conditions on the Hub and set HF_TOKEN"
        )
    if isinstance(exc, hf.RepositoryNotFoundError):
        return BadInput(
            f"{what}: repository not found (or private and HF_TOKEN cannot read it): "
            "check the repo id and the token"
        )
    if isinstance(exc, hf.RevisionNotFoundError):
        return BadInput(f"{what}: revision not found: check --revision")
    if isinstance(exc, hf.RemoteEntryNotFoundError):
        return BadInput(f"{what}: file not found in the repo")
    if isinstance(exc, hf.HFValidationError):
        return BadInput(f"{what}: the Hub client refused the name ({first_line(exc)[:160]})")
    if isinstance(exc, hf.HfHubHTTPError):
        return _translate_status(what, exc)
    if isinstance(exc, hf.OfflineModeIsEnabled):
        return HubError(f"{what}: HF_HUB_OFFLINE is set: unset it to reach the Hub")
    if isinstance(exc, (OSError, ConnectionError)):
        return HubError(
            f"{what}: network error ({first_line(exc)[:160]}): check HF_ENDPOINT and the connection"
        )
    if is_network_exception(exc):
        return HubError(
            f"{what}: network error ({type(exc).__name__}): check HF_ENDPOINT and the connection"
        )
    return None


def _translate_status(what: str, exc: HfHubHTTPError) -> BadInput | HubError:
    """An HTTP answer the client raised on: a 4xx is the request's fault, the rest the Hub's."""
    status = exc.response.status_code if exc.response is not None else None
    detail = first_line(exc)[:200]
    if status == 412:
        return HubError(
            f"{what}: the target changed since this run started (another commit landed); "
            "nothing was pushed: rerun to convert against the new head"
        )
    if status == 429:  # retried with the waits the Hub asked for: still limited
        return HubError(
            f"{what}: the Hub rate-limited the requests after retries ({detail}); try again later"
        )
    if status in (401, 403):
        return BadInput(
            f"{what}: the Hub refused the token ({status}): set HF_TOKEN to a token with "
            "access (write access to push)"
        )
    if status is not None and 400 <= status < 500:
        return BadInput(f"{what}: the Hub refused the request ({detail})")
    return HubError(f"{what}: the Hub failed after retries ({detail}); try again later")


def is_network_exception(exc: BaseException) -> bool:
    """Whether ``exc`` comes from the HTTP stack (a dropped connection, a timeout, …)."""
    return type(exc).__module__.split(".")[0] in _NETWORK_MODULES


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message, tokens redacted."""
    text = str(exc)
    return redact(text.splitlines()[0]) if text.strip() else ""
