"""Which transformers classes exist for a model type — read without importing transformers.

``import transformers.models.auto.modeling_auto`` imports torch (seconds). The auto mappings are
plain literals in that module's source, so they are parsed with ``ast`` instead: the same table
``AutoModelForSequenceClassification`` uses, at the cost of a few milliseconds.
"""

from __future__ import annotations

import ast
import importlib.util
from functools import cache
from pathlib import Path

_MAPPINGS = ("MODEL_FOR_CAUSAL_LM_MAPPING_NAMES", "MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES")


@cache
def _auto_mappings() -> dict[str, dict[str, str]]:
    spec = importlib.util.find_spec("transformers")
    if spec is None or spec.origin is None:
        return {name: {} for name in _MAPPINGS}
    text = (Path(spec.origin).parent / "models" / "auto" / "modeling_auto.py").read_text("utf-8")
    found: dict[str, dict[str, str]] = {}
    for name in _MAPPINGS:
        # Parse just the assignment (a few ms), not the whole 2,000-line module.
        start = text.find(f"\n{name} = ")
        end = text.find("\n)\n", start)
        if start < 0 or end < 0:
            return _imported_mappings()
        try:
            tree = ast.parse(text[start + 1 : end + 3])
        except SyntaxError:
            return _imported_mappings()
        found.update(_assignments(tree))
    if set(found) != set(_MAPPINGS):
        return _imported_mappings()
    return found


def _assignments(tree: ast.Module) -> dict[str, dict[str, str]]:
    found: dict[str, dict[str, str]] = {}
    for node in tree.body:
        if not isinstance(node, ast.Assign | ast.AnnAssign):
            continue
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        names = [t.id for t in targets if isinstance(t, ast.Name)]
        if not names or names[0] not in _MAPPINGS or node.value is None:
            continue
        found[names[0]] = _literal_mapping(node.value)
    return found


def _literal_mapping(value: ast.expr) -> dict[str, str]:
    """``OrderedDict([(k, v), ...])`` → dict; entries whose value is not a string are skipped."""
    if isinstance(value, ast.Call) and value.args:
        value = value.args[0]
    mapping: dict[str, str] = {}
    if isinstance(value, ast.List | ast.Tuple):
        for item in value.elts:
            if isinstance(item, ast.Tuple) and len(item.elts) == 2:
                key, val = item.elts
                if isinstance(key, ast.Constant) and isinstance(val, ast.Constant):
                    mapping[str(key.value)] = str(val.value)
    return mapping


def _imported_mappings() -> dict[str, dict[str, str]]:  # pragma: no cover - layout fallback
    from transformers.models.auto import modeling_auto

    return {name: dict(getattr(modeling_auto, name)) for name in _MAPPINGS}


def causal_lm_class(model_type: str) -> str | None:
    return _auto_mappings()["MODEL_FOR_CAUSAL_LM_MAPPING_NAMES"].get(model_type)


def seq_cls_class(model_type: str) -> str | None:
    return _auto_mappings()["MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES"].get(model_type)


def known_model_type(model_type: str) -> bool:
    return causal_lm_class(model_type) is not None or seq_cls_class(model_type) is not None
