"""LP engines: HiGHS (built once, updated in place, warm re-solves) and a cvxpy reference.

Both return the same `LPSolution`. Row duals follow one convention: y_r > 0 when the
row's upper bound binds (relaxing it by one unit lowers the cost by y_r), y_r < 0 when
its lower bound binds. The value of column b is then pi_b = -(A^T y)_b and an optimal
solution accepts a bid only if its cost is at most pi_b.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from lfm_abm.market.formulation import LinearProgram, NewRows


class SolverError(RuntimeError):
    """The LP solver did not return an optimal solution; the round is recorded as failed.

    Never expected: slacks keep the LP feasible and positive slack costs keep it bounded.
    """


@dataclass(frozen=True)
class LPSolution:
    """Primal values, row duals (convention above), objective and solver statistics."""

    x: np.ndarray
    row_dual: np.ndarray
    objective: float
    iterations: int
    seconds: float
    warm: bool


def _trivial(lp: LinearProgram) -> LPSolution:
    """Solution of an LP without rows or columns: take every column of negative cost."""
    x = np.where(lp.cost < 0, lp.col_upper, 0.0)
    return LPSolution(x, np.zeros(lp.matrix.shape[0]), float(lp.cost @ x), 0, 0.0, False)


def pass_model(highs, cost: np.ndarray, col_lower: np.ndarray, col_upper: np.ndarray,
               matrix: sp.csc_matrix, row_lower: np.ndarray, row_upper: np.ndarray,
               integrality: np.ndarray | None = None) -> None:
    """Give HiGHS a minimisation over columns of `matrix` (column-wise); None: all continuous.

    The arrays go in through the buffer protocol: setting the fields of a HighsLp
    converts them element by element (0.55 s for 1M bid columns).
    """
    import highspy

    n_cols = len(cost)
    status = highs.passModel(
        n_cols, matrix.shape[0], matrix.nnz, int(highspy.MatrixFormat.kColwise),
        int(highspy.ObjSense.kMinimize), 0.0, cost, col_lower, col_upper, row_lower,
        row_upper, matrix.indptr.astype(np.int32, copy=False),
        matrix.indices.astype(np.int32, copy=False), matrix.data,
        np.zeros(n_cols, dtype=np.int32) if integrality is None else integrality)
    if status == highspy.HighsStatus.kError:
        raise SolverError("HiGHS did not accept the model")


@contextlib.contextmanager
def quiet_stdout():
    """Silence C-level stdout (HiGHS prints a banner when its first instance is made)."""
    try:
        fd = os.dup(1)
    except OSError:
        yield
        return
    with open(os.devnull, "w") as null:
        os.dup2(null.fileno(), 1)
        try:
            yield
        finally:
            os.dup2(fd, 1)
            os.close(fd)


class _Engine:
    """What both engines share: the LP they hold and the in-place price/quantity update."""

    name = ""

    def __init__(self) -> None:
        self._lp: LinearProgram | None = None

    def load(self, lp: LinearProgram) -> None:
        """Take a new LP (a new operating point or a new set of bid slots)."""
        self._lp = lp

    def update(self, bid_cost: np.ndarray, bid_upper: np.ndarray) -> None:
        """Change bid costs and quantities (the structure stays)."""
        lp = self._loaded()
        lp.cost[: len(bid_cost)] = bid_cost
        lp.col_upper[: len(bid_upper)] = bid_upper

    def add_rows(self, new: NewRows) -> None:
        """Append rows (cuts) to the loaded LP."""
        self._loaded().append(new)

    def _loaded(self) -> LinearProgram:
        assert self._lp is not None, "load an LP first"
        return self._lp


#: A row HiGHS does not hold goes back in once the solution comes this close to one of
#: its bounds or crosses it (HiGHS's own primal feasibility tolerance).
ROW_TOLERANCE = 1e-7
#: Re-solves with rows put back before every row of the LP goes in.
MAX_ROW_ROUNDS = 20
#: HiGHS's rows are pruned again once they exceed this many times the last pruned count.
REGROW = 2


class HighsEngine(_Engine):
    """HiGHS simplex on one LP structure; prices and quantities change in place.

    `load` passes a new LP (a new operating point or a new set of bid slots); `update`
    changes bid costs and upper bounds and the next `solve` starts from the previous
    optimal basis (warm start), typically a handful of simplex iterations.

    HiGHS holds only the rows that matter (an active set): after the first, cold solve
    the rows strictly inside their bounds are taken out, and after every solve a row
    the solution reaches or crosses goes back in and HiGHS re-solves warm, until no row
    of the full LP is violated: that solution is optimal for the full LP, and the rows
    left out have dual 0 (they do not bind). Why: every HiGHS run makes several passes
    over its whole matrix (checks, a row-wise copy, scaling; ~6 ms for the 340k entries
    of semiurb CMVC_PQ, most of them no-harm rows that never bind), while the simplex
    work of a warm re-solve is well under a millisecond.
    """

    name = "highs"

    def __init__(self) -> None:
        import highspy

        super().__init__()
        with quiet_stdout():
            self._highs = highspy.Highs()
        self._highs.setOptionValue("output_flag", False)
        self._highs.setOptionValue("solver", "simplex")
        # Presolve costs more than it saves on these LPs (dense sensitivity rows, ~100
        # simplex iterations): a cold semiurb CMVC_PQ LP solves in 19 ms without it and
        # 168 ms with it (HiGHS 1.16).
        self._highs.setOptionValue("presolve", "off")
        self._solved_once = False

    def load(self, lp: LinearProgram) -> None:
        """Pass a new LP to HiGHS (cold: the next solve starts from scratch), every row."""
        self._pass_model(lp)
        super().load(lp)
        self._solved_once = False
        self._active = np.arange(lp.matrix.shape[0])  # rows HiGHS holds, in its order
        self._prune_above = 0  # prune after the first solve
        self._rows_csr: sp.csr_matrix | None = None

    def _pass_model(self, lp: LinearProgram) -> None:
        self._highs.clearModel()
        pass_model(self._highs, lp.cost, np.zeros(lp.n_cols), lp.col_upper, lp.matrix,
                   lp.row_lower, lp.row_upper)

    def add_rows(self, new: NewRows) -> None:
        """Append rows to HiGHS too; the next solve starts from the present basis."""
        first = self._loaded().matrix.shape[0]
        super().add_rows(new)
        self._rows_csr = None
        self._pass_rows(new.matrix.tocsr(), new.lower, new.upper)
        self._active = np.concatenate([self._active, first + np.arange(new.matrix.shape[0])])

    def _pass_rows(self, rows: sp.csr_matrix, lower: np.ndarray, upper: np.ndarray) -> None:
        self._highs.addRows(rows.shape[0], lower, upper, rows.nnz,
                            rows.indptr[:-1].astype(np.int32), rows.indices.astype(np.int32),
                            rows.data.astype(float))

    def _put_back(self, activity: np.ndarray, everything: bool = False) -> bool:
        """Put back the rows left out that `activity` reaches or crosses; False if none.

        everything=True puts back every row left out (a safeguard, never needed so far).
        """
        lp = self._loaded()
        out = np.ones(len(activity), dtype=bool)
        out[self._active] = False
        reached = out if everything else out & (
            (activity >= lp.row_upper - ROW_TOLERANCE) | (activity <= lp.row_lower + ROW_TOLERANCE))
        rows = np.flatnonzero(reached)
        if not len(rows):
            return False
        if self._rows_csr is None:
            self._rows_csr = lp.matrix.tocsr()
        self._pass_rows(self._rows_csr[rows], lp.row_lower[rows], lp.row_upper[rows])
        self._active = np.concatenate([self._active, rows])
        return True

    def _prune(self, activity: np.ndarray) -> None:
        """Take out of HiGHS the rows strictly inside their bounds (their slack is basic)."""
        lp = self._loaded()
        rows = self._active
        slack = ((activity[rows] < lp.row_upper[rows] - ROW_TOLERANCE)
                 & (activity[rows] > lp.row_lower[rows] + ROW_TOLERANCE))
        if slack.any():
            self._highs.deleteRows(int(slack.sum()), np.flatnonzero(slack).astype(np.int32))
            self._active = rows[~slack]
        self._prune_above = REGROW * len(self._active) + 64

    def update(self, bid_cost: np.ndarray, bid_upper: np.ndarray) -> None:
        """Change bid costs and quantities in HiGHS in place; the next solve is warm."""
        super().update(bid_cost, bid_upper)
        n = len(bid_cost)
        index = np.arange(n, dtype=np.int32)
        self._highs.changeColsCost(n, index, bid_cost)
        self._highs.changeColsBounds(n, index, np.zeros(n), bid_upper)

    def solve(self) -> LPSolution:
        """Solve (warm after the first solve of a structure) and return the solution."""
        import highspy

        lp = self._loaded()
        if 0 in lp.matrix.shape:
            return _trivial(lp)
        warm = self._solved_once
        start = time.perf_counter()
        iterations = rounds = 0
        while True:
            self._highs.run()
            status = self._highs.getModelStatus()
            if status != highspy.HighsModelStatus.kOptimal and warm:
                # A warm start can stall on a basis that went numerically bad (HiGHS then
                # reports "Unknown"): solve once more from scratch before giving up.
                self._highs.clearSolver()
                self._highs.run()
                status = self._highs.getModelStatus()
            if status != highspy.HighsModelStatus.kOptimal:
                self._solved_once = False
                raise SolverError(f"HiGHS returned {self._highs.modelStatusToString(status)}")
            iterations += int(self._highs.getInfo().simplex_iteration_count)
            solution = self._highs.getSolution()
            x = np.asarray(solution.col_value)
            activity = lp.matrix @ x
            rounds += 1
            if not self._put_back(activity, everything=rounds >= MAX_ROW_ROUNDS):
                break
        row_dual = np.zeros(lp.matrix.shape[0])
        row_dual[self._active] = -np.asarray(solution.row_dual)
        objective = float(self._highs.getInfo().objective_function_value)
        if len(self._active) > self._prune_above:
            self._prune(activity)
        seconds = time.perf_counter() - start
        self._solved_once = True
        return LPSolution(
            x=np.clip(x, 0.0, lp.col_upper),
            row_dual=row_dual,
            objective=objective,
            iterations=iterations,
            seconds=seconds,
            warm=warm,
        )


class CvxpyEngine(_Engine):
    """Reference: the same LP written in cvxpy and rebuilt from scratch on every solve."""

    name = "cvxpy"

    def solve(self) -> LPSolution:
        """Build the cvxpy problem, solve it with HiGHS through cvxpy, read duals back."""
        import cvxpy as cp

        lp = self._loaded()
        if 0 in lp.matrix.shape:
            return _trivial(lp)
        start = time.perf_counter()
        x = cp.Variable(lp.n_cols)
        finite_up = np.flatnonzero(np.isfinite(lp.row_upper))
        finite_lo = np.flatnonzero(np.isfinite(lp.row_lower))
        upper_rows = lp.matrix[finite_up] @ x <= lp.row_upper[finite_up]
        lower_rows = lp.matrix[finite_lo] @ x >= lp.row_lower[finite_lo]
        bounded = np.flatnonzero(np.isfinite(lp.col_upper))
        constraints = [upper_rows, lower_rows, x >= 0, x[bounded] <= lp.col_upper[bounded]]
        problem = cp.Problem(cp.Minimize(lp.cost @ x), constraints)
        problem.solve(solver=cp.HIGHS)
        seconds = time.perf_counter() - start
        if problem.status != cp.OPTIMAL:
            raise SolverError(f"cvxpy returned {problem.status}")
        dual = np.zeros(lp.matrix.shape[0])
        dual[finite_up] += np.asarray(upper_rows.dual_value).ravel()
        dual[finite_lo] -= np.asarray(lower_rows.dual_value).ravel()
        return LPSolution(
            x=np.clip(np.asarray(x.value).ravel(), 0.0, lp.col_upper),
            row_dual=dual,
            objective=float(problem.value),
            iterations=0,
            seconds=seconds,
            warm=False,
        )


ENGINES = {"highs": HighsEngine, "cvxpy": CvxpyEngine}
