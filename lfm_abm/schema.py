"""One way to declare settings and check them, whatever their source.

Every group of settings (market parameters, limits, scenario, a learner's parameters, an
asset's parameters, the [study] table, command-line numbers) is a frozen pydantic
dataclass made with `settings(section)`: its fields carry their types and ranges, and
a bad value from any source (a TOML file, a command-line flag, a keyword of `simulate`
or a direct construction in Python) raises the same one-line `InputError`, naming the
field as `section.field`, the value and the allowed range written out from the
declaration itself. `build` adds the file name when the values come from a file.

Types: `Int` takes only integers (not 1.5, not true, not "3"), `Float` any finite
number, `Bool` only true/false, `Text` only strings; ranges with `Field(ge=..., ...)`.
Checks across fields go in `__post_init__` and raise `InputError` themselves.
"""

from __future__ import annotations

import functools
import types
import typing
from collections.abc import Callable, Mapping
from typing import Annotated, Any, TypeVar

import annotated_types as at
import pydantic
from pydantic import ConfigDict, Field, InstanceOf, Strict

from lfm_abm.errors import InputError

__all__ = ["MAX_COUNT", "Bool", "Field", "Float", "InstanceOf", "Int", "Text", "build", "settings"]

Int = Annotated[int, Strict()]
Float = Annotated[float, Strict(), pydantic.AllowInfNan(False)]
Bool = Annotated[bool, Strict()]
Text = Annotated[str, Strict()]

#: A count (rounds, seeds) above this is a typo (10^8 rounds take days), not a study.
MAX_COUNT = 10**8

CONFIG = ConfigDict(extra="forbid", allow_inf_nan=False, arbitrary_types_allowed=True)
T = TypeVar("T")


def settings(section: str) -> Callable[[type[T]], type[T]]:
    """Class decorator: a frozen, validated dataclass whose errors name `section.field`.

    A section starting with "--" names command-line flags: field `ac_every` is reported
    as `--ac-every`.
    """
    def decorate(cls: type[T]) -> type[T]:
        made = pydantic.dataclasses.dataclass(frozen=True, config=CONFIG)(cls)
        validate = made.__init__

        @functools.wraps(validate)
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            try:
                validate(self, *args, **kwargs)
            except pydantic.ValidationError as exc:
                raise _input_error(made, section, exc) from None

        made.__init__ = __init__
        made.SECTION = section
        return made

    return decorate


def build(cls: type[T], data: Mapping[str, object], source: str | None,
          base: Mapping[str, object] | None = None) -> T:
    """An instance from a table of values (e.g. TOML), errors naming the file `source`.

    `base` holds values the table may override (e.g. a grid's default scenario).
    """
    if not isinstance(data, Mapping):
        raise InputError(f"must be a table, got {data!r}", source=source,
                         field=cls.SECTION)
    try:
        return cls(**{**(base or {}), **data})
    except InputError as exc:
        raise exc.located(source) from None


def field_name(section: str, name: str) -> str:
    """How a field is named to the user: `market.voll` or, for flags, `--ac-every`."""
    if section.startswith("--"):
        return f"--{name.replace('_', '-')}"
    return f"{section}.{name}" if section else name


def _input_error(cls: type, section: str, exc: pydantic.ValidationError) -> InputError:
    """The first error of a validation, as one InputError naming field, value and range."""
    errors = exc.errors()
    # An unknown field first: a misspelt required field is also reported missing.
    error = next((e for e in errors if e["type"] == "unexpected_keyword_argument"), errors[0])
    cause = (error.get("ctx") or {}).get("error")
    if isinstance(cause, InputError):  # a check across fields, already in words
        return cause.located(field=cause.field or section)
    names = [name for name in cls.__pydantic_fields__ if name != "source"]
    loc = [str(part) for part in error["loc"]]
    if error["type"] == "unexpected_keyword_argument":
        return InputError(f"unknown field {loc[0]!r}", field=field_name(section, loc[0]),
                          allowed=names)
    if error["type"] in ("missing", "missing_argument", "missing_keyword_only_argument"):
        return InputError("required", field=field_name(section, loc[0]),
                          allowed=[describe(cls, loc[0])])
    if not loc or loc[0] not in names:
        return InputError(error["msg"].removeprefix("Value error, "), field=section or None)
    # list positions, not the names pydantic gives the members of a union
    path = loc[0] + "".join(f"[{part}]" for part in error["loc"][1:] if isinstance(part, int))
    allowed = describe(cls, loc[0])
    if section.startswith("--"):  # an absent flag is not a value one can give
        allowed = allowed.removesuffix(", or none")
    return InputError(f"invalid value {error.get('input')!r}",
                      field=field_name(section, path), allowed=[allowed])


def describe(cls: type, name: str) -> str:
    """The allowed values of a field in words, from its declaration."""
    info = cls.__pydantic_fields__[name]
    return _describe(info.annotation, list(info.metadata))


def _describe(annotation: Any, metadata: list) -> str:
    while typing.get_origin(annotation) is Annotated:
        annotation, *extra = typing.get_args(annotation)
        metadata = [*extra, *metadata]
    metadata = [m for item in metadata for m in (item.metadata if isinstance(
        item, pydantic.fields.FieldInfo) else [item])]
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(annotation) if a is not type(None)]
        text = " or ".join(_describe(a, metadata) for a in options)
        return f"{text}, or none" if len(options) < len(typing.get_args(annotation)) else text
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(annotation))
    if origin in (tuple, list):
        args = [a for a in typing.get_args(annotation) if a is not Ellipsis]
        item = _describe(args[0], []) if args else "values"
        low = next((m.min_length for m in metadata if isinstance(m, at.MinLen)), 0)
        high = next((m.max_length for m in metadata if isinstance(m, at.MaxLen)), None)
        count = f"{high} " if high is not None and low == high else ""
        size = "a non-empty list" if low and not count else "a list"
        return f"{size} of {count}{_plural(item)}"
    kind = {int: "an integer", float: "a number", bool: "true or false",
            str: "text"}.get(annotation) or f"a {getattr(annotation, '__name__', annotation)}"
    return kind + _bounds(metadata)


def _plural(item: str) -> str:
    """'an integer in [0, 23]' -> 'integers in [0, 23]'."""
    head, _, rest = item.partition(" ")
    if head in ("a", "an"):
        noun, _, tail = rest.partition(" ")
        return f"{noun}s {tail}".rstrip()
    return item


def _bounds(metadata: list) -> str:
    low = next(((m.ge, "[") for m in metadata if isinstance(m, at.Ge)), None) or next(
        ((m.gt, "(") for m in metadata if isinstance(m, at.Gt)), None)
    high = next(((m.le, "]") for m in metadata if isinstance(m, at.Le)), None) or next(
        ((m.lt, ")") for m in metadata if isinstance(m, at.Lt)), None)
    if low and high:
        text = f" in {low[1]}{_number(low[0])}, {_number(high[0])}{high[1]}"
    elif low:
        text = f" {'>=' if low[1] == '[' else '>'} {_number(low[0])}"
    elif high:
        text = f" {'<=' if high[1] == ']' else '<'} {_number(high[0])}"
    else:
        text = ""
    multiple = next((m.multiple_of for m in metadata if isinstance(m, at.MultipleOf)), None)
    return text + (f", a multiple of {_number(multiple)}" if multiple else "")


def _number(value: float) -> str:
    """A bound as written: 100000000 rather than 1e+08, 1e-07 rather than 0.0000001."""
    return str(int(value)) if float(value).is_integer() else f"{value:g}"
