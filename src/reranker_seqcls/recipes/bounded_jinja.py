"""A bounded Jinja sandbox for a source's chat template: time, output length and value sizes.

transformers renders every chat template (``apply_chat_template``, which sentence-transformers'
``CrossEncoder`` and this package's :mod:`.render` call) in a Jinja
``ImmutableSandboxedEnvironment``: safe from attribute escapes, but not bounded. A template
from the source is untrusted: nested ``range(99999)`` loops run for hours, ``'x' * 200000000``
renders 400 MB (and the tokenizer then aborts the process). :func:`install` makes transformers
compile chat templates in :class:`BoundedEnvironment` instead, so every render in this process
(ours and the consumers') is bounded:

- **time**: :data:`MAX_RENDER_SECONDS` per render, checked at every sandbox hook (each call,
  attribute or item access, intercepted operator and output chunk). The sandbox's ``range`` is
  capped at 100,000 items, so at most one innermost loop runs between two checks;
- **output**: :data:`MAX_RENDER_CHARS` characters, counted while the template generates;
- **values**: ``*``, ``+`` and ``**`` refuse a string, list or number past those bounds before
  computing it, and so do the width arguments of string methods and filters that pad or
  replace (``center``, ``ljust``, ``indent``, ``replace``, ``format``...), so no single
  operation allocates more than the output bound.

A limit hit raises :class:`RenderLimit` (a ``jinja2`` ``SecurityError``), which the renderer
reports as a one-line bad-input error. No jinja2 import happens before :func:`install` runs.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from contextvars import ContextVar
from functools import cache
from typing import Any

MAX_RENDER_SECONDS = 5.0
MAX_RENDER_CHARS = 4_000_000  # a prompt is text for a model: far beyond any scoring length
MAX_INT_BITS = 4096

_deadline: ContextVar[float | None] = ContextVar("reranker_seqcls_render_deadline", default=None)
_PADDING_METHODS = frozenset({"center", "ljust", "rjust", "zfill", "expandtabs"})
_WIDTHS = re.compile(r"\d+")


def _limit(message: str) -> Exception:
    from jinja2.exceptions import SecurityError

    class_ = _limit_class(SecurityError)
    return class_(message)


@cache
def _limit_class(base: type[Exception]) -> type[Exception]:
    return type("RenderLimit", (base,), {"__module__": __name__})


def _tick() -> None:
    deadline = _deadline.get()
    if deadline is not None and time.monotonic() > deadline:
        raise _limit(
            f"the template ran for more than {MAX_RENDER_SECONDS:g} s on one pair: it loops "
            "without bound"
        )


def _size(value: Any) -> int | None:
    return len(value) if isinstance(value, str | bytes | list | tuple) else None


def _check_length(length: int, what: str) -> None:
    if length > MAX_RENDER_CHARS:
        raise _limit(f"{what} would hold {length} items, over the {MAX_RENDER_CHARS} bound")


def _check_binop(operator: str, left: Any, right: Any) -> None:
    sizes = (_size(left), _size(right))
    if operator == "*":
        for size, count in ((sizes[0], right), (sizes[1], left)):
            if size is not None and isinstance(count, int):
                _check_length(size * max(count, 0), "a repeated string or list")
    elif operator == "+" and None not in sizes:
        _check_length(int(sizes[0] or 0) + int(sizes[1] or 0), "a joined string or list")
    if isinstance(left, int) and isinstance(right, int):
        if operator == "**":
            bits = max(left.bit_length(), 1) * max(right, 0)
        elif operator == "*":
            bits = left.bit_length() + right.bit_length()
        else:
            bits = max(left.bit_length(), right.bit_length()) + 1
        if bits > MAX_INT_BITS:
            raise _limit(f"a number of {bits} bits, over the {MAX_INT_BITS}-bit bound")


def _check_widths(name: str, subject: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """Pre-check the string methods and filters whose result can dwarf their input."""
    if name in _PADDING_METHODS or name in ("indent", "wordwrap"):
        for value in (*args, *kwargs.values()):
            if isinstance(value, int) and not isinstance(value, bool):
                _check_length(value + (_size(subject) or 0), f"a {name}() result")
    elif name == "replace" and isinstance(subject, str) and len(args) >= 2:
        old, new = args[0], args[1]
        if isinstance(old, str) and isinstance(new, str):
            count = subject.count(old) if old else len(subject) + 1
            _check_length(len(subject) + count * len(new), "a replace() result")
    elif name == "format" and isinstance(subject, str):
        for width in _WIDTHS.findall(subject):
            if len(width) > 7 or int(width) > MAX_RENDER_CHARS:
                raise _limit(f"a format width of {width[:12]} characters")
    elif name == "join":
        items = args[0] if args else subject
        if isinstance(items, list | tuple):
            _check_length(sum(_size(i) or 0 for i in items), "a joined string")


@cache
def bounded_environment_class() -> type:
    """:class:`BoundedEnvironment`, built on first use (jinja2 is imported then)."""
    from jinja2 import Template
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    class BoundedTemplate(Template):
        @classmethod
        def _from_namespace(cls, environment: Any, namespace: Any, globals: Any) -> Any:
            # ``a ~ b`` compiles to a call of the module-level str_join/markup_join: bounded
            # here, since a chain of ``{% set b = a ~ a ~ a %}`` grows geometrically.
            for name in ("str_join", "markup_join"):
                if name in namespace:
                    namespace[name] = _bounded_join(namespace[name])
            return super()._from_namespace(environment, namespace, globals)

        def render(self, *args: Any, **kwargs: Any) -> str:
            token = _deadline.set(time.monotonic() + MAX_RENDER_SECONDS)
            try:
                pieces: list[str] = []
                length = 0
                for piece in self.generate(*args, **kwargs):
                    length += len(piece)
                    if length > MAX_RENDER_CHARS:
                        raise _limit(
                            f"the template rendered more than {MAX_RENDER_CHARS} characters "
                            "for one pair"
                        )
                    pieces.append(piece)
                    _tick()
                return "".join(pieces)
            finally:
                _deadline.reset(token)

    class BoundedEnvironment(ImmutableSandboxedEnvironment):
        intercepted_binops = frozenset({"*", "+", "**"})
        template_class = BoundedTemplate

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            for name in ("center", "indent", "replace", "format", "wordwrap", "join"):
                original = self.filters.get(name)
                if original is not None:
                    self.filters[name] = _bounded_filter(name, original)

        def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
            _tick()
            _check_binop(operator, left, right)
            return super().call_binop(context, operator, left, right)

        def getattr(self, obj: Any, attribute: str) -> Any:
            _tick()
            return _checked(super().getattr(obj, attribute), attribute)

        def getitem(self, obj: Any, argument: Any) -> Any:
            _tick()
            return _checked(super().getitem(obj, argument), "an item")

        def call(self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
            _tick()
            subject = getattr(__obj, "__self__", None)
            name = getattr(__obj, "__name__", "")
            if isinstance(subject, str):
                _check_widths(name, subject, args, kwargs)
            result = super().call(__context, __obj, *args, **kwargs)
            size = _size(result)
            if size is not None:
                _check_length(size, f"the result of {name or 'a call'}()")
            return result

    return BoundedEnvironment


def _checked(value: Any, what: str) -> Any:
    """A value read from an object (a namespace grown in a loop) within the output bound."""
    if (size := _size(value)) is not None:
        _check_length(size, f"the value of {what}")
    return value


def _bounded_join(original: Callable[..., Any]) -> Callable[..., Any]:
    def bounded(seq: Any) -> Any:
        _tick()
        parts = list(seq)
        _check_length(sum(len(p) if isinstance(p, str) else 64 for p in parts), "a ~ result")
        return original(parts)

    return bounded


def _bounded_filter(name: str, original: Callable[..., Any]) -> Callable[..., Any]:
    import functools

    @functools.wraps(original)
    def bounded(*args: Any, **kwargs: Any) -> Any:
        _tick()
        # Filters get (environment or context, value, ...) or (value, ...) depending on pass_*.
        values = [a for a in args if isinstance(a, str | list | tuple)]
        subject = values[0] if values else None
        rest = tuple(args[args.index(subject) + 1 :]) if subject is not None else args
        if name == "format" and isinstance(subject, str):
            _check_widths("format", subject, rest, kwargs)
        elif name == "join" and subject is not None:
            _check_widths("join", subject, (), {})
        else:
            _check_widths(name, subject, rest, kwargs)
        result = original(*args, **kwargs)
        if (size := _size(result)) is not None:
            _check_length(size, f"the result of the {name} filter")
        return result

    return bounded


@cache
def install() -> None:
    """Make transformers compile every chat template in :class:`BoundedEnvironment`."""
    from transformers.utils import chat_template_utils

    setattr(chat_template_utils, "ImmutableSandboxedEnvironment", bounded_environment_class())  # noqa: B010
    clear = getattr(chat_template_utils._cached_compile_jinja_template, "cache_clear", None)
    if clear is not None:  # templates compiled before now were not bounded
        clear()
