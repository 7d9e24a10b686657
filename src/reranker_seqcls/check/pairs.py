"""The (query, document) pairs the parity check scores: a built-in set, or a JSONL file."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from reranker_seqcls.errors import BadInput


@dataclass(frozen=True)
class Pair:
    query: str
    document: str
    instruction: str | None = None
    group: str = ""  # pairs of one group share a query: top-1 agreement is measured per group


_LONG_RELEVANT = " ".join(
    [
        "Vaccines train the immune system to recognise a pathogen without causing the disease.",
        "Most vaccines contain an antigen: a weakened or inactivated virus, a protein subunit, or",
        "instructions such as messenger RNA that let cells make a harmless viral protein.",
        "Antigen-presenting cells show the antigen to helper T cells, which activate B cells.",
        "B cells then produce antibodies that bind the antigen, and some become memory cells.",
        "Cytotoxic T cells learn to destroy infected cells that display the same antigen.",
        "If the vaccinated person later meets the real pathogen, memory cells respond within",
        "days instead of weeks, so the infection is stopped before it causes serious illness.",
        "Booster doses remind the immune system and raise antibody levels again when they fade.",
        "Herd immunity arises when enough people are immune that the pathogen cannot spread,",
        "which protects newborns and people who cannot be vaccinated for medical reasons.",
    ]
    * 2
)
_LONG_IRRELEVANT = " ".join(
    [
        "The history of the bicycle begins with the draisine of 1817, a two-wheeled running",
        "machine without pedals. Pedals attached to the front wheel followed in the 1860s, and",
        "the safety bicycle with a chain drive and equal wheels appeared in the 1880s.",
        "Pneumatic tyres made riding comfortable, and cycling clubs spread across Europe.",
    ]
    * 4
)
_CODE_INSTRUCTION = "Given a programming question, retrieve code that answers it"

BUILTIN_PAIRS: tuple[Pair, ...] = (
    Pair("What is the capital of France?",
         "Paris is the capital and most populous city of France.", group="capital-en"),
    Pair("What is the capital of France?",
         "Bananas are a good source of potassium.", group="capital-en"),
    Pair("What is the capital of France?", "Paris.", group="capital-en"),
    Pair("What is the capital of France?", "Berlin is the capital of Germany.",
         group="capital-en"),
    Pair("Wie hoch ist die Zugspitze?",
         "Die Zugspitze ist mit 2962 Metern der höchste Berg Deutschlands.", group="zugspitze-de"),
    Pair("Wie hoch ist die Zugspitze?", "Der Rhein fließt durch Köln und Düsseldorf.",
         group="zugspitze-de"),
    Pair("熊猫吃什么？", "大熊猫的食物几乎全部是竹子。", group="panda-zh"),
    Pair("熊猫吃什么？", "长城是中国古代的军事防御工程。", group="panda-zh"),
    Pair("¿Cuántos planetas hay en el sistema solar?",
         "El sistema solar tiene ocho planetas que orbitan alrededor del Sol.",
         group="planets-es"),
    Pair("¿Cuántos planetas hay en el sistema solar?",
         "La paella es un plato típico de Valencia.", group="planets-es"),
    Pair("Quelle est la langue officielle du Brésil ?",
         "Le portugais est la langue officielle du Brésil.", group="bresil-fr"),
    Pair("Quelle est la langue officielle du Brésil ?", "ok", group="bresil-fr"),
    Pair("How do vaccines work?", _LONG_RELEVANT, group="vaccines-long"),
    Pair("How do vaccines work?", _LONG_IRRELEVANT, group="vaccines-long"),
    Pair("How do vaccines work?", "Vaccines.", group="vaccines-long"),
    Pair("python reverse a list", "Use my_list[::-1] or call my_list.reverse() in place.",
         _CODE_INSTRUCTION, group="code-instruct"),
    Pair("python reverse a list", "SELECT name FROM users WHERE age > 30;",
         _CODE_INSTRUCTION, group="code-instruct"),
    Pair("python reverse a list", "Reversing a string in Java uses StringBuilder.reverse().",
         _CODE_INSTRUCTION, group="code-instruct"),
    # Piece boundaries: the families' codes tokenize query, separator and document apart, and a
    # real vocabulary merges across them ("?\n", ".\n", " \n", "\n\n"). These pairs put every
    # kind of ending before a boundary: "?\n", ". ", newline, empty and whitespace documents,
    # CJK punctuation and emoji at the end.
    Pair("Where is the Eiffel Tower?\n", "The Eiffel Tower stands in Paris, France.\n",
         group="eiffel-edges"),
    Pair("Where is the Eiffel Tower?\n", "", group="eiffel-edges"),
    Pair("Where is the Eiffel Tower?\n", " \n  ", group="eiffel-edges"),
    Pair("Where is the Eiffel Tower?\n", "Paris 🗼", group="eiffel-edges"),
    Pair("Height of Mount Everest. ", "Mount Everest is 8,849 metres high.",
         group="everest-edges"),
    Pair("Height of Mount Everest. ", "富士山高3776米。", group="everest-edges"),
    Pair("Height of Mount Everest. ", "Everest 🏔️ 8849 m 🙂", group="everest-edges"),
    Pair("寿司是什么？🍣", "寿司是一种日本料理。", group="sushi-edges"),
    Pair("寿司是什么？🍣", "🍕", group="sushi-edges"),
)  # fmt: skip


def builtin_pairs(*, takes_instruction: bool) -> list[Pair]:
    """The built-in set; instruction-bearing pairs only for families that take an instruction."""
    return [p for p in BUILTIN_PAIRS if takes_instruction or p.instruction is None]


def load_pairs(path: Path) -> list[Pair]:
    """JSONL, one object a line: ``query``, ``document``, optional ``instruction``/``group``."""
    try:
        lines = path.read_text("utf-8").splitlines()
    except FileNotFoundError:
        raise BadInput(f"--pairs {path} does not exist: give a JSONL file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"--pairs {path} cannot be read ({exc.__class__.__name__})") from None
    pairs: list[Pair] = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except ValueError:
            raise BadInput(
                f"--pairs {path}:{number} is not valid JSON: one object per line"
            ) from None
        if (
            not isinstance(item, dict)
            or not isinstance(item.get("query"), str)
            or not isinstance(item.get("document"), str)
            or not isinstance(item.get("instruction", ""), str | None)
        ):
            raise BadInput(
                f"--pairs {path}:{number} needs string fields query and document "
                "(instruction optional)"
            )
        pairs.append(
            Pair(item["query"], item["document"], item.get("instruction"),
                 str(item.get("group", item["query"])))
        )  # fmt: skip
    if len(pairs) < 2:
        raise BadInput(f"--pairs {path} holds {len(pairs)} pair(s): give at least 2 to compare")
    return pairs
