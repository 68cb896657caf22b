"""Energy accounts: a battery's state of charge, and deferred energy that must come back.

An energy-limited device d (a battery, an EV fleet, a shiftable load) has an account over
the ordered periods t_1..t_n of its window. Its accepted P bids change the account by

    de_t = h_t (eta_c down_t - up_t / eta_d)                                  (MWh)

with down_t its accepted P_down (more consumption: charging, recovery) and up_t its
accepted P_up (less consumption or more output: discharging, deferral), in MW over a
period of h_t hours. The LP keeps the account within bounds after every period:

    lower_k <= sum_{j <= k} de_{t_j} <= upper_k          (MWh), k = 1..n

* kind "storage": the account is the state of charge minus the initial one SOC_0, so
  lower = -SOC_0 and upper = E - SOC_0 keep 0 <= SOC <= E (MWh); after the last period
  lower = SOC_final - SOC_0, the least state of charge the owner requires at the end of
  the day. eta_c = eta_d = sqrt(round-trip efficiency).
* kind "shift" (EV fleets, shiftable loads): eta = 1 and the account is minus the energy
  deferred and not yet recovered: upper = 0 (recovery never runs ahead of deferral: the
  baseline already consumes as early as it can) and 0 after the last period (all that
  was deferred is recovered inside the window: an EV fleet still charges its daily
  energy).

Doing nothing (every de = 0) is always feasible. A later stage sees the bounds moved by
the energy earlier stages awarded (`shift_accounts`).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from lfm_abm.errors import InputError
from lfm_abm.market.bids import device_table, is_active
from lfm_abm.market.network_rows import META_COLUMNS

#: One row per device and period of its window, in window order (`order` from 0).
ENERGY_COLUMNS = ["device_id", "period", "order", "kind", "initial_mwh", "capacity_mwh",
                  "lower_mwh", "upper_mwh", "charge_efficiency", "discharge_efficiency"]
ACCOUNT_KINDS = ("storage", "shift")
#: Account bounds may be missed by this much (MWh): solver tolerance, not physics.
ENERGY_TOLERANCE = 1e-6


def empty_accounts() -> pd.DataFrame:
    """An energy table without devices (a fresh copy: callers may fill it)."""
    return _EMPTY_ACCOUNTS.copy()


#: Built once: every asset without an account asks for one (4 ms each to build).
_EMPTY_ACCOUNTS = pd.DataFrame({c: pd.Series(dtype=float) for c in ENERGY_COLUMNS}).astype(
    {"device_id": str, "kind": str, "period": int, "order": int})


def storage_account(device_id: str, periods: np.ndarray, energy_mwh: float,
                    initial_mwh: float, final_mwh: float, efficiency: float) -> pd.DataFrame:
    """A battery's account over `periods` (in time order); efficiency is round-trip."""
    n = len(periods)
    lower = np.full(n, -initial_mwh)
    if n:
        lower[-1] = final_mwh - initial_mwh
    one_way = math.sqrt(efficiency)
    return pd.DataFrame({"device_id": device_id, "period": periods, "order": np.arange(n),
                         "kind": "storage", "initial_mwh": initial_mwh,
                         "capacity_mwh": energy_mwh, "lower_mwh": lower,
                         "upper_mwh": energy_mwh - initial_mwh, "charge_efficiency": one_way,
                         "discharge_efficiency": one_way})


def shift_account(device_id: str, periods: np.ndarray) -> pd.DataFrame:
    """Deferred energy over `periods` (in window order), all recovered by the last one."""
    n = len(periods)
    lower = np.full(n, -np.inf)
    if n:
        lower[-1] = 0.0
    return pd.DataFrame({"device_id": device_id, "period": periods, "order": np.arange(n),
                         "kind": "shift", "initial_mwh": 0.0, "capacity_mwh": np.nan,
                         "lower_mwh": lower, "upper_mwh": 0.0, "charge_efficiency": 1.0,
                         "discharge_efficiency": 1.0})


def in_window_order(table: pd.DataFrame) -> pd.DataFrame:
    """The table with each device's rows contiguous and in window order (a copy if moved)."""
    device = table.device_id.to_numpy()
    starts = _run_starts(device)
    inside = np.ones(len(table), bool)
    inside[starts] = False
    if len(set(device[starts])) == len(starts) and (np.diff(table.order.to_numpy()) > 0)[
            inside[1:]].all():
        return table
    return table.sort_values(["device_id", "order"], kind="stable").reset_index(drop=True)


def validate_accounts(table: pd.DataFrame, bids: pd.DataFrame | None = None,
                      source: str = "energy") -> pd.DataFrame:
    """Check an energy table; doing nothing must be feasible for every account."""
    out = device_table(table, ENERGY_COLUMNS, source)
    bad_kind = ~out.kind.isin(ACCOUNT_KINDS)
    if bad_kind.any():
        raise InputError(f"unknown kind {out.kind[bad_kind].iloc[0]!r}", source=source,
                         field="kind", allowed=ACCOUNT_KINDS)
    for column in ("period", "order"):
        values = pd.to_numeric(out[column], errors="coerce")
        bad = values.isna() | (values < 0) | (values != values.round())
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise InputError(f"row {row + 1}: must be an integer >= 0, got "
                             f"{table[column].iloc[row]!r}", source=source, field=column)
        out[column] = values.astype(int)
    checks = {"initial_mwh": lambda v: np.isfinite(v) & (v >= 0),
              "capacity_mwh": lambda v: np.isnan(v) | (np.isfinite(v) & (v >= 0)),
              "lower_mwh": lambda v: ~np.isnan(v) & (v <= ENERGY_TOLERANCE),
              "upper_mwh": lambda v: ~np.isnan(v) & (v >= -ENERGY_TOLERANCE),
              "charge_efficiency": lambda v: (v > 0) & (v <= 1),
              "discharge_efficiency": lambda v: (v > 0) & (v <= 1)}
    allowed = {"initial_mwh": "a finite number >= 0", "capacity_mwh": "empty or >= 0",
               "lower_mwh": "<= 0 (doing nothing must be feasible)",
               "upper_mwh": ">= 0 (doing nothing must be feasible)",
               "charge_efficiency": "in (0, 1]", "discharge_efficiency": "in (0, 1]"}
    for column, ok in checks.items():
        values = pd.to_numeric(out[column], errors="coerce").to_numpy(dtype=float)
        bad = ~ok(values)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise InputError(f"row {row + 1}: must be {allowed[column]}, got "
                             f"{table[column].iloc[row]!r}", source=source, field=column)
        out[column] = values
    for column in ("period", "order"):
        if out.duplicated(["device_id", column]).any():
            raise InputError(f"a (device_id, {column}) pair appears twice", source=source,
                             field=column)
    per_device = out.groupby("device_id")
    for column in ("kind", "initial_mwh", "capacity_mwh", "charge_efficiency",
                   "discharge_efficiency"):
        if (per_device[column].nunique(dropna=False) > 1).any():
            raise InputError("must be the same in every row of a device", source=source,
                             field=column)
    if bids is not None:
        _check_bids_inside_windows(out, bids, source)
    return in_window_order(out)


def _check_bids_inside_windows(table: pd.DataFrame, bids: pd.DataFrame, source: str) -> None:
    """A P bid naming an energy-limited device must fall in one of its account's periods."""
    named = bids[bids.device_id.isin(set(table.device_id)) & is_active(bids["product"])]
    known = set(zip(table.device_id, table.period, strict=True))
    for device, period in zip(named.device_id, named.period, strict=True):
        if (device, int(period)) not in known:
            raise InputError(f"bids name device {device!r} in period {period}, outside its "
                             "energy account's periods", source=source, field="period")


def account_rows(table: pd.DataFrame, bids: pd.DataFrame) -> np.ndarray:
    """Row of `table` holding each bid's device and period; -1 where there is none."""
    if table.empty or bids.empty:
        return np.full(len(bids), -1)
    rows = pd.MultiIndex.from_arrays([table.device_id.to_numpy(), table.period.to_numpy()])
    return rows.get_indexer(pd.MultiIndex.from_arrays([bids.device_id.to_numpy(),
                                                       bids.period.to_numpy()]))


def _bid_coefficients(bids: pd.DataFrame, table: pd.DataFrame, hours: np.ndarray,
                      slot: np.ndarray | None = None
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bids that move an account: (bid positions, row of their period in `table`, MWh/MW).

    `slot` is `account_rows(table, bids)` when the caller already has it.
    """
    slot = account_rows(table, bids) if slot is None else slot
    positions = np.flatnonzero((slot >= 0) & is_active(bids["product"]))
    at = slot[positions]
    down = (bids["product"].to_numpy()[positions] == "P_down")
    per_mw = np.where(down, table.charge_efficiency.to_numpy()[at],
                      -1.0 / table.discharge_efficiency.to_numpy()[at]) * hours[positions]
    return positions, at, per_mw


def energy_rows(bids: pd.DataFrame, table: pd.DataFrame | None, hours: np.ndarray
                ) -> tuple[pd.DataFrame, tuple, np.ndarray, np.ndarray]:
    """Account rows for the LP's bid columns (`bids` in column order, `hours` theirs).

    Returns the rows' metadata, entries as (row, bid column, MWh per MW) with rows
    numbered from 0, and lower and upper bounds (MWh). A row before a device's first
    column, or without a finite bound, constrains nothing and is left out.
    """
    empty = (pd.DataFrame(columns=["period", *META_COLUMNS]),
             (np.zeros(0, int), np.zeros(0, int), np.zeros(0)), np.zeros(0), np.zeros(0))
    if table is None:
        return empty
    columns, at, per_mw = _bid_coefficients(bids, table, hours)
    if len(columns) == 0:
        return empty
    device = table.device_id.to_numpy()
    order = table.order.to_numpy()
    first_of = pd.Series(order[at]).groupby(device[at]).min()
    lower, upper = table.lower_mwh.to_numpy(), table.upper_mwh.to_numpy()
    keep = (order >= first_of.reindex(device).fillna(np.inf).to_numpy()) & (
        np.isfinite(lower) | np.isfinite(upper))
    row_of = np.full(len(table), -1)
    row_of[keep] = np.arange(keep.sum())
    # A bid enters every kept row of its device from its own period on (the table is
    # sorted by device and order, so those rows follow its own).
    end = _device_end(device)
    lengths = end[at] - at
    b = np.repeat(np.arange(len(at)), lengths)
    r = at[b] + np.arange(len(b)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    b, r = b[keep[r]], r[keep[r]]
    meta = pd.DataFrame({"period": table.period.to_numpy()[keep], "service": "ENERGY",
                         "element": "device", "element_id": device[keep], "value": 0.0,
                         "unit": "MWh", "bought": False, "fix": False, "cut": np.nan})
    return meta, (row_of[r], columns[b], per_mw[b]), lower[keep], upper[keep]


def _run_starts(device: np.ndarray) -> np.ndarray:
    """Positions where a new device's run of rows begins."""
    return np.flatnonzero(np.r_[True, device[1:] != device[:-1]]) if len(device) else (
        np.zeros(0, int))


def _device_end(device: np.ndarray) -> np.ndarray:
    """For each row of a table sorted by device: one past the last row of its device."""
    starts = _run_starts(device)
    ends = np.r_[starts[1:], len(device)]
    return np.repeat(ends, ends - starts)


def account_changes(table: pd.DataFrame, bids: pd.DataFrame, awarded: np.ndarray,
                    hours: np.ndarray, slot: np.ndarray | None = None) -> np.ndarray:
    """Cumulative account change after each row of `table` (MWh) for awarded quantities."""
    change = np.zeros(len(table))
    positions, at, per_mw = _bid_coefficients(bids, table, hours, slot)
    np.add.at(change, at, per_mw * awarded[positions])
    total = np.cumsum(change)
    starts = _run_starts(table.device_id.to_numpy())
    before = (total - change)[starts]  # what earlier devices add up to
    return total - np.repeat(before, np.diff(np.r_[starts, len(table)]))


def shift_accounts(table: pd.DataFrame, bids: pd.DataFrame, awarded: np.ndarray,
                   hours: np.ndarray) -> pd.DataFrame:
    """The accounts' bounds for what is still free after `awarded` (later stages)."""
    if table.empty or not awarded.any():
        return table
    done = account_changes(table, bids, awarded, hours)
    return table.assign(lower_mwh=table.lower_mwh - done, upper_mwh=table.upper_mwh - done)


def _levels(table: pd.DataFrame, change: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(soc_mwh, deferred_mwh) of every account row after cumulative changes `change`.

    NaN where the row's kind has no such level (a battery defers nothing).
    """
    storage = (table.kind == "storage").to_numpy()
    return (np.where(storage, table.initial_mwh.to_numpy() + change, np.nan),
            np.where(storage, np.nan, -change))


def energy_states(table: pd.DataFrame, bids: pd.DataFrame, awarded: np.ndarray,
                  hours: np.ndarray, slot: np.ndarray | None = None) -> pd.DataFrame:
    """Per account period after the awards: state of charge or energy still deferred.

    soc_mwh for batteries, deferred_mwh (energy deferred, not yet recovered) for shift
    accounts, MWh.
    """
    soc, deferred = _levels(table, account_changes(table, bids, awarded, hours, slot))
    return pd.DataFrame({"device_id": table.device_id.to_numpy(),
                         "period": table.period.to_numpy(),
                         "soc_mwh": soc, "deferred_mwh": deferred})


def bid_states(table: pd.DataFrame, bids: pd.DataFrame, awarded: np.ndarray,
               hours: np.ndarray, slot: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """`energy_states` of each bid's device after the bid's period (NaN without one).

    `slot` is `account_rows(table, bids)` when the caller already has it.
    """
    slot = account_rows(table, bids) if slot is None else slot
    if not len(table):
        return {column: np.full(len(bids), np.nan) for column in ("soc_mwh", "deferred_mwh")}
    levels = _levels(table, account_changes(table, bids, awarded, hours, slot))
    has = slot >= 0
    at = np.where(has, slot, 0)
    return {column: np.where(has, level[at], np.nan)
            for column, level in zip(("soc_mwh", "deferred_mwh"), levels, strict=True)}


def energy_kpis(table: pd.DataFrame, awards: pd.DataFrame) -> dict[str, float]:
    """Energy shifted and recovered by shift accounts, and battery cycles, of a round.

    `awards` carry `bid_states`: a bid with a soc_mwh sells from a battery, one with a
    deferred_mwh from a shift account.

    energy_shifted: MWh deferred (P_up) by EV fleets and shiftable loads;
    rebound_energy: MWh they recover later (P_down), equal to it when every account
    closes; storage_cycles: equivalent full cycles of the batteries, their awarded
    throughput (charge + discharge, MWh) over twice their energy (NaN without one).
    """
    storage = ~np.isnan(awards.soc_mwh.to_numpy(dtype=float))
    shift = ~np.isnan(awards.deferred_mwh.to_numpy(dtype=float))
    energy = awards.awarded.to_numpy() * awards.hours.to_numpy()
    product = awards["product"].to_numpy()
    first = _run_starts(table.device_id.to_numpy())
    capacity = table.capacity_mwh.to_numpy()[first][
        (table.kind.to_numpy()[first] == "storage")].sum()
    throughput = energy[storage & np.isin(product, ("P_up", "P_down"))].sum()
    return {"energy_shifted": float(energy[shift & (product == "P_up")].sum()),
            "rebound_energy": float(energy[shift & (product == "P_down")].sum()),
            "storage_cycles": float(throughput / (2 * capacity)) if capacity > 0
            else float("nan")}
