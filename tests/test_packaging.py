"""The installed package holds the converter and its data files, and no test fixtures."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_ships_no_fixtures_and_every_template(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
         "--wheel-dir", str(wheels), str(ROOT)],
        check=True, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    (wheel,) = wheels.glob("reranker_seqcls-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert not [n for n in names if n.startswith("testkit/")], names
    assert not [n for n in names if n.rsplit("/", 1)[-1] in ("tiny.py", "demo.py")], names
    templates = {p.name for p in (ROOT / "src/reranker_seqcls/recipes/templates").glob("*.jinja")}
    shipped = {n.rsplit("/", 1)[-1] for n in names if n.endswith(".jinja")}
    assert templates and templates <= shipped, (templates, shipped)
    assert "reranker_seqcls/hub/card_template.md" in names, names

    # Installed on its own (no repo on the path), the fixtures cannot be imported.
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target),
         str(wheel)],
        check=True, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    probe = (
        "import sys; sys.path.insert(0, sys.argv[1])\n"
        "import reranker_seqcls.run.pipeline, reranker_seqcls.recipes.presets as r\n"
        "assert r.__file__.startswith(sys.argv[1]), r.__file__\n"
        "assert r.PRESETS, 'presets load their templates from the installed package'\n"
        "import reranker_seqcls.hub.card as card\n"
        "assert card.CARD_TEMPLATE.is_file() and card.CARD_TEMPLATE.is_relative_to(sys.argv[1])\n"
        "import reranker_seqcls.tiny\n"
    )
    proc = subprocess.run(
        [sys.executable, "-I", "-c", probe, str(target)],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    assert "No module named 'reranker_seqcls.tiny'" in proc.stderr, proc.stderr
