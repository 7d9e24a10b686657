"""``plan``'s job summary: its link targets are built with ``safe_text.md_link`` from the names
and the endpoint, so a name or an endpoint holding Markdown stays text. The fleet parser refuses
such repo ids; the summary does not rely on it (defense in depth). Pure Python, no Hub: ms."""

from __future__ import annotations

import pytest

from reranker_seqcls.recipes.presets import PRESETS
from reranker_seqcls.schedule.fleet import FleetEntry
from reranker_seqcls.schedule.plan import EntryPlan, summary_markdown
from tests.test_hostile_round2 import live_markup

HOSTILE = "acme/x) ![i](https://evil.example/p.png) [re-auth](https://evil.example/login"


def _plan(model: str, target: str) -> EntryPlan:
    entry = FleetEntry(
        index=1, model=model, target=target, revision=None, preset=None, tokens=None,
        method=None, template=None, private=False, create_pr=False,
        recipe=next(iter(PRESETS.values())),
    )  # fmt: skip
    return EntryPlan(entry, "stale", ["new upstream commit"], source_sha="a" * 40)


@pytest.mark.parametrize(
    ("model", "target", "endpoint"),
    [
        (HOSTILE, "acme/target", "https://hub.example"),
        ("acme/model", HOSTILE, "https://hub.example"),
        ("acme/model", "acme/target", "https://hub.example/a) ![j](https://evil.example/q.png"),
    ],
)
def test_hostile_names_and_endpoints_make_no_live_markup(
    model: str, target: str, endpoint: str
) -> None:
    summary = summary_markdown([_plan(model, target)], endpoint)
    live = live_markup(summary)
    links = [item for item in live if item.startswith("link_open")]
    assert len(links) == 2 and len(live) == 3, live  # the two table links and the heading
    for link in links:  # each points into the endpoint, its hostile part percent-encoded
        assert "'href': 'https://hub.example/" in link and "evil.example/p.png)" not in link
        assert " " not in link.split("'href': ")[1].split("'")[1], link
    assert "evil.example" in summary or "evil" not in model + target + endpoint  # shown as text


def test_a_non_http_endpoint_gives_text_not_links() -> None:
    summary = summary_markdown([_plan("acme/model", "acme/target")], "javascript:alert(1)//")
    assert [item for item in live_markup(summary) if item.startswith("link_open")] == []
    assert "acme/target" in summary and "javascript" not in summary
