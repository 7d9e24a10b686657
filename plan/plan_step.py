"""The plan step of the reranker-seqcls plan action (``plan/action.yml``).

Runs ``reranker-seqcls plan`` on the fleet file and hands its result to the workflow:

* ``$GITHUB_OUTPUT``: ``matrix`` (``{"include": [...]}`` on one line, for ``fromJSON``),
  ``count`` (how many entries need a run) and ``exit_code`` (of the CLI, as for ``run``);
* ``$GITHUB_STEP_SUMMARY``: the table of every entry (written by the CLI's ``--summary``).

The fleet file and the Hub are untrusted: everything the CLI prints is inside a
``::stop-commands::`` window, so no repo name, revision or Hub message can act as a workflow
command; outside it this script prints only fixed text, numbers and the token mask. Inputs arrive
as ``INPUT_*`` environment variables (``fleet``, ``all``, ``hf_token``; the hyphenated spelling is
accepted too). The Actions plumbing (inputs, mask, workflow commands, the window, outputs) is
:mod:`reranker_seqcls.gh_actions`, shared with the image's entrypoint; like it, standard library
only: this step's venv holds the package without torch.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping

from reranker_seqcls.gh_actions import (
    FALSE_WORDS,
    TRUE_WORDS,
    child_environment,
    command,
    make_scrubber,
    mask,
    read_input,
    read_token,
    stop_commands,
    write_outputs,
)

TITLE = "reranker-seqcls plan"
EXIT_MEANINGS = {2: "bad input", 3: "Hub or network error", 4: "internal error"}
EMPTY_MATRIX = {"include": []}


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


def plan(env: Mapping[str, str]) -> int:
    token = read_token(env)
    mask(token)  # the first thing printed: from here on the runner hides the token
    fleet = read_input(env, "fleet") or "rerankers.yml"
    include_all = read_input(env, "all").lower()
    if include_all not in TRUE_WORDS | FALSE_WORDS:
        write_outputs(env, {"matrix": _one_line(EMPTY_MATRIX), "count": "0", "exit_code": "2"})
        command("error", "input 'all' must be true or false", title=f"{TITLE}: bad input (exit 2)")
        return 2

    args = [sys.executable, "-m", "reranker_seqcls", "plan"]
    if include_all in TRUE_WORDS:
        args.append("--all")
    if env.get("GITHUB_STEP_SUMMARY"):
        args += ["--summary", env["GITHUB_STEP_SUMMARY"]]
    args += ["--", fleet]  # a fleet path starting with "-" stays a path
    child = child_environment(env, token)
    child["HF_TOKEN"] = token  # set, even empty: never a token from elsewhere in the environment
    child.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

    with stop_commands():
        try:
            done = subprocess.run(
                args, env=child, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                text=True, errors="replace", check=False,
            )  # fmt: skip
            code, stdout = done.returncode, done.stdout
            sys.stdout.write(stdout)
        except OSError:
            code, stdout = 127, ""

    matrix = _read_matrix(stdout)
    text = make_scrubber(token)(_one_line(matrix))
    count = len(matrix["include"])
    write_outputs(env, {"matrix": text, "count": str(count), "exit_code": str(code)})
    print(f"{count} fleet entr{'y' if count == 1 else 'ies'} to convert", flush=True)
    if code != 0:
        why = EXIT_MEANINGS.get(code, "failed")
        command(
            "error",
            "some entries could not be planned (see this step's log and the job summary); "
            "the others are in the matrix",
            title=f"{TITLE}: {why} (exit {code})",
        )
    return code


if __name__ == "__main__":
    sys.exit(plan(os.environ))
