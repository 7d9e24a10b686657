"""A loopback Hugging Face Hub for the test suite.

`LoopbackHubServer` is a dependency-free (stdlib ``http.server``) implementation of the subset of
the Hub HTTP API that ``huggingface_hub`` 2.x uses to download and upload model repos. Point the
real client at it with ``HF_ENDPOINT=<server.url>`` and ``HF_HUB_DISABLE_XET=1`` (both read when
``huggingface_hub`` is imported, so set them in a subprocess's environment). The pytest fixtures
live in :mod:`tests.loopback_hub.fixtures`.
"""

from .server import (
    BlobStore,
    Fault,
    HubCommit,
    HubFile,
    LoopbackHubServer,
    PathStats,
    RequestRecord,
)

__all__ = [
    "BlobStore",
    "Fault",
    "HubCommit",
    "HubFile",
    "LoopbackHubServer",
    "PathStats",
    "RequestRecord",
]
