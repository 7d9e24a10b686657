"""Options shared by several commands, each declared once: click decorators that generate the
options of a group, the typed records the commands hand on (:class:`RecipeOptions`,
:class:`CheckOptions`, :class:`HubOptions`: one per group, each popped from a command's keyword
arguments by its own field names), and :class:`SizeType`, which parses ``--check-memory`` and
``--max-disk`` before any command runs."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from reranker_seqcls.recipes.methods import METHODS

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

    from reranker_seqcls.log import Log
    from reranker_seqcls.recipes.recipe import Recipe

F = TypeVar("F", bound=Callable[..., Any])
Decorator = Callable[[F], F]


def stack(func: F, options: Sequence[Callable[[F], F]]) -> F:
    """Apply click options so they list in the order given."""
    for option in reversed(options):
        func = option(func)
    return func


class SizeType(click.ParamType[int]):
    """A size the user writes (``1.5GB``, ``800MB``, ``512MiB``, bytes), as an int of bytes. A
    bad one is the one-line :class:`BadInput` of :func:`reranker_seqcls.sizes.parse_size`."""

    name = "size"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        from reranker_seqcls.sizes import parse_size

        if isinstance(value, int):
            return value
        option = param.opts[0] if param is not None and param.opts else "size"
        return parse_size(str(value), option)


SIZE = SizeType()

# Declared once, used by several groups below and by `plan`.
TOKEN = click.option(
    "--token", envvar="HF_TOKEN", show_envvar=True,
    help="Hub token (prefer the HF_TOKEN environment variable).",
)  # fmt: skip
ALLOW_SOFTCAPPING = click.option(
    "--allow-softcapping", is_flag=True,
    help="Accept a source with final_logit_softcapping: convert it, and pass the check when "
    "rankings agree (the differences are reported).",
)  # fmt: skip
ALLOW_PICKLE = click.option(
    "--allow-pickle", is_flag=True,
    help="Accept a .bin-only checkpoint (loaded with torch weights_only=True).",
)  # fmt: skip


@dataclass(frozen=True)
class RecipeOptions:
    """``--preset`` or a custom recipe (``--tokens``/``--token-ids``, ``--method``, ``--scale``,
    ``--template``), as convert, check and run take them."""

    preset: str | None = None
    tokens: str | None = None
    method: str | None = None
    template: Path | None = None
    token_ids: str | None = None
    scale: str | None = None

    @property
    def explicit(self) -> bool:
        """Whether any option names the recipe (else it is detected from the source)."""
        return any(
            v is not None
            for v in (self.preset, self.tokens, self.method, self.token_ids, self.scale)
        )

    def resolve(
        self, source_name: str, source_dir: Path | None = None, log: Log | None = None
    ) -> Recipe:
        from reranker_seqcls.recipes.resolve import resolve_recipe

        return resolve_recipe(
            source_name=source_name, preset=self.preset, tokens_json=self.tokens,
            method=self.method, template_path=self.template, token_ids_json=self.token_ids,
            scale=self.scale, source_dir=source_dir, log=log,
        )  # fmt: skip

    @classmethod
    def pop(cls, kwargs: dict[str, Any]) -> RecipeOptions:
        """The record of the options :func:`recipe_options` added to a command's ``kwargs``."""
        return pop_record(cls, kwargs)


R = TypeVar("R", bound="DataclassInstance")


def pop_record(cls: type[R], kwargs: dict[str, Any]) -> R:
    """The record ``cls`` of the options its decorator added to a command's ``kwargs``, popped
    by the record's field names (so the record is the one list of them)."""
    return cls(**{f.name: kwargs.pop(f.name) for f in fields(cls)})


def recipe_options(func: F) -> F:
    """--preset / custom recipe options shared by convert, check and run."""
    options = [
        click.option("--preset", help="Reranker family (see `reranker-seqcls presets`)."),
        click.option("--tokens", help='Custom classifier tokens as JSON, e.g. \'["no","yes"]\'.'),
        click.option(
            "--method",
            type=click.Choice(METHODS),
            help="How the classifier tokens' logits become the score.",
        ),
        click.option(
            "--template",
            type=click.Path(path_type=Path, dir_okay=False),
            help="Scoring chat template (Jinja, roles query/document) for a custom recipe.",
        ),
        click.option(
            "--token-ids", "token_ids",
            help="Custom classifier tokens by vocabulary id as JSON, e.g. '[0]' (instead of "
            "--tokens).",
        ),
        click.option(
            "--scale",
            help="Constant the score logit is multiplied by, folded into the head (e.g. 0.2 for "
            "logit / 5).",
        ),
    ]  # fmt: skip
    return stack(func, options)


def conversion_options(func: F) -> F:
    options = [
        click.option("--force", is_flag=True, help="Replace a non-empty OUTPUT."),
        click.option(
            "--copy", "force_copy", is_flag=True,
            help="Write real copies of unchanged shards instead of reflinks/hard links.",
        ),
        ALLOW_PICKLE,
        ALLOW_SOFTCAPPING,
    ]  # fmt: skip
    return stack(func, options)


# The cost of --full-check, measured in bench/RUN_RESULTS.md (check/scope.py says what it adds).
FULL_CHECK_HELP = (
    "Score every check pair on the real model too, not only a few short ones (the rest run on "
    "the structural twin). Costs a layerwise pass over all pairs: 27 built-in pairs take about "
    "1 min on a 0.6B, 6 min on a 4B and 8.5 min on an 8B on two AVX2 cores, against 8-33 s "
    "for the quick check's three pairs; a whole run of the 8B 741 s instead of 106 s there, "
    "241 s instead of 62 s on two AVX-512 cores (bench/RUN_RESULTS.md)."
)


DEFAULT_CHECK_MEMORY = 1_500_000_000  # --check-memory's default, 1.5GB


@dataclass(frozen=True)
class CheckOptions:
    """The parity check's options (:func:`check_options`), as check and run take them."""

    pairs_file: Path | None = None  # --pairs
    dtype: str | None = None
    allow_softcapping: bool = False
    vllm_python: Path | None = None
    check_memory: int = DEFAULT_CHECK_MEMORY  # parsed by SizeType
    full_check: bool = False  # every pair on the real model too (check/scope.py)

    @classmethod
    def pop(cls, kwargs: dict[str, Any]) -> CheckOptions:
        return pop_record(cls, kwargs)


def check_options(func: F) -> F:
    """Parity-check options shared by check and run."""
    options = [
        click.option(
            "--pairs", "pairs_file", type=click.Path(path_type=Path, dir_okay=False),
            help="JSONL of query/document[/instruction] pairs instead of the built-in set.",
        ),
        click.option(
            "--dtype", type=click.Choice(["float32", "bfloat16", "float16"]),
            help="Parity-check compute dtype (default: the checkpoint's).",
        ),
        ALLOW_SOFTCAPPING,
        click.option(
            "--vllm-python", type=click.Path(path_type=Path, dir_okay=False),
            help="Python of an environment with vLLM: adds a vllm row to the check (default: "
            "$RERANKER_SEQCLS_VLLM_PYTHON, else this Python if it imports vllm, else skipped).",
        ),
        click.option(
            "--check-memory", default="1.5GB", show_default=True, type=SIZE,
            help="Memory the check may use. A model whose float32 load does not fit is scored "
            "layer by layer from its shards (one module's weights at a time) and its consumers "
            "are proven on a structural twin (same config, tokenizer, template, fewer layers).",
        ),
        click.option("--full-check", is_flag=True, help=FULL_CHECK_HELP),
    ]  # fmt: skip
    return stack(func, options)


@dataclass(frozen=True)
class HubOptions:
    """Where and how a push goes (:func:`hub_options` and the target), as push and run take
    them."""

    target: str
    private: bool = False
    create_pr: bool = False
    dry_run: bool = False
    token: str | None = None

    @classmethod
    def pop(cls, kwargs: dict[str, Any]) -> HubOptions:
        """Also pops ``target`` (push's argument, run's ``--target``)."""
        return pop_record(cls, kwargs)


def hub_options(func: F) -> F:
    options = [
        click.option("--private", is_flag=True, help="Create the target repo as private."),
        click.option("--create-pr", is_flag=True, help="Open a pull request instead."),
        click.option("--dry-run", is_flag=True, help="Do everything but push; list what would be."),
        TOKEN,
    ]  # fmt: skip
    return stack(func, options)
