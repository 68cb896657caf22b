"""Bids: the rows FSPs submit to the market, with validation and CSV/Parquet I/O.

Columns: bid_id, provider_id, bus, period, product, quantity, price, device_id.
Products follow the injection convention: P_up = more injection or less consumption,
P_down = less injection or more consumption; Q_up/Q_down likewise for reactive power.
Quantities are MW or MVAr per period, prices EUR/MWh or EUR/MVArh. device_id names the
physical unit a bid sells from: the device tables (`devices.py`) couple the bids of one
unit through its capability circle and its energy account.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from lfm_abm.errors import InputError
from lfm_abm.files import atomic_file

PRODUCTS = ("P_up", "P_down", "Q_up", "Q_down")
#: What places a bid in the LP (its slot); prices and quantities change round to round.
SLOT_COLUMNS = ("bus", "period", "product", "device_id")
BID_COLUMNS = ["bid_id", "provider_id", "bus", "period", "product", "quantity", "price",
               "device_id"]
#: +1 where the product raises net injection, -1 where it lowers it.
PRODUCT_SIGN = {"P_up": 1.0, "P_down": -1.0, "Q_up": 1.0, "Q_down": -1.0}


FAMILY = {product: product[0] for product in PRODUCTS}


def families(products: pd.Series) -> pd.Series:
    """Product family ('P' or 'Q') of every row; a hash lookup, fast on long tables."""
    return products.map(FAMILY)


def slot_arrays(bids: pd.DataFrame) -> tuple[np.ndarray, ...]:
    """A copy of the bid table's slot columns, to compare later tables with (`same_slots`)."""
    return tuple(bids[column].to_numpy().copy() for column in SLOT_COLUMNS)


def same_slots(bids: pd.DataFrame, slots: tuple[np.ndarray, ...]) -> bool:
    """True if the bids sit in exactly these slots, in this order.

    Exact, and cheap for the tables an offer book builds round after round: they hold
    the very same string objects, which compare by identity first (~50 us for 3,000
    bids, where hashing the strings costs ten times more).
    """
    return all(len(array) == len(bids) and np.array_equal(bids[column].to_numpy(), array)
               for column, array in zip(SLOT_COLUMNS, slots, strict=True))


#: Active power products (the others are reactive).
ACTIVE_PRODUCTS = ("P_up", "P_down")


def is_active(products: pd.Series) -> np.ndarray:
    """True where the product is active power (P_up or P_down)."""
    return products.isin(ACTIVE_PRODUCTS).to_numpy()


@functools.cache
def empty_bids() -> pd.DataFrame:
    """A bid table with no rows and the right columns and dtypes (shared: do not modify)."""
    return validate_bids(pd.DataFrame(columns=BID_COLUMNS))


def _fail(source: str, row: int, bid_id: object, field: str, message: str,
          allowed: Iterable[object] | None = None) -> InputError:
    return InputError(f"row {row} (bid_id {bid_id}): {message}", source=source, field=field,
                      allowed=allowed)


def device_table(table: pd.DataFrame, columns: list[str], source: str) -> pd.DataFrame:
    """A copy of a device table's `columns`, ids as text; a missing column names itself."""
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise InputError(f"missing column {missing[0]!r}", source=source, field=missing[0],
                         allowed=columns)
    out = table[columns].copy()
    out["device_id"] = out.device_id.astype(str)
    return out


def validate_bids(
    bids: pd.DataFrame,
    *,
    buses: Iterable[int] | None = None,
    n_periods: int | None = None,
    source: str = "bids",
) -> pd.DataFrame:
    """Check and normalise a bid table; the first problem raises `InputError` naming it.

    `buses` are the buses where an injection can be bid (PQ buses), `n_periods` the
    number of scenario periods. A price above the DSO's reservation price is valid input:
    such a bid is simply not admitted. Rows are reported 1-based as in a spreadsheet
    (header = row 0).
    """
    missing = [c for c in BID_COLUMNS if c not in bids.columns and c != "device_id"]
    if missing:
        raise InputError(f"missing column {missing[0]!r}", source=source, field=missing[0],
                         allowed=BID_COLUMNS)
    index = pd.RangeIndex(len(bids))

    def column(name: str) -> pd.Series:
        """The input's column on the index 0..n-1, not copied (long files, issue 14)."""
        return bids[name].set_axis(index, copy=False)

    bid_id = column("bid_id").astype(str)
    out = pd.DataFrame({
        "bid_id": bid_id,
        "provider_id": column("provider_id").fillna("").astype(str),
        **{name: _integers(column(name), bid_id, name, source) for name in ("bus", "period")},
        "product": column("product"),
        **{name: _floats(column(name), bid_id, name, source) for name in ("quantity", "price")},
        "device_id": (column("device_id").fillna("").astype(str) if "device_id" in bids.columns
                      else pd.Series(np.full(len(bids), "", dtype=object), index=index)),
    }, copy=False)
    checks: list[tuple[str, pd.Series, object, Iterable[object] | None]] = [
        ("product", ~out["product"].isin(PRODUCTS), "unknown product {product!r}", PRODUCTS),
        ("quantity", ~np.isfinite(out.quantity) | (out.quantity < 0),
         "must be a finite number >= 0, got {quantity}", None),
        ("price", ~np.isfinite(out.price), "must be finite, got {price}", None),
        # A negative price would pay the DSO to take flexibility, which the LP would then
        # buy whether or not a need calls for it.
        ("price", out.price < 0, "negative price {price}: the DSO would be paid to buy "
         "flexibility no need calls for", [">= 0 EUR/MWh"]),
    ]
    if buses is not None:
        allowed_buses = sorted({int(b) for b in buses})
        checks.append(("bus", ~out.bus.isin(allowed_buses),
                       "bus {bus} is not a bus where injections can be bid", allowed_buses))
    if n_periods is not None:
        checks.append(("period", (out.period < 0) | (out.period >= n_periods),
                       f"period {{period}} is outside 0..{n_periods - 1}", None))
    for field, bad, message, allowed in checks:
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            bid = out.iloc[row]
            raise _fail(source, row + 1, bid.bid_id, field, str(message).format(**bid), allowed)
    duplicated = out.bid_id.duplicated()
    if duplicated.any():
        row = int(np.flatnonzero(duplicated)[0]) + 1
        raise _fail(source, row, out.bid_id[row - 1], "bid_id", "bid_id is not unique")
    return out


def _integers(values: pd.Series, bid_id: pd.Series, column: str, source: str) -> pd.Series:
    numbers = pd.to_numeric(values, errors="coerce")
    bad = numbers.isna() | (numbers != numbers.round())
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise _fail(source, row + 1, bid_id.iloc[row], column,
                    f"must be an integer, got {values.iloc[row]!r}")
    return numbers.astype(int)


def _floats(values: pd.Series, bid_id: pd.Series, column: str, source: str) -> pd.Series:
    numbers = pd.to_numeric(values, errors="coerce")
    bad = numbers.isna()
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise _fail(source, row + 1, bid_id.iloc[row], column,
                    f"must be a number, got {values.iloc[row]!r}")
    return numbers.astype(float)


def read_table(path: str | Path, what: str) -> pd.DataFrame:
    """Read a CSV or Parquet table chosen by suffix; unreadable files raise InputError."""
    path = Path(path)
    if not path.is_file():
        raise InputError("file not found", source=str(path), field=what)
    try:
        if path.suffix.lower() == ".parquet":
            return pd.read_parquet(path)
        if path.suffix.lower() == ".csv":
            return pd.read_csv(path, keep_default_na=False, na_values=[""])
    except Exception as exc:  # pandas/pyarrow raise many types for a broken file
        raise InputError(f"cannot read file ({type(exc).__name__}: {exc})", source=str(path),
                         field=what) from exc
    raise InputError(f"unknown file type {path.suffix!r}", source=str(path), field=what,
                     allowed=[".csv", ".parquet"])


#: File types `read_table` and `write_table` know.
TABLE_SUFFIXES = (".csv", ".parquet")


def write_table(frame: pd.DataFrame, path: str | Path) -> None:
    """Write a table as CSV or Parquet by the file's suffix, atomically (whole or not)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in TABLE_SUFFIXES:
        raise InputError(f"unknown file type {path.suffix!r}", source=str(path), field="out",
                         allowed=TABLE_SUFFIXES)
    with atomic_file(path) as tmp:
        if suffix == ".parquet":
            frame.to_parquet(tmp, index=False)
        else:
            frame.to_csv(tmp, index=False)


def read_bids(path: str | Path, **checks: object) -> pd.DataFrame:
    """Read and validate a bid file (CSV or Parquet); see `validate_bids` for `checks`.

    A file without a single bid is refused: clearing it would report the whole need as
    unmet, which is never what a user who wrote (or truncated) the file meant.
    """
    bids = validate_bids(read_table(path, "bids"), source=str(path), **checks)
    if bids.empty:
        raise InputError("the file holds no bids", source=str(path), field="bids",
                         allowed=[f"a table with columns {', '.join(BID_COLUMNS)}"])
    return bids
