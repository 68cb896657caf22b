"""Command-line numbers, checked by the same schema as every other setting.

Flags that set a field of a settings class (`--voll`, `--vmin`, `--relinearise`,
`--pv-density`) are checked by that class through `from_flags`, so a flag and the TOML
field it mirrors allow exactly the same values; the numbers that exist only on the
command line (rounds, seeds, workers) are declared here. Either way an error names the
flag: `--rounds: invalid value -3 (allowed: an integer >= 1)`.
"""

from __future__ import annotations

import argparse
from typing import Annotated, TypeVar

from lfm_abm.errors import InputError
from lfm_abm.schema import MAX_COUNT, Field, Int, settings

T = TypeVar("T")
Positive = Annotated[Int, Field(ge=1, le=MAX_COUNT)]


@settings("--")
class RunFlags:
    """`lfm-abm run`: overrides of the study's counts and the local worker count."""

    workers: Positive
    rounds: Positive | None = None
    seeds: Positive | None = None
    window: Positive | None = None


@settings("--")
class BenchFlags:
    """`lfm-abm bench`: timed rounds, AC-validation interval, long-run lengths."""

    rounds: Positive
    ac_every: Positive
    scale_rounds: Positive
    target_horizon: Positive
    horizon: Positive | None = None


@settings("--")
class SeedFlag:
    """`lfm-abm population`: the generator's seed."""

    seed: Annotated[Int, Field(ge=0)]


@settings("--")
class AppFlags:
    """`lfm-abm app`: the local port of the page."""

    port: Annotated[Int, Field(ge=1, le=65535)]


#: Per command, the class that checks its own numbers and the flags it reads.
COMMAND_FLAGS = {"run": RunFlags, "bench": BenchFlags, "population": SeedFlag, "app": AppFlags}


def check_flags(command: str, args: argparse.Namespace) -> None:
    """Check the command's own numeric flags before anything runs."""
    cls = COMMAND_FLAGS.get(command)
    if cls is not None:
        cls(**{name: getattr(args, name) for name in cls.__pydantic_fields__
               if hasattr(args, name)})


def from_flags(cls: type[T], **values: object) -> T:
    """A settings object from flags named like its fields; an error names the flag."""
    try:
        return cls(**values)
    except InputError as exc:
        name = (exc.field or "").rpartition(".")[2].partition("[")[0]  # dso_tools[0]
        flag = f"--{name.replace('_', '-')}" if name in values else exc.field
        raise exc.located("command line", flag) from None
