"""Devices: physical units whose bids the LP couples.

A device is named by the `device_id` of its bids. Two tables describe what couples them:

* capability (DEVICE_COLUMNS): per period the unit's present injection (p_mw, q_mvar;
  injection convention) and apparent-power rating s_mva; its bids keep
  (P0 + dP)^2 + (Q0 + dQ)^2 <= S^2, which the LP enforces as a polygon (`capability.py`);
* energy (ENERGY_COLUMNS): per period of its window the bounds of its energy account,
  a battery's state of charge or energy deferred and due back (`energy.py`).

A device in neither table couples nothing: its id only says which asset a bid sells.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from lfm_abm.errors import InputError
from lfm_abm.market.bids import PRODUCT_SIGN, device_table, families
from lfm_abm.market.capability import DEVICE_COLUMNS
from lfm_abm.market.energy import (
    empty_accounts,
    in_window_order,
    shift_accounts,
    validate_accounts,
)


def _no_capability() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=str if c == "device_id" else float)
                         for c in DEVICE_COLUMNS})


@dataclass(frozen=True)
class Devices:
    """The capability and energy tables of the devices bids name (see the module doc)."""

    capability: pd.DataFrame = field(default_factory=_no_capability)
    energy: pd.DataFrame = field(default_factory=empty_accounts)

    def __post_init__(self) -> None:
        # The energy rows read each device's periods as one contiguous run in window order.
        object.__setattr__(self, "energy", in_window_order(self.energy))

    def validated(self, bids: pd.DataFrame | None = None, capability_source: str = "devices",
                  energy_source: str = "energy") -> Devices:
        """Both tables checked (against the bids that name their devices)."""
        return Devices(validate_capability(self.capability, bids, capability_source),
                       validate_accounts(self.energy, bids, energy_source))

    def after(self, bids: pd.DataFrame, awarded: np.ndarray, hours: np.ndarray) -> Devices:
        """The devices as later stages see them: moved by the quantities `awarded`.

        `hours` is the period length of every bid.
        """
        if not awarded.any():
            return self
        return Devices(_move_capability(self.capability, bids, awarded),
                       shift_accounts(self.energy, bids, awarded, hours))

    @functools.cached_property
    def key(self) -> str:
        """Content key: the LP's device rows depend on nothing else."""
        digest = hashlib.sha1()
        for table in (self.capability, self.energy):
            digest.update(pd.util.hash_pandas_object(table, index=False).to_numpy().tobytes())
        return digest.hexdigest()


def validate_capability(devices: pd.DataFrame, bids: pd.DataFrame | None = None,
                        source: str = "devices") -> pd.DataFrame:
    """Check a capability table; a bid naming a device it lists must find its period."""
    out = device_table(devices, DEVICE_COLUMNS, source)
    for column in ("p_mw", "q_mvar", "s_mva"):
        out[column] = pd.to_numeric(out[column], errors="coerce")
        bad = ~np.isfinite(out[column])
        if column == "s_mva":
            bad |= out[column] < 0
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise InputError(f"row {row + 1}: must be a finite number"
                             f"{' >= 0' if column == 's_mva' else ''}, got "
                             f"{devices[column].iloc[row]!r}", source=source, field=column)
    out["period"] = pd.to_numeric(out.period, errors="coerce")
    if out.period.isna().any():
        row = int(np.flatnonzero(out.period.isna().to_numpy())[0])
        raise InputError(f"row {row + 1}: must be an integer", source=source, field="period")
    out["period"] = out.period.astype(int)
    if out.duplicated(["device_id", "period"]).any():
        raise InputError("a (device_id, period) pair appears twice", source=source,
                         field="device_id")
    if bids is not None:
        named = bids.loc[bids.device_id.isin(set(out.device_id)),
                         ["device_id", "period"]].drop_duplicates()
        known = set(zip(out.device_id, out.period, strict=True))
        for device, period in zip(named.device_id, named.period, strict=True):
            if (device, period) not in known:
                raise InputError(f"bids name device {device!r} in period {period}, which the "
                                 "device table does not describe", source=source,
                                 field="device_id")
    return out.reset_index(drop=True)


def _move_capability(devices: pd.DataFrame, bids: pd.DataFrame,
                     awarded: np.ndarray) -> pd.DataFrame:
    """Device operating points moved by their awarded P and Q bids."""
    if devices.empty:
        return devices
    won = np.flatnonzero(awarded > 0)  # a few of many bids: select before anything else
    flex = bids.iloc[won]
    flex = flex.assign(delta=awarded[won] * flex["product"].map(PRODUCT_SIGN).to_numpy(),
                       family=families(flex["product"]))
    flex = flex[flex.device_id.isin(set(devices.device_id))]
    if flex.empty:
        return devices
    moved = flex.groupby(["device_id", "period", "family"]).delta.sum().unstack(
        "family", fill_value=0.0)
    out = devices.set_index(["device_id", "period"])
    for family, column in (("P", "p_mw"), ("Q", "q_mvar")):
        if family in moved:
            out[column] = out[column].add(moved[family], fill_value=0.0).reindex(out.index)
    return out.reset_index()[DEVICE_COLUMNS]


#: No device table: bids couple nothing (shared: do not modify).
NO_DEVICES = Devices()
