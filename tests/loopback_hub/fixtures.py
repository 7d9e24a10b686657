"""Pytest fixtures for the loopback Hub.

Enable them with ``pytest_plugins = ["tests.loopback_hub.fixtures"]`` in ``tests/conftest.py``.


* ``hub_server``: the :class:`~tests.loopback_hub.server.LoopbackHubServer`, reset before each test
  (one server per session, so the port is stable; state, tokens and faults are fresh per test).
* ``hub_env``: a full environment for a subprocess that runs the real ``huggingface_hub`` client
  against it, authenticated with :data:`TEST_TOKEN`, with ``HF_HOME`` in the test's tmp dir.
* ``hub_env_anonymous``: the same without any token.

``HF_ENDPOINT`` and ``HF_HUB_DISABLE_XET`` are read when ``huggingface_hub`` is imported, so the
client must run in a subprocess started with one of these environments (see :func:`run_python`).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from .server import LoopbackHubServer

__all__ = [
    "BAD_TOKEN",
    "OTHER_TOKEN",
    "OTHER_USER",
    "TEST_ORG",
    "TEST_READ_TOKEN",
    "TEST_TOKEN",
    "TEST_USER",
    "hub_env",
    "hub_env_anonymous",
    "hub_server",
    "hub_server_session",
    "make_hub_env",
    "run_python",
]

#: The user the default token authenticates as; it owns the ``loopback-user/*`` namespace.
TEST_USER = "loopback-user"
#: A write token of :data:`TEST_USER`.
TEST_TOKEN = "hf_loopback_write_token"
#: A read-only token of :data:`TEST_USER` (write calls answer 403).
TEST_READ_TOKEN = "hf_loopback_read_token"
#: Another user, with its own write token: it can't see :data:`TEST_USER`'s private repos.
OTHER_USER = "loopback-other"
OTHER_TOKEN = "hf_loopback_other_token"
#: An organization :data:`TEST_USER` is a member of.
TEST_ORG = "loopback-org"
#: A token the server does not know: every request carrying it gets 401.
BAD_TOKEN = "hf_loopback_invalid_token"

# Variables of the outer environment that would redirect or authenticate the client elsewhere.
_SCRUBBED_PREFIXES = ("HF_", "HUGGINGFACE_", "HUGGING_FACE_")
_PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")


def make_server(*, blob_dir: Path | None = None) -> LoopbackHubServer:
    """A server (not started) configured with the test tokens and org.

    ``blob_dir`` keeps LFS objects on disk there instead of in memory (for multi-GB models).
    """
    return LoopbackHubServer(
        tokens={TEST_TOKEN: TEST_USER, OTHER_TOKEN: OTHER_USER},
        read_tokens={TEST_READ_TOKEN: TEST_USER},
        orgs={TEST_ORG: [TEST_USER]},
        blob_dir=blob_dir,
    )


def make_hub_env(
    endpoint: str,
    hf_home: Path,
    *,
    token: str | None = TEST_TOKEN,
    base: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Build a complete environment that points ``huggingface_hub`` at ``endpoint`` only.

    Starts from ``base`` (default ``os.environ``) without any ``HF_*``/``HUGGINGFACE_*`` variable
    nor proxy, then sets the endpoint, disables Xet (the loopback hub has no Xet storage),
    telemetry, update checks and progress bars, and puts ``HF_HOME`` (cache and token file) under
    ``hf_home``. ``token=None`` gives an anonymous client: ``HF_TOKEN`` is set to the empty string,
    which the client treats as "no token", so the result is also safe to merge over
    ``os.environ`` (as ``tests.conftest.run_cli`` does).
    """
    source = os.environ if base is None else base
    env = {
        k: v
        for k, v in source.items()
        if not k.startswith(_SCRUBBED_PREFIXES) and k not in _PROXY_VARS
    }
    hf_home = Path(hf_home)
    hf_home.mkdir(parents=True, exist_ok=True)
    env.update(
        {
            "HF_ENDPOINT": endpoint,
            "HF_HUB_DISABLE_XET": "1",
            "HF_HOME": str(hf_home),
            "HF_HUB_CACHE": str(hf_home / "hub"),
            "HF_XET_CACHE": str(hf_home / "xet"),
            "HF_ASSETS_CACHE": str(hf_home / "assets"),
            "HF_TOKEN_PATH": str(hf_home / "token"),
            "HF_STORED_TOKENS_PATH": str(hf_home / "stored_tokens"),
            "HF_TOKEN": token or "",
            "HUGGING_FACE_HUB_TOKEN": "",
            "HF_OIDC_RESOURCE": "",
            "HUGGINGFACE_CO_STAGING": "",
            "HF_HUB_OFFLINE": "0",
            "HF_HUB_DISABLE_TELEMETRY": "1",
            "HF_HUB_DISABLE_UPDATE_CHECK": "1",
            "HF_HUB_DISABLE_PROGRESS_BARS": "1",
            "HF_HUB_DISABLE_SYMLINKS_WARNING": "1",
            "HF_HUB_DISABLE_EXPERIMENTAL_WARNING": "1",
            "DO_NOT_TRACK": "1",
            "NO_PROXY": "127.0.0.1,localhost",
            "no_proxy": "127.0.0.1,localhost",
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def run_python(
    code: str, env: Mapping[str, str], *, timeout: float = 60, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``code`` with this interpreter in a subprocess with exactly ``env`` (no check)."""
    return subprocess.run(
        [sys.executable, "-c", code],
        env=dict(env),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture(scope="session")
def hub_server_session() -> Iterator[LoopbackHubServer]:
    """The session's loopback Hub, started once; prefer ``hub_server``, which resets it."""
    server = make_server().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def hub_server(hub_server_session: LoopbackHubServer) -> Iterator[LoopbackHubServer]:
    """The loopback Hub with a fresh state: no repo, no recorded request, no fault."""
    hub_server_session.reset()
    yield hub_server_session
    hub_server_session.clear_faults()


@pytest.fixture
def hub_env(hub_server: LoopbackHubServer, tmp_path: Path) -> dict[str, str]:
    """Environment for a client subprocess, authenticated as :data:`TEST_USER`."""
    return make_hub_env(hub_server.url, tmp_path / "hf_home")


@pytest.fixture
def hub_env_anonymous(hub_server: LoopbackHubServer, tmp_path: Path) -> dict[str, str]:
    """Environment for a client subprocess without any token."""
    return make_hub_env(hub_server.url, tmp_path / "hf_home_anonymous", token=None)
