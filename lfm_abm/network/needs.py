"""Grid needs: what the DSO must buy flexibility for in each period.

* Congestion (CM): a line or 2-winding trafo loaded above `cm_margin` x its thermal
  limit. The need is the excess, in MVA (and kA): for lines sqrt(3) x V_n x excess
  current, for trafos the excess loading times the rating.
* Voltage (VC): a bus whose |V| lies outside the target band
  [vmin + vc_tolerance, vmax - vc_tolerance]. The need is the distance to the band in p.u.

The same definitions are used for baseline needs, for the market's constraints and
for AC validation after the market, so "residual need" means exactly the same thing.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Annotated

import numpy as np
import pandas as pd

from lfm_abm.errors import InputError
from lfm_abm.network.operating_points import OperatingPoint
from lfm_abm.schema import Field, Float, build, settings

SQRT3 = math.sqrt(3.0)
NEED_COLUMNS = ["period", "label", "service", "element", "element_id", "quantity", "value",
                "limit", "need", "unit", "need_ka"]
#: Needs smaller than this are numerical noise of the power flow (p.u. or MVA).
NEED_EPS = 1e-7


@settings("limits")
class NeedLimits:
    """Operating limits that define needs.

    vmin/vmax: statutory voltage band (p.u.); vc_tolerance: safety margin that tightens
    the band on both sides (p.u.); cm_margin: fraction of the thermal limit the DSO
    targets (1.0 = the rating itself, 0.95 = keep 5 % headroom).
    """

    vmin: Annotated[Float, Field(gt=0.5, lt=1.5)] = 0.95
    vmax: Annotated[Float, Field(gt=0.5, lt=1.5)] = 1.05
    vc_tolerance: Annotated[Float, Field(ge=0)] = 0.0
    cm_margin: Annotated[Float, Field(gt=0, le=1.5)] = 1.0

    def __post_init__(self) -> None:
        if not self.vmin < self.vmax:
            raise InputError(f"vmin {self.vmin} is not below vmax {self.vmax}",
                             field="limits.vmin")
        if not self.vc_tolerance < (self.vmax - self.vmin) / 2:
            raise InputError(f"invalid value {self.vc_tolerance!r}", field="limits.vc_tolerance",
                             allowed=["less than half the voltage band"])

    @property
    def v_low(self) -> float:
        """Lower edge of the target voltage band (p.u.)."""
        return self.vmin + self.vc_tolerance

    @property
    def v_high(self) -> float:
        """Upper edge of the target voltage band (p.u.)."""
        return self.vmax - self.vc_tolerance

    @classmethod
    def from_dict(cls, data: Mapping[str, object], source: str = "limits") -> NeedLimits:
        """Build from a TOML table; unknown keys are an error naming the allowed ones."""
        return build(cls, data, source)


def _rows(op: OperatingPoint, service: str, element: str, ids: np.ndarray, quantity: str,
          value: np.ndarray, limit: float | np.ndarray, need: np.ndarray, unit: str,
          need_ka: np.ndarray) -> dict[str, np.ndarray]:
    n = len(ids)
    return {"period": np.full(n, op.period), "label": np.full(n, op.label, dtype=object),
            "service": np.full(n, service, dtype=object),
            "element": np.full(n, element, dtype=object), "element_id": ids.astype(int),
            "quantity": np.full(n, quantity, dtype=object), "value": value,
            "limit": np.broadcast_to(limit, n).astype(float), "need": need,
            "unit": np.full(n, unit, dtype=object), "need_ka": need_ka}


def _congestion_rows(op: OperatingPoint, limits: NeedLimits) -> list[dict[str, np.ndarray]]:
    rows = []
    line = op.branches.line
    if len(line):
        excess_ka = line.i_ka.to_numpy() - line.max_i_ka.to_numpy() * limits.cm_margin
        excess_mva = excess_ka * SQRT3 * line.vn_kv.to_numpy()
        over = excess_mva > NEED_EPS
        if over.any():
            rows.append(_rows(op, "CM", "line", line.index.to_numpy()[over], "loading_percent",
                              line.loading_percent.to_numpy()[over], 100.0 * limits.cm_margin,
                              excess_mva[over], "MVA", excess_ka[over]))
    trafo = op.branches.trafo
    if len(trafo):
        excess_mva = ((trafo.loading_percent.to_numpy() - 100.0 * limits.cm_margin) / 100.0
                      * trafo.sn_mva.to_numpy())
        over = excess_mva > NEED_EPS
        if over.any():
            rows.append(_rows(op, "CM", "trafo", trafo.index.to_numpy()[over], "loading_percent",
                              trafo.loading_percent.to_numpy()[over], 100.0 * limits.cm_margin,
                              excess_mva[over], "MVA",
                              (excess_mva / (SQRT3 * trafo.vn_hv_kv.to_numpy()))[over]))
    return rows


def _voltage_rows(op: OperatingPoint, limits: NeedLimits) -> list[dict[str, np.ndarray]]:
    vm = op.vm_pu.to_numpy()
    ids = op.vm_pu.index.to_numpy()
    rows = []
    for excess, limit in ((vm - limits.v_high, limits.v_high), (limits.v_low - vm, limits.v_low)):
        over = excess > NEED_EPS
        if over.any():
            rows.append(_rows(op, "VC", "bus", ids[over], "vm_pu", vm[over], limit, excess[over],
                              "p.u.", np.full(int(over.sum()), np.nan)))
    return rows


_DTYPES = {"period": int, "label": object, "service": object, "element": object,
           "element_id": int, "quantity": object, "value": float, "limit": float,
           "need": float, "unit": object, "need_ka": float}


def _frame(rows: list[dict[str, np.ndarray]]) -> pd.DataFrame:
    if not rows:  # typed, so that arithmetic on an empty table works
        return pd.DataFrame({c: pd.Series(dtype=_DTYPES[c]) for c in NEED_COLUMNS})
    return pd.DataFrame({c: np.concatenate([r[c] for r in rows]) for c in NEED_COLUMNS})


def find_needs(points: Iterable[OperatingPoint], limits: NeedLimits | None = None) -> pd.DataFrame:
    """Tidy table of all CM and VC needs over the given operating points.

    Columns: period, label, service (CM/VC), element (line/trafo/bus), element_id,
    quantity, value, limit, need, unit (MVA for CM, p.u. for VC), need_ka (CM only).
    """
    limits = limits or NeedLimits()
    rows = []
    for op in points:
        rows += _congestion_rows(op, limits) + _voltage_rows(op, limits)
    return _frame(rows)


def needs_by_period(needs: pd.DataFrame, labels: list[str]) -> pd.DataFrame:
    """Compact per-period view: counts, totals and the worst branch and bus of each period."""
    rows = []
    for period, label in enumerate(labels):
        here = needs[needs.period == period]
        cm = here[here.service == "CM"].sort_values("need", ascending=False)
        vc = here[here.service == "VC"].sort_values("need", ascending=False)
        rows.append({
            "period": label,
            "CM": len(cm),
            "CM need MVA": round(float(cm.need.sum()), 3),
            "worst branch": (f"{cm.element.iloc[0]} {cm.element_id.iloc[0]} "
                             f"{cm.value.iloc[0]:.0f}%") if len(cm) else "-",
            "VC": len(vc),
            "VC need p.u.": round(float(vc.need.sum()), 4),
            "worst bus": f"bus {vc.element_id.iloc[0]} {vc.value.iloc[0]:.3f}" if len(vc) else "-",
        })
    return pd.DataFrame(rows)
