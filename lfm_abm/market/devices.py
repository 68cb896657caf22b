"""Devices: the P-Q capability of one physical unit shared by several bids.

A device row gives, per period, the unit's present injection (p_mw, q_mvar; injection
convention) and apparent-power rating s_mva. Bids naming the device are coupled by
(P0 + dP)^2 + (Q0 + dQ)^2 <= S^2, which the LP enforces as a polygon.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from lfm_abm.errors import InputError
from lfm_abm.market.capability import DEVICE_COLUMNS


def validate_devices(devices: pd.DataFrame, bids: pd.DataFrame | None = None,
                     source: str = "devices") -> pd.DataFrame:
    """Check a device table; every (device, period) that a bid names must be present."""
    missing = [c for c in DEVICE_COLUMNS if c not in devices.columns]
    if missing:
        raise InputError(f"missing column {missing[0]!r}", source=source, field=missing[0],
                         allowed=DEVICE_COLUMNS)
    out = devices[DEVICE_COLUMNS].copy()
    out["device_id"] = out.device_id.astype(str)
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
        named = bids.loc[bids.device_id != "", ["device_id", "period"]].drop_duplicates()
        known = set(zip(out.device_id, out.period, strict=True))
        for device, period in zip(named.device_id, named.period, strict=True):
            if (device, period) not in known:
                raise InputError(f"bids name device {device!r} in period {period}, which the "
                                 "device table does not describe", source=source,
                                 field="device_id")
    return out.reset_index(drop=True)
