"""The plan step of the reranker-seqcls plan action (``plan/action.yml``).

Runs ``reranker-seqcls plan`` on the fleet file and hands its result to the workflow:

* ``$GITHUB_OUTPUT``: ``matrix`` (``{"include": [...]}`` on one line, for ``fromJSON``),
  ``count`` (how many entries need a run) and ``exit_code`` (of the CLI, as for ``run``);
* ``$GITHUB_STEP_SUMMARY``: the table of every entry (written by the CLI's ``--summary``).

The fleet file and the Hub are untrusted: everything the CLI prints is inside a
``::stop-commands::`` window, so no repo name, revision or Hub message can act as a workflow
command; outside it this script prints only fixed text, numbers and the token mask. Inputs arrive
as ``INPUT_*`` environment variables (``fleet``, ``all``, ``hf_token``). Standard library only.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Mapping

TITLE = "reranker-seqcls plan"
TRUE_WORDS = frozenset({"true", "yes", "on", "1"})
FALSE_WORDS = frozenset({"false", "no", "off", "0", ""})
EXIT_MEANINGS = {2: "bad input", 3: "Hub or network error", 4: "internal error"}
EMPTY_MATRIX = {"include": []}


def _escape(value: str) -> str:
    return value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _command(name: str, message: str, **properties: str) -> None:
    props = ",".join(f"{k}={_escape(v).replace(':', '%3A').replace(',', '%2C')}"
                     for k, v in properties.items())  # fmt: skip
    print(f"::{name}{' ' + props if props else ''}::{_escape(message)}", flush=True)


def _input(env: Mapping[str, str], name: str) -> str:
    return env.get(f"INPUT_{name.upper()}", "").strip()


def _read_matrix(stdout: str) -> dict[str, list[object]]:
    """The CLI's last stdout line, if it is a matrix; else an empty one."""
    lines = stdout.strip().splitlines()
    try:
        value = json.loads(lines[-1]) if lines else None
    except ValueError:
        return EMPTY_MATRIX
    if isinstance(value, dict) and set(value) == {"include"} and isinstance(value["include"], list):
        return value
    return EMPTY_MATRIX


def _one_line(matrix: Mapping[str, object]) -> str:
    """JSON without line breaks (escaped inside strings), so it is one ``name=value`` line."""
    return json.dumps(matrix, ensure_ascii=True, separators=(",", ":"))


def _write_outputs(env: Mapping[str, str], outputs: Mapping[str, str]) -> None:
    path = env.get("GITHUB_OUTPUT")
    if path:
        with open(path, "a", encoding="utf-8") as handle:  # one line each: no value has a newline
            handle.writelines(f"{name}={value}\n" for name, value in outputs.items())


def plan(env: Mapping[str, str]) -> int:
    token = _input(env, "hf_token") or env.get("HF_TOKEN", "").strip()
    for line in token.splitlines():
        if line.strip():
            _command("add-mask", line.strip())
    fleet = _input(env, "fleet") or "rerankers.yml"
    include_all = _input(env, "all").lower()
    if include_all not in TRUE_WORDS | FALSE_WORDS:
        _write_outputs(env, {"matrix": _one_line(EMPTY_MATRIX), "count": "0", "exit_code": "2"})
        _command("error", "input 'all' must be true or false", title=f"{TITLE}: bad input")
        return 2

    args = [sys.executable, "-m", "reranker_seqcls", "plan"]
    if include_all in TRUE_WORDS:
        args.append("--all")
    if env.get("GITHUB_STEP_SUMMARY"):
        args += ["--summary", env["GITHUB_STEP_SUMMARY"]]
    args += ["--", fleet]  # a fleet path starting with "-" stays a path
    child = {k: v for k, v in env.items() if k.upper() != "INPUT_HF_TOKEN"}
    child["HF_TOKEN"] = token
    child.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

    stop = uuid.uuid4().hex
    print(f"::stop-commands::{stop}", flush=True)
    try:
        done = subprocess.run(
            args, env=child, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            text=True, errors="replace", check=False,
        )  # fmt: skip
        code, stdout = done.returncode, done.stdout
        sys.stdout.write(stdout)
    except OSError:
        code, stdout = 127, ""
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        print(f"::{stop}::", flush=True)

    matrix = _read_matrix(stdout)
    text = _one_line(matrix)
    if token:
        text = text.replace(token, "***")
    count = len(matrix["include"])
    _write_outputs(env, {"matrix": text, "count": str(count), "exit_code": str(code)})
    print(f"{count} fleet entr{'y' if count == 1 else 'ies'} to convert", flush=True)
    if code != 0:
        why = EXIT_MEANINGS.get(code, "failed")
        _command(
            "error",
            "some entries could not be planned (see this step's log and the job summary); "
            "the others are in the matrix",
            title=f"{TITLE}: {why} (exit {code})",
        )
    return code


if __name__ == "__main__":
    sys.exit(plan(os.environ))
