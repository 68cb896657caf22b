"""Summaries on flat memory: KPIs and figures from DuckDB aggregates equal those of the
whole tables, and long runs are drawn from bins of rounds."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from lfm_abm.learning import ActionGrid
from lfm_abm.learning.convergence import block_counts, rounds_to_stable
from lfm_abm.results import plot_data
from lfm_abm.results.kpis import run_kpis
from lfm_abm.results.lazy import MAX_POINTS, StudyTables

GRID = ActionGrid()


def learning_run(rounds: int, seed: int, failed: tuple[int, ...] = ()) -> dict[str, pd.DataFrame]:
    """One run's tables: three learners settling on an action, noisy before; rounds in
    `failed` have a rounds row with status 'failed' and no agent rows."""
    rng = np.random.default_rng(seed)
    numbers = list(range(1, rounds + 1))
    status = ["failed" if r in failed else "ok" for r in numbers]
    frame = pd.DataFrame({"round": numbers, "status": status,
                          "dso_cost": rng.uniform(50, 150, rounds), "truthful_cost": 40.0,
                          "ac_validated": [r % 3 == 0 for r in numbers],
                          "unmet_need_after_ac": rng.uniform(0, 1, rounds),
                          "unmet_cost_after_ac": 100.0, "hhi": 5000.0})
    rows = []
    for fsp, family, target in (("a", "P", 3), ("a", "Q", 7), ("b", "P", 1)):
        for r in (r for r in numbers if r not in failed):
            action = target if r > rounds // 3 or rng.random() < 0.3 else int(rng.integers(11))
            awarded = float(rng.uniform(0, 2)) if rng.random() < 0.7 else 0.0
            payment = 50.0 * awarded * (1 + action / 10)
            rows.append({"round": r, "fsp_id": fsp, "fsp_type": "pv_inverter",
                         "family": family, "action": action, "markup": action / 10,
                         "awarded": awarded, "payment": payment,
                         "true_cost": 50.0 * awarded, "profit": payment - 50.0 * awarded,
                         "reward": 0.0, "greedy": target if r > rounds // 4 else 0,
                         "entropy": float(rng.uniform(0, 1))})
    regret = pd.DataFrame({"round": [rounds // 2, rounds, rounds],
                           "profile": ["greedy", "greedy", "played"],
                           "profit": [1.0, 2.0, 3.0], "regret": [9.0, 3.0, 1.0],
                           "regret_share": [0.5, 0.1, 0.2], "regret_se": [0.0, 0.0, 0.5]})
    empty = pd.DataFrame({"offers": pd.Series(dtype=str), "pivotal": pd.Series(dtype=bool)})
    return {"rounds": frame, "agents": pd.DataFrame(rows), "structure": empty,
            "suppliers": empty.assign(provider_id=pd.Series(dtype=str)), "regret": regret}


def stored(tmp_path, runs: dict[str, dict[str, pd.DataFrame]]) -> StudyTables:
    """The runs written as a study's run folders, read back as views on disk."""
    for run_id, tables in runs.items():
        folder = tmp_path / "runs" / run_id
        folder.mkdir(parents=True)
        for name, frame in tables.items():
            frame.to_parquet(folder / f"{name}.parquet", index=False)
    tags = pd.DataFrame({"run_id": list(runs), "design": "CMVC_PQ", "pricing": "pay-as-bid",
                         "learner": "roth-erev", "variant": "", "seed": range(len(runs)),
                         "market": "CMVC_PQ"})
    return StudyTables.on_disk(tmp_path, tags)


def test_kpis_from_stored_aggregates_equal_those_of_the_whole_tables(tmp_path):
    runs = {"s0": learning_run(120, 0), "s1": learning_run(90, 1, failed=(30, 31, 88)),
            "s2": learning_run(40, 2)}
    tables = stored(tmp_path, runs)
    for run_id, whole in runs.items():
        for window in (10, 25):
            lazy = run_kpis(tables.run_records(run_id, window, len(GRID)), window, GRID)
            eager = run_kpis(whole, window, GRID)
            assert lazy.keys() == eager.keys()
            for name, value in eager.items():
                assert lazy[name] == pytest.approx(value, nan_ok=True), (run_id, window, name)
    eager = run_kpis(runs["s0"], 10, GRID)
    assert not math.isnan(eager["rounds_to_stable"]) and eager["greedy_share"] > 0.5


def test_block_counts_from_stored_records_equal_those_of_the_frame(tmp_path):
    runs = {"s1": learning_run(90, 1, failed=(30, 31, 88))}
    lazy = stored(tmp_path, runs).run_records("s1", 10, len(GRID)).blocks
    eager = block_counts(runs["s1"]["agents"], len(GRID))
    assert lazy.n_rounds == eager.n_rounds == 87 and lazy.any_earner == eager.any_earner
    np.testing.assert_array_equal(lazy.first_rounds, eager.first_rounds)
    np.testing.assert_array_equal(lazy.earns, eager.earns)
    # learners may be numbered differently: compare each learner's counts as a set
    assert sorted(map(tuple, lazy.counts.transpose(1, 0, 2).reshape(3, -1))) \
        == sorted(map(tuple, eager.counts.transpose(1, 0, 2).reshape(3, -1)))
    assert rounds_to_stable(lazy, len(GRID)) == rounds_to_stable(eager, len(GRID))


def test_a_learner_that_ignores_its_reward_does_not_pass_as_settled(tmp_path):
    """The lazy path must not hide noise: uniform play over the run is never settled."""
    run = learning_run(100, 3)
    rng = np.random.default_rng(0)
    run["agents"]["action"] = rng.integers(11, size=len(run["agents"]))
    blocks = stored(tmp_path, {"r": run}).run_records("r", 10, len(GRID)).blocks
    assert math.isnan(rounds_to_stable(blocks, len(GRID)))


def test_long_runs_are_drawn_from_bins_of_rounds_with_the_right_means():
    rounds = 5 * MAX_POINTS
    frame = pd.DataFrame({"run_id": "r", "round": np.arange(1, rounds + 1), "status": "ok",
                          "dso_cost": np.arange(1, rounds + 1, dtype=float)})
    tables = StudyTables.in_memory({"rounds": frame},
                                   pd.DataFrame({"run_id": ["r"], "market": ["m"]}))
    curve = plot_data.round_means(tables, ["dso_cost"]).sort_values("round")
    assert len(curve) == MAX_POINTS and plot_data.bin_width(tables) == 5
    assert curve["round"].iloc[:2].tolist() == [1, 6]
    assert curve.dso_cost.iloc[0] == 3.0  # mean of rounds 1..5
    short = StudyTables.in_memory({"rounds": frame.head(100)}, tables.tags.drop(
        columns="run_order"))
    assert plot_data.round_means(short, ["dso_cost"]).dso_cost.tolist() == list(
        np.arange(1.0, 101.0))


def test_tables_read_whole_keep_run_order_rows_and_tags(tmp_path):
    runs = {"s0": learning_run(30, 0), "s1": learning_run(20, 1)}
    tables = stored(tmp_path, runs)
    agents = tables.frame("agents")
    expected = pd.concat([runs["s0"]["agents"], runs["s1"]["agents"]], ignore_index=True)
    pd.testing.assert_frame_equal(agents[list(expected.columns)], expected,
                                  check_dtype=False)
    assert agents.run_id.tolist() == ["s0"] * len(runs["s0"]["agents"]) + ["s1"] * len(
        runs["s1"]["agents"])
    assert set(agents.seed) == {0, 1} and "run_order" not in agents
    tables.set_runs(tables.tags.drop(columns="run_order").iloc[1:])
    assert set(tables.frame("rounds").run_id) == {"s1"}
