"""The clearing LP of one stage, assembled from its parts for all periods at once.

Columns, in this order: the accepted quantity x_b in [0, q_b] of every admitted bid
(q_b = 0 when its price is above the reservation price), the DSO's emergency action
e (curtailment and load shedding per bus, `emergency.py`), and the unresolvable slacks
u of the rows the stage must fix. With injection changes
dP_n = sum(P_up) - sum(P_down) + shed_n - curtail_n (same for Q without emergency) and
sensitivities S from the stage's AC point:

    min  sum_b price_b h_t x_b + sum_e c_e h_t e + sum_r M_r h_t u_r
    network rows (`network_rows.py`): bought limits, and no-harm rows for the rest
    capability rows (`capability.py`): each device's P-Q circle as a polygon
    energy rows (`energy.py`): state of charge and deferred energy of each device

h_t is the period length in hours. c_e is the emergency action's price in the objective
(`emergency.objective_prices`): curtailment at curtailment_price, shedding at VOLL, each
a hair above (MARKET_FIRST) so that an offer at the same price and effect wins the tie:
market-based procurement before non-market-based action (EU Directive 2019/944, Art. 32
and 40(5)). Under the "market-first" priority every c_e is scaled up so that the
cheapest is the reservation price: an admitted offer beats emergency action of the same
effect per MW, and the actions keep their price ratio. Every reported cost uses the
action's own price. M_r is UNRESOLVABLE_PER_UNIT x the dearest c_e per MVA (CM) or per
p.u. (VC): large enough that the LP uses every helpful MW of emergency action before it
leaves need unresolved. The LP is engine-agnostic: rows are row_lower <= A x <=
row_upper, columns 0 <= x <= col_upper. Periods are independent blocks but for the
energy rows, which couple the periods of an energy-limited device's window.

Branch limits are circles in the current phasor; the LP bounds them by tangents.
`branch_cuts_for` finds branches whose predicted current still lies outside its circle
(between two tangents) and returns a tangent at the predicted angle; appended with
`LinearProgram.append`, they tighten the same LP until every branch is within its bound
(Kelley's cutting planes; the solver keeps its basis).
"""

from __future__ import annotations

import functools
from collections.abc import Collection
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from lfm_abm.market.bids import PRODUCT_SIGN, families, is_active, same_slots, slot_arrays
from lfm_abm.market.capability import capability_rows
from lfm_abm.market.designs import Stage
from lfm_abm.market.devices import NO_DEVICES, Devices
from lfm_abm.market.emergency import (
    ACTION_SIGN,
    EMERGENCY_META,
    EmergencyCapacity,
    emergency_columns,
    objective_prices,
)
from lfm_abm.market.energy import energy_rows
from lfm_abm.market.network_rows import META_COLUMNS, BranchSet, ElementKey, network_rows
from lfm_abm.market.params import MarketParams
from lfm_abm.network.needs import NeedLimits
from lfm_abm.network.operating_points import OperatingPoint

#: Cost of need left after full emergency action, x the dearest emergency action's price in
#: the objective, per MVA (CM) or per p.u. (VC).
#: The LP prefers emergency action whose effect exceeds 1e-3 MVA or 1e-5 p.u. per MW.
UNRESOLVABLE_PER_UNIT = {"CM": 1e3, "VC": 1e5}
#: A predicted branch current this far outside its bound (share of the bound) gets a cut:
#: 0.1 %, well below the linearisation error of the AC check (tenths of a percent).
CUT_TOLERANCE = 1e-3
#: Row services of a device's own constraints (P-Q circle, energy account).
DEVICE_SERVICES = ("CAP", "ENERGY")


@dataclass(frozen=True)
class PeriodRows:
    """The network rows of one period and their coefficients for every PQ bus.

    coef_p/coef_q: (rows x buses) change of the row's quantity (MVA or p.u.) per MW/MVAr
    injected at each bus. Bid coefficients and locational prices are read from them.
    """

    period: int
    hours: float
    rows: np.ndarray  # positions of these rows in the LP
    buses: pd.Index
    coef_p: np.ndarray
    coef_q: np.ndarray
    branches: list[BranchSet]  # screened branches, for cuts added later


@dataclass(frozen=True)
class NewRows:
    """Rows to append to an LP: metadata, bounds, entries and per-period coefficients."""

    meta: pd.DataFrame
    lower: np.ndarray
    upper: np.ndarray
    matrix: sp.csr_matrix  # new rows x LP columns
    per_period: dict[int, tuple[np.ndarray, np.ndarray]]  # block -> (coef_p, coef_q)


@dataclass
class LinearProgram:
    """Engine-agnostic clearing LP plus the bookkeeping to read its solution back."""

    cost: np.ndarray  # EUR per unit of each column
    col_upper: np.ndarray
    matrix: sp.csc_matrix
    row_lower: np.ndarray
    row_upper: np.ndarray
    bid_index: np.ndarray  # position in the bid table of each bid column
    rows: pd.DataFrame  # per row: period, service, element, element_id, value, unit, ...
    emergency: pd.DataFrame  # per emergency column: period, bus, action, hours
    slack_row: np.ndarray  # LP row of each unresolvable slack column
    periods: list[PeriodRows]
    slots: tuple[np.ndarray, ...]  # slot columns of the bid columns: same slots, same rows
    build_quantity: np.ndarray  # bid quantities the capability rows were selected for
    bid_hours: np.ndarray  # period length of each bid column
    injection: sp.csr_matrix  # (block, P|Q, bus) injection change per unit of each column
    branch_slack: dict[tuple[int, str, str], int]  # slack column of each branch to fix
    table_slots: tuple[np.ndarray, ...] = ()  # slots of the whole table they came from

    @functools.cached_property
    def is_device_row(self) -> np.ndarray:
        """True for device rows, capability and energy (their duals are not locational)."""
        return self.rows.service.isin(DEVICE_SERVICES).to_numpy()

    @functools.cached_property
    def matrix_t(self) -> sp.csr_matrix:
        """Transpose of the matrix: a view sharing its arrays (no copy)."""
        return self.matrix.T

    def bid_values(self, y: np.ndarray) -> np.ndarray:
        """(A^T y) over the bid columns (prices read the duals through it every round)."""
        return np.asarray(self.matrix_t @ y).ravel()[: self.n_bids]

    @property
    def n_bids(self) -> int:
        """Number of bid columns (they come first)."""
        return len(self.bid_index)

    @property
    def emergency_columns(self) -> slice:
        """Positions of the emergency columns (after the bids)."""
        return slice(self.n_bids, self.n_bids + len(self.emergency))

    @property
    def slack_columns(self) -> slice:
        """Positions of the unresolvable slack columns (last)."""
        return slice(self.n_bids + len(self.emergency), self.n_cols)

    @property
    def n_cols(self) -> int:
        """Number of columns (bids, emergency action, slacks)."""
        return len(self.cost)

    def append(self, new: NewRows) -> None:
        """Add rows (tangent cuts) in place; positions of existing rows do not change."""
        first = self.matrix.shape[0]
        self.matrix = sp.vstack([self.matrix, new.matrix.tocsc()], format="csc")
        self.row_lower = np.concatenate([self.row_lower, new.lower])
        self.row_upper = np.concatenate([self.row_upper, new.upper])
        self.rows = pd.concat([self.rows, new.meta], ignore_index=True)
        at = first
        for k, (coef_p, coef_q) in new.per_period.items():
            block = self.periods[k]
            self.periods[k] = PeriodRows(
                block.period, block.hours, np.concatenate([block.rows, at + np.arange(
                    len(coef_p))]), block.buses, np.vstack([block.coef_p, coef_p]),
                np.vstack([block.coef_q, coef_q]), block.branches)
            at += len(coef_p)
        for name in ("is_device_row", "matrix_t"):
            self.__dict__.pop(name, None)


#: Bid columns the LP is built from (the ids stay in the bid table).
LP_BID_COLUMNS = ["bus", "period", "product", "quantity", "price", "device_id"]


def admitted(bids: pd.DataFrame, stage: Stage, buses: pd.Index,
             periods: Collection[int]) -> np.ndarray:
    """Positions of bids with a column: admitted product, PQ bus, a period of the LP.

    Price does not decide: a bid above the reservation price keeps its column with an
    upper bound of 0, so the LP structure (and the warm start) survives price changes.
    """
    ok = (families(bids["product"]).isin(stage.products) & bids.bus.isin(buses)
          & bids.period.isin(list(periods)))
    return np.flatnonzero(ok.to_numpy())


def bid_terms(prices: np.ndarray, quantities: np.ndarray, hours: np.ndarray,
              params: MarketParams) -> tuple[np.ndarray, np.ndarray]:
    """Column costs (EUR per MW) and upper bounds (MW) of bids.

    Bids dearer than the reservation price are not admitted: upper bound 0 (their cost
    is clipped to the reservation price only to keep the LP well scaled).
    """
    reservation = params.max_bid_price
    above = prices > reservation
    return (np.where(above, reservation, prices) * hours,
            np.where(above, 0.0, quantities))


def build_lp(points: list[OperatingPoint], bids: pd.DataFrame, stage: Stage,
             limits: NeedLimits, params: MarketParams,
             devices: Devices | None = None,
             emergency: EmergencyCapacity | None = None,
             fix: Collection[ElementKey] | None = None) -> LinearProgram:
    """Assemble the clearing LP of one stage over the periods of `points`.

    `bids` must be validated; bids the stage does not admit get no column. `emergency`
    gives the DSO's emergency capacity (None: no emergency action, every unmet need is
    unresolvable); `fix` restricts the elements the stage must bring back within their
    limits (default: all elements of the services it buys).
    """
    buses = points[0].sens.buses
    hours_of = {op.period: op.hours for op in points}
    bid_index = admitted(bids, stage, buses, hours_of)
    if len(bid_index) == len(bids) and bids.index.equals(pd.RangeIndex(len(bids))):
        chosen = bids  # every bid admitted, already numbered 0..n-1: no copy (read only)
    else:  # only the columns the LP reads, no second copy for the new index
        chosen = bids.iloc[bid_index, [bids.columns.get_loc(c) for c in LP_BID_COLUMNS]]
        chosen.index = pd.RangeIndex(len(chosen))
    quantity = chosen.quantity.to_numpy()
    hours = _period_lookup(hours_of)[chosen.period.to_numpy()]
    cost, upper_bound = bid_terms(chosen.price.to_numpy(), quantity, hours, params)
    sign = chosen["product"].map(PRODUCT_SIGN).to_numpy()
    is_p = is_active(chosen["product"])
    bus_position = pd.Series(np.arange(len(buses)), index=buses)

    row_meta: list[dict] = []
    lower, upper, periods, emergency_meta, emergency_upper = [], [], [], [], []
    bid_entries: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    emergency_entries: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    n_rows = n_emergency = 0
    empty = np.zeros((0, len(buses)))
    for op in points:
        blocks, branches = network_rows(op, stage, limits, params, fix)
        cols = np.flatnonzero(chosen.period.to_numpy() == op.period)
        must_fix = any(b["meta"]["fix"].any() for b in blocks)
        if not len(cols) and not must_fix:
            continue  # nothing can move and nothing must: the period's rows are idle
        cp = np.vstack([b["coef_p"] for b in blocks]) if blocks else empty
        cq = np.vstack([b["coef_q"] for b in blocks]) if blocks else empty
        positions = n_rows + np.arange(len(cp))
        periods.append(PeriodRows(op.period, op.hours, positions, buses, cp, cq, branches))
        for b in blocks:
            row_meta.append({"period": np.full(len(b["lower"]), op.period), **b["meta"]})
            lower.append(b["lower"])
            upper.append(b["upper"])
        if blocks and len(cols):
            at = bus_position[chosen.bus.to_numpy()[cols]].to_numpy()
            values = np.where(is_p[cols][None, :], cp[:, at], cq[:, at]) * sign[cols]
            r, c = np.nonzero(np.abs(values) >= params.min_coefficient)
            bid_entries.append((positions[r].astype(np.int32), cols[c].astype(np.int32),
                                values[r, c]))  # int32 as HiGHS's: half the memory
        if emergency is not None and must_fix:
            meta, bound, (r, c, v) = emergency_columns(op.period, op.hours, buses, cp,
                                                       emergency, params.min_coefficient)
            emergency_meta.append(meta)
            emergency_upper.append(bound)
            emergency_entries.append((positions[r], n_emergency + c, v))
            n_emergency += len(meta)
        n_rows += len(cp)

    devices = devices or NO_DEVICES
    device_rows = (capability_rows(chosen, devices.capability, params.capability_cuts,
                                   quantity),
                   energy_rows(chosen, devices.energy if params.energy_limits else None, hours))
    for meta, (r, c, v), low, up in device_rows:
        if not len(meta):
            continue
        bid_entries.append((n_rows + r, c, v))
        row_meta.append({name: meta[name].to_numpy() for name in meta.columns})
        lower.append(low)
        upper.append(up)
        n_rows += len(meta)

    columns = ["period", *META_COLUMNS]
    rows = (pd.DataFrame({c: np.concatenate([m[c] for m in row_meta]) for c in columns})
            if row_meta else pd.DataFrame(columns=columns))
    rows["period"] = rows["period"].astype(int)
    rows[["bought", "fix"]] = rows[["bought", "fix"]].astype(bool)
    row_lower = np.concatenate(lower) if lower else np.zeros(0)
    row_upper = np.concatenate(upper) if upper else np.zeros(0)
    emergency_price = objective_prices(params)
    slack_row, slack_entries, slack_cost = unresolvable_slacks(
        rows, row_upper, hours_of, max(emergency_price.values()), len(chosen) + n_emergency)
    emergency_frame = (pd.concat(emergency_meta, ignore_index=True) if emergency_meta
                       else pd.DataFrame(columns=EMERGENCY_META))
    entries = [*bid_entries,
               *((r, len(chosen) + c, v) for r, c, v in emergency_entries), slack_entries]
    r, c = (np.concatenate([e[k] for e in entries], dtype=np.int32, casting="same_kind")
            for k in range(2))
    v = np.concatenate([e[2] for e in entries])
    n_cols = len(chosen) + n_emergency + len(slack_row)
    matrix = sp.csc_matrix((v, (r, c)), shape=(n_rows, n_cols))
    injection = _injection_map(periods, chosen, emergency_frame, n_cols)
    branch_slack = _branch_slack_columns(rows, slack_row, len(chosen) + n_emergency)
    slots = slot_arrays(chosen)
    return LinearProgram(
        cost=np.concatenate([cost, emergency_frame.action.map(emergency_price).to_numpy(
                                 dtype=float) * emergency_frame.hours.to_numpy(dtype=float),
                             slack_cost]),
        col_upper=np.concatenate([upper_bound, *emergency_upper,
                                  np.full(len(slack_row), np.inf)]),
        matrix=matrix,
        row_lower=row_lower,
        row_upper=row_upper,
        bid_index=bid_index,
        rows=rows,
        emergency=emergency_frame,
        slack_row=slack_row,
        periods=periods,
        slots=slots,
        build_quantity=quantity.copy(),
        bid_hours=hours,
        injection=injection,
        branch_slack=branch_slack,
        table_slots=slots if len(chosen) == len(bids) else slot_arrays(bids),
    )


def _period_lookup(values: dict[int, float]) -> np.ndarray:
    """An array indexed by period holding `values` (NaN for periods not in it)."""
    table = np.full(max(values, default=-1) + 1, np.nan)
    table[list(values)] = list(values.values())
    return table


def _injection_map(periods: list[PeriodRows], chosen: pd.DataFrame, emergency: pd.DataFrame,
                   n_cols: int) -> sp.csr_matrix:
    """Net injection change per unit of each column, by (period block, P|Q, bus).

    Rows are block-major, then P (0) or Q (1), then the bus's position among the PQ
    buses; cutting planes read predicted injections, and new rows' coefficients, off it.
    """
    buses = periods[0].buses if periods else pd.Index([])
    block_of = {block.period: k for k, block in enumerate(periods)}
    bus_position = pd.Series(np.arange(len(buses)), index=buses)

    def row(period: pd.Series, reactive: np.ndarray, bus: pd.Series) -> np.ndarray:
        block = period.map(block_of).to_numpy(dtype=int)
        return (2 * block + reactive.astype(int)) * len(buses) + bus_position.loc[
            bus.to_numpy(dtype=int)].to_numpy()

    bid_sign = chosen["product"].map(PRODUCT_SIGN).to_numpy(dtype=float)
    action_sign = emergency.action.map(ACTION_SIGN).to_numpy(dtype=float)
    rows = np.concatenate([row(chosen.period, ~is_active(chosen["product"]), chosen.bus),
                           row(emergency.period, np.zeros(len(emergency), bool), emergency.bus)])
    return sp.csr_matrix((np.concatenate([bid_sign, action_sign]),
                          (rows, np.arange(len(chosen) + len(emergency)))),
                         shape=(2 * len(buses) * len(periods), n_cols))


def _branch_slack_columns(rows: pd.DataFrame, slack_row: np.ndarray,
                          first_column: int) -> dict[tuple[int, str, str], int]:
    """Slack column of every branch to fix, by (period, element, element id)."""
    cm = slack_row[rows.service.to_numpy()[slack_row] == "CM"]  # branch slacks come first
    keys = zip(rows.period.to_numpy()[cm], rows.element.to_numpy()[cm],
               rows.element_id.to_numpy()[cm], strict=True)
    return {(int(p), str(e), str(i)): first_column + j for j, (p, e, i) in enumerate(keys)}


def branch_cuts_for(lp: LinearProgram, x: np.ndarray,
                    min_coefficient: float) -> NewRows | None:
    """Tangent cuts for branches the solution `x` pushes outside their bound.

    A cut is placed at the predicted current's angle of every branch outside its bound by
    more than CUT_TOLERANCE of it; None when there is none. A branch whose unresolvable
    slack is in use is left alone: it is outside by choice.
    """
    injection = lp.injection @ x
    metas, lower, upper, rows, cols, values = [], [], [], [], [], []
    per_period: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    n_new = 0
    for k, block in enumerate(lp.periods):
        n = len(block.buses)
        dp = injection[2 * k * n:(2 * k + 1) * n]
        dq = injection[(2 * k + 1) * n:(2 * k + 2) * n]
        new_p, new_q = [], []
        for branches in block.branches:
            predicted = branches.predicted(dp, dq)
            over = np.abs(predicted) > branches.bound * (1 + CUT_TOLERANCE)
            for position in np.flatnonzero(over):
                column = lp.branch_slack.get((block.period, branches.element,
                                              str(branches.ids[position])))
                if column is not None and x[column] > 1e-9:
                    over[position] = False
            at = np.flatnonzero(over)
            if len(at) == 0:
                continue
            cut = branches.cut(at, np.angle(predicted[at]))
            coefficients = sp.csr_matrix(np.hstack([cut["coef_p"], cut["coef_q"]]))
            entries = (coefficients @ lp.injection[2 * k * n:(2 * k + 2) * n]).tocoo()
            keep = np.abs(entries.data) >= min_coefficient
            rows.append(n_new + entries.row[keep])
            cols.append(entries.col[keep])
            values.append(entries.data[keep])
            for j, i in enumerate(branches.ids[at]):
                column = lp.branch_slack.get((block.period, branches.element, str(i)))
                if column is not None:
                    rows.append(np.array([n_new + j]))
                    cols.append(np.array([column]))
                    values.append(np.array([-1.0]))
            metas.append(pd.DataFrame({"period": block.period, **cut["meta"]}))
            lower.append(cut["lower"])
            upper.append(cut["upper"])
            new_p.append(cut["coef_p"])
            new_q.append(cut["coef_q"])
            n_new += len(at)
        if new_p:
            per_period[k] = (np.vstack(new_p), np.vstack(new_q))
    if not n_new:
        return None
    matrix = sp.csr_matrix((np.concatenate(values), (np.concatenate(rows),
                                                     np.concatenate(cols))),
                           shape=(n_new, lp.n_cols))
    return NewRows(pd.concat(metas, ignore_index=True), np.concatenate(lower),
                   np.concatenate(upper), matrix, per_period)


def unresolvable_slacks(rows: pd.DataFrame, row_upper: np.ndarray,
                         hours_of: dict[int, float], price: float, first_column: int
                         ) -> tuple[np.ndarray, tuple[np.ndarray, ...], np.ndarray]:
    """Slack columns of the rows to fix: (row of each slack, entries, cost per unit).

    One slack per violated branch, shared by its cuts (-1 on each); one per violated bus
    on the side it violates (-1 above the band, +1 below it).
    """
    fix = rows.fix.to_numpy(dtype=bool)
    cm = np.flatnonzero(fix & (rows.service == "CM").to_numpy())
    vc = np.flatnonzero(fix & (rows.service == "VC").to_numpy())
    keys = rows.iloc[cm][["period", "element", "element_id"]].astype(str).agg(
        "/".join, axis=1).to_numpy() if len(cm) else np.zeros(0, dtype=str)
    _, first, group = np.unique(keys, return_index=True, return_inverse=True)
    group = np.asarray(group).ravel()
    over = row_upper[vc] < 0  # the bus lies above the band (its upper bound binds)
    slack_row = np.concatenate([cm[first], vc]).astype(int)
    entries = (np.concatenate([cm, vc]),
               first_column + np.concatenate([group, len(first) + np.arange(len(vc))]),
               np.concatenate([-np.ones(len(cm)), np.where(over, -1.0, 1.0)]))
    service = rows.service.to_numpy()[slack_row]
    per_unit = np.array([UNRESOLVABLE_PER_UNIT[s] for s in service], dtype=float)
    period = rows.period.to_numpy()[slack_row]
    cost = price * per_unit * np.array([hours_of[t] for t in period], dtype=float)
    return slack_row, entries, cost


def update_bids(lp: LinearProgram, bids: pd.DataFrame, stage: Stage,
                params: MarketParams) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(bid positions, costs, upper bounds) if `bids` fit the LP's structure, else None.

    The structure fits when the same slots bid in the same order and no quantity
    exceeds what the capability rows were selected for.
    """
    if not same_slots(bids, lp.table_slots):  # another bid table: check what is admitted
        index = admitted(bids, stage, lp.periods[0].buses, [p.period for p in lp.periods])
        if len(index) != lp.n_bids or not same_slots(bids.iloc[index], lp.slots):
            return None
        lp.table_slots = slot_arrays(bids)
        lp.bid_index = index
    index = lp.bid_index
    quantity = bids.quantity.to_numpy()[index]
    if np.any(quantity > lp.build_quantity + 1e-12):
        return None
    cost, upper = bid_terms(bids.price.to_numpy()[index], quantity, lp.bid_hours, params)
    return index, cost, upper
