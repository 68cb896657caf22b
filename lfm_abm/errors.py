"""One error type for bad user input, so the CLI can print one clear line and exit 2."""

from __future__ import annotations

from collections.abc import Iterable


class InputError(ValueError):
    """Bad user input: says which file (or source), which field, and what is allowed.

    Raised for anything a user can fix by editing an input (grid name, scenario,
    population, study, bids). Never raised for an infeasible market: that is a
    result (unmet need), not an error.
    """

    def __init__(
        self,
        message: str,
        *,
        source: str | None = None,
        field: str | None = None,
        allowed: Iterable[object] | None = None,
    ) -> None:
        self.source = source
        self.field = field
        self.allowed = None if allowed is None else [str(a) for a in allowed]
        self.message = message
        super().__init__(str(self))

    def located(self, source: str | None = None, field: str | None = None) -> InputError:
        """The same error placed in `source` and/or named `field` (each kept if None).

        For a caller that knows where the checked values came from (a file, a flag, an
        FSP of a population) and the checker did not.
        """
        return InputError(self.message, source=source or self.source, field=field or self.field,
                          allowed=self.allowed)

    def __str__(self) -> str:
        where = ": ".join(part for part in (self.source, self.field) if part)
        text = f"{where}: {self.message}" if where else self.message
        if self.allowed:
            shown = self.allowed[:20]
            more = f", ... ({len(self.allowed)} in all)" if len(self.allowed) > 20 else ""
            text += f" (allowed: {', '.join(shown)}{more})"
        return text


class PowerFlowError(RuntimeError):
    """An AC power flow did not converge; names the period so the user can look at it."""
