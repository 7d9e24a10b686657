"""Strict YAML for the fleet file: size-capped, PyYAML's safe loader refusing duplicate keys,
and the escaping of values quoted back in error lines (the file may be hostile)."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from reranker_seqcls.errors import BadInput

MAX_FILE_BYTES = 1 << 20


def load_yaml(path: Path, where: str) -> Any:
    import yaml

    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise BadInput(
                f"{where} is {size} bytes: a fleet file is at most {MAX_FILE_BYTES} bytes"
            )
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError as exc:
        raise BadInput(f"{where} does not exist: give the path of the fleet file") from exc
    except IsADirectoryError as exc:
        raise BadInput(f"{where} is a directory: give the path of the fleet file") from exc
    except UnicodeDecodeError as exc:
        raise BadInput(f"{where} is not UTF-8 text: save the fleet file as UTF-8") from exc
    except OSError as exc:
        why = exc.strerror or exc.__class__.__name__
        raise BadInput(f"{where} cannot be read ({why}): check the path and permissions") from exc
    try:
        return yaml.load(text, Loader=strict_loader())  # a SafeLoader: plain data only
    except yaml.MarkedYAMLError as exc:
        line = f" at line {exc.problem_mark.line + 1}" if exc.problem_mark else ""
        problem = printable(exc.problem or exc.context or "syntax error", 120)
        raise BadInput(f"{where} is not valid YAML: {problem}{line}") from exc
    except yaml.YAMLError as exc:
        raise BadInput(f"{where} is not valid YAML: {printable(str(exc), 120)}") from exc
    except RecursionError as exc:
        raise BadInput(f"{where} nests too deeply: a fleet file is a list of entries") from exc


@functools.cache
def strict_loader() -> type:
    """PyYAML's safe loader (the C one when built), refusing a key given twice in one mapping
    (PyYAML silently keeps the last). Built on first use: importing this module imports no yaml."""
    import yaml

    base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

    class StrictLoader(base):  # type: ignore[misc, valid-type]
        def construct_mapping(self, node: Any, deep: bool = False) -> dict[Any, Any]:
            keys: set[str] = set()
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    raise yaml.constructor.ConstructorError(
                        None, None, "a merge key (<<) is not supported: write out each entry's "
                        "keys", key_node.start_mark,
                    )  # fmt: skip
                key = self.construct_object(key_node, deep=deep)
                if isinstance(key, str):
                    if key in keys:
                        raise yaml.constructor.ConstructorError(
                            None, None, f"key {shown(key)} given twice", key_node.start_mark
                        )
                    keys.add(key)
            mapping: dict[Any, Any] = super().construct_mapping(node, deep=deep)
            return mapping

    return StrictLoader


def kind_of(value: object) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def shown(value: object) -> str:
    """A value from the file as short, printable, one-line text for an error message."""
    if isinstance(value, str):
        return repr(printable(value, 60))
    if isinstance(value, bool | int | float):
        return repr(value)
    return kind_of(value)


def printable(text: str, limit: int = 200) -> str:
    cleaned = "".join(ch if ch.isprintable() else "?" for ch in text)
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 1] + "…"
