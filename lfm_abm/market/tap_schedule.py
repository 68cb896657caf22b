"""The DSO's tap schedule: one position per period of each tap changer, chosen before any market.

The on-load tap changer is the DSO's own tool and comes before the market and before
emergency action (a DSO's voltage controller moves it without buying anything). The
schedule is the least-cost plan of the DSO alone, a small mixed-integer program over the
day's periods t and tap changers g:

    min  sum_{t,g} c_tap m_{t,g} + sum_e c_e h_t e + sum_r M_r h_t u_r
    s.t. every network row of every period, with the emergency action e (`emergency.py`)
         and the tap's steps d_{t,g} entering as injections do (`TapEffect.as_injection`)
         m_{t,g} >= |d_{t,g} - d_{t-1,g}|,   d_{-1,g} = d_{T,g} = 0
         d_{t,g} integer in [low - start, high - start]

The day starts at the net's position and returns to it (the market day repeats, round
after round), so every step the day moves away is paid for twice: out and back.

c_tap is `MarketParams.tap_step_cost` per step moved (wear of the changer), c_e the
emergency prices under the least-cost priority whatever the market's priority (the DSO
alone has no offers to put first) and M_r the clearing LP's unresolvable penalties. Every bus gets
voltage rows in every period (a step moves all of them by 1-2 %), so the taps cannot
push a bus the market never watched out of the band. The schedule is then applied in
AC power flows: the day's points are recomputed at the chosen taps, and what the DSO
still needs there is measured on that AC state, never on this linear model.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from lfm_abm.market.emergency import EmergencyCapacity, emergency_columns, objective_prices
from lfm_abm.market.engines import SolverError, pass_model, quiet_stdout
from lfm_abm.market.formulation import unresolvable_slacks
from lfm_abm.market.network_rows import META_COLUMNS, network_rows
from lfm_abm.market.params import MarketParams
from lfm_abm.market.stages import EMERGENCY_ONLY
from lfm_abm.network.needs import NeedLimits
from lfm_abm.network.operating_points import OperatingPoint
from lfm_abm.network.taps import TapChanger, TapEffect

#: Voltage screen of the tap schedule (p.u. from the band's edges): every bus, since a
#: step moves every MV voltage.
EVERY_BUS = 0.19
#: Branch screen of the tap schedule (share of the limit): taps move currents little.
TAP_CM_SCREEN = 0.5
#: Longest a tap schedule may take, seconds (the MIP is small: 24 integer columns per
#: changer); stopped there, the best schedule found is used.
TIME_LIMIT = 120.0
#: HiGHS's primal_solution_status of a feasible solution.
FEASIBLE = 2


@dataclass(frozen=True)
class TapSchedule:
    """Steps from the start position of every tap changer, per period; hashable."""

    changers: tuple[TapChanger, ...]
    steps: tuple[tuple[int, ...], ...]  # per period, per changer

    @property
    def array(self) -> np.ndarray:
        """Steps as a (periods x changers) array."""
        return np.array(self.steps, dtype=int).reshape(len(self.steps), len(self.changers))

    @property
    def moves(self) -> int:
        """Tap steps moved over the day: from the start position and back to it."""
        zero = np.zeros((1, len(self.changers)), dtype=int)
        return int(np.abs(np.diff(np.vstack([zero, self.array, zero]), axis=0)).sum())


def schedule_taps(points: list[OperatingPoint], effects: list[list[TapEffect]],
                  changers: list[TapChanger], limits: NeedLimits, params: MarketParams,
                  emergency: EmergencyCapacity) -> TapSchedule:
    """The least-cost tap schedule with emergency action, no market, on the day's `points`.

    `effects[g][t]` is what one step of changer g does in period t.
    """
    wide = dataclasses.replace(params, vc_screen=EVERY_BUS,
                               cm_screen=min(params.cm_screen, TAP_CM_SCREEN))
    n_taps, n_periods = len(changers), len(points)
    buses = points[0].sens.buses
    n_buses = len(buses)
    metas, lower, upper, entries = [], [], [], []
    tap_entries = []  # (row, tap column)
    emergency_meta, emergency_upper = [], []
    n_rows = n_emergency = 0
    for t, op in enumerate(points):
        for g, effect in enumerate(effects):
            op = effect[t].as_injection(op, -1 - g)
        blocks, _ = network_rows(op, EMERGENCY_ONLY, limits, wide)
        if not blocks:
            continue
        coef = np.vstack([b["coef_p"] for b in blocks])
        for b in blocks:
            metas.append({"period": np.full(len(b["lower"]), op.period), **b["meta"]})
            lower.append(b["lower"])
            upper.append(b["upper"])
        if any(b["meta"]["fix"].any() for b in blocks):
            meta, bound, (r, c, v) = emergency_columns(op.period, op.hours, buses,
                                                       coef[:, :n_buses], emergency,
                                                       params.min_coefficient)
            emergency_meta.append(meta)
            emergency_upper.append(bound)
            entries.append((n_rows + r, n_emergency + c, v))
            n_emergency += len(meta)
        for g in range(n_taps):
            r = np.flatnonzero(np.abs(coef[:, n_buses + g]) >= params.min_coefficient)
            tap_entries.append((n_rows + r, np.full(len(r), t * n_taps + g),
                                coef[r, n_buses + g]))
        n_rows += len(coef)
    rows = pd.DataFrame({c: np.concatenate([m[c] for m in metas])
                         for c in ["period", *META_COLUMNS]})
    row_lower, row_upper = np.concatenate(lower), np.concatenate(upper)
    prices = objective_prices(dataclasses.replace(wide, emergency_priority="least-cost"))
    n_moves = (n_periods + 1) * n_taps  # one more: back to the start after the last period
    first_tap = n_emergency
    first_move = first_tap + n_periods * n_taps
    first_slack = first_move + n_moves
    slack_row, slack_entries, slack_cost = unresolvable_slacks(
        rows, row_upper, {op.period: op.hours for op in points}, max(prices.values()),
        first_slack)
    parts = [*entries, *((r, first_tap + c, v) for r, c, v in tap_entries), slack_entries]
    r, c = (np.concatenate([p[k] for p in parts]).astype(int) for k in range(2))
    v = np.concatenate([p[2] for p in parts]).astype(float)
    network = sp.csc_matrix((v, (r, c)), shape=(n_rows, first_slack + len(slack_row)))
    moves = _movement_rows(n_periods, n_taps, first_tap, first_move, network.shape[1])
    emergency_frame = (pd.concat(emergency_meta, ignore_index=True) if emergency_meta
                       else pd.DataFrame({"action": [], "hours": []}))
    span = np.array([[ch.low - ch.start, ch.high - ch.start] for ch in changers], dtype=float)
    cost = np.concatenate([
        emergency_frame.action.map(prices).to_numpy(dtype=float)
        * emergency_frame.hours.to_numpy(dtype=float),
        np.zeros(n_periods * n_taps), np.full(n_moves, params.tap_step_cost), slack_cost])
    col_lower = np.concatenate([np.zeros(n_emergency), np.tile(span[:, 0], n_periods),
                                np.zeros(n_moves), np.zeros(len(slack_row))])
    col_upper = np.concatenate([*emergency_upper, np.tile(span[:, 1], n_periods),
                                np.full(n_moves, np.inf), np.full(len(slack_row), np.inf)])
    integer = np.zeros(len(cost), dtype=np.int32)
    integer[first_tap:first_move] = 1
    x = _solve_mip(cost, col_lower, col_upper, sp.vstack([network, moves], format="csc"),
                   np.concatenate([row_lower, np.zeros(moves.shape[0])]),
                   np.concatenate([row_upper, np.full(moves.shape[0], np.inf)]), integer)
    steps = np.rint(x[first_tap:first_move]).astype(int).reshape(n_periods, n_taps)
    return TapSchedule(tuple(changers), tuple(tuple(int(s) for s in row) for row in steps))


def _movement_rows(n_periods: int, n_taps: int, first_tap: int, first_move: int,
                   n_cols: int) -> sp.csc_matrix:
    """Rows m_t - d_t + d_{t-1} >= 0 and m_t + d_t - d_{t-1} >= 0 of every changer.

    t runs to n_periods: the last move returns to the start (d_{-1} = d_T = 0).
    """
    rows, cols, values = [], [], []
    row = 0
    for t in range(n_periods + 1):
        for g in range(n_taps):
            at, move = first_tap + t * n_taps + g, first_move + t * n_taps + g
            for sign in (-1.0, 1.0):
                entries = [(move, 1.0)]
                if t < n_periods:
                    entries.append((at, sign))
                if t:
                    entries.append((at - n_taps, -sign))
                for column, value in entries:
                    rows.append(row)
                    cols.append(column)
                    values.append(value)
                row += 1
    return sp.csc_matrix((values, (rows, cols)), shape=(row, n_cols))


def _solve_mip(cost: np.ndarray, col_lower: np.ndarray, col_upper: np.ndarray,
               matrix: sp.csc_matrix, row_lower: np.ndarray, row_upper: np.ndarray,
               integer: np.ndarray) -> np.ndarray:
    """Solve with HiGHS's branch and bound; the solution's column values."""
    import highspy

    with quiet_stdout():
        highs = highspy.Highs()
    highs.setOptionValue("output_flag", False)
    highs.setOptionValue("time_limit", TIME_LIMIT)
    highs.setOptionValue("mip_rel_gap", 1e-6)
    pass_model(highs, cost, col_lower, col_upper, matrix, row_lower, row_upper, integer)
    highs.run()
    model_status = highs.getModelStatus()
    stopped = model_status == highspy.HighsModelStatus.kTimeLimit
    feasible = highs.getInfo().primal_solution_status == FEASIBLE
    if model_status != highspy.HighsModelStatus.kOptimal and not (stopped and feasible):
        raise SolverError("tap schedule: HiGHS ended with "
                          f"{highs.modelStatusToString(model_status)}")
    return np.asarray(highs.getSolution().col_value)
