"""The registry's Q-learner against Calvano et al. (2020): the game, and that it learns.

The benchmarks are checked against the published figures and, independently, as a mutual
best response and a joint optimum. The learning tests use a faster exploration decay than
the paper (beta = 2e-4 instead of 4e-6) and a shorter stability window (25,000 periods
instead of 100,000), about 75,000 periods per session instead of a million, so that they
run in seconds; `lfm-abm validate --learning` runs the baseline.
Uniform random play already earns a profit gain of 0.50 on this grid, so "Delta > 0"
would prove nothing: the check asks for convergence and a gain well above 0.50, and a
control whose learners ignore their reward must fail it.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest
from controls import RewardBlind
from scipy import optimize

from lfm_abm.cli import main
from lfm_abm.learning import ActionGrid, make_learner
from lfm_abm.learning.calvano import (
    PAPER_DELTA,
    benchmarks,
    initial_q,
    learner_spec,
    price_grid,
    profit,
    profit_gain_study,
    profit_table,
    run_session,
)

#: Faster exploration decay and a shorter stability window than the paper's (4e-6, 100,000):
#: about 75,000 periods per session. The paper's alpha and delta.
FAST = {"beta": 2e-4, "stable": 25_000, "max_periods": 400_000}


def test_benchmarks_match_the_published_values():
    b = benchmarks()
    assert b.p_nash == pytest.approx(1.4729, abs=5e-5)
    assert b.p_monopoly == pytest.approx(1.9249, abs=1e-4)  # 1.92498: the paper's 1.925
    assert b.pi_nash == pytest.approx(0.2229, abs=5e-5)
    assert b.pi_monopoly == pytest.approx(0.3375, abs=5e-5)


def test_nash_is_a_mutual_best_response_and_monopoly_the_joint_optimum():
    b = benchmarks()
    reply = optimize.minimize_scalar(lambda p: -float(profit(p, b.p_nash)), bounds=(1, 3),
                                     method="bounded", options={"xatol": 1e-10})
    assert reply.x == pytest.approx(b.p_nash, abs=1e-6)
    joint = optimize.minimize(lambda p: -float(profit(p[0], p[1]) + profit(p[1], p[0])),
                              x0=[1.5, 2.2], method="Nelder-Mead",
                              options={"xatol": 1e-9, "fatol": 1e-12})
    assert joint.x == pytest.approx([b.p_monopoly, b.p_monopoly], abs=1e-5)


def test_price_grid_spans_nash_to_monopoly_with_a_margin():
    prices, b = price_grid(), benchmarks()
    spread = b.p_monopoly - b.p_nash
    assert len(prices) == 15
    assert np.allclose(np.diff(prices), 1.2 * spread / 14)
    assert prices[0] == pytest.approx(1.4277, abs=1e-4)
    assert prices[-1] == pytest.approx(1.9702, abs=1e-4)
    assert prices[0] == pytest.approx(b.p_nash - 0.1 * spread)
    assert np.all(profit_table() > 0)  # rewards are raw profits: none is floored at 0


def test_initial_q_is_the_discounted_payoff_against_a_uniform_rival():
    prices = price_grid()
    q0 = initial_q(0.95)
    for a in (0, 4, 14):
        expected = sum(float(profit(prices[a], p)) for p in prices) / (0.05 * 15)
        assert q0[a] == pytest.approx(expected, rel=1e-12)
    assert q0[0] == pytest.approx(5.7898, abs=1e-4)
    assert int(np.argmax(q0)) == 4
    # the registry learner starts every state there, and explores at exp(-beta t)
    grid = ActionGrid(markups=tuple(float(k) for k in range(15)), cap_action=False)
    learner = make_learner(learner_spec(0.15, 0.95, 1e-4, q0), grid)
    assert np.array_equal(learner.values((3, 7)), q0)
    assert np.array_equal(learner.values((14, 0)), q0)
    for _ in range(1000):
        learner.update(0, 0.25, (0, 0), (0, 0))
    assert learner.epsilon == pytest.approx(math.exp(-1e-4 * 1000), rel=1e-9)


def learnt_to_collude(rows: list[dict]) -> list[str]:
    """What is wrong with the sessions as evidence of learning (empty: nothing)."""
    wrong = []
    if not all(row["converged"] for row in rows):
        wrong.append("a session did not converge")
    mean = float(np.mean([row["delta_gain"] for row in rows]))
    if mean < 0.6:  # uniform random play: 0.50
        wrong.append(f"mean Delta {mean:.3f} < 0.6")
    return wrong


def test_uniform_play_already_earns_half_the_gain():
    b = benchmarks()
    uniform = (profit_table().mean() - b.pi_nash) / (b.pi_monopoly - b.pi_nash)
    assert uniform == pytest.approx(0.497, abs=1e-3)


def test_registry_q_learners_converge_to_supra_competitive_prices():
    rows = [run_session(seed, **FAST) for seed in range(3)]
    assert learnt_to_collude(rows) == []
    for row in rows:
        assert 25_000 < row["periods"] < 400_000
        assert 0.6 < row["delta_gain"] < 0.9
        # the profit is the average over the limit cycle of what the prices earn
        cycle = [(float(profit(p1, p2)) + float(profit(p2, p1))) / 2
                 for p1, p2 in zip(row["prices_1"], row["prices_2"], strict=True)]
        assert row["profit"] == pytest.approx(np.mean(cycle), abs=1e-4)
        assert len(cycle) == row["cycle_length"]


def test_the_check_fails_for_learners_that_ignore_their_reward():
    blind = functools.partial(RewardBlind, reward=0.25)
    rows = [run_session(seed, **{**FAST, "max_periods": 60_000}, wrap=blind)
            for seed in range(3)]
    wrong = learnt_to_collude(rows)
    assert "a session did not converge" in wrong
    assert any(w.startswith("mean Delta") for w in wrong), wrong


def test_sessions_replay_from_their_seed_on_worker_processes():
    quick = {"beta": 2e-3, "stable": 2_000, "max_periods": 50_000}
    serial, summary = profit_gain_study(2, 1, **quick)
    pooled, _ = profit_gain_study(2, 2, **quick)
    columns = ["seed", "periods", "converged", "prices_1", "prices_2", "delta_gain"]
    assert serial[columns].equals(pooled[columns])
    assert list(serial.seed) == [0, 1]
    assert summary.sessions == 2 and summary.paper_delta == PAPER_DELTA
    assert summary.mean_delta == pytest.approx(serial.delta_gain.mean())
    assert summary.converged_share == serial.converged.mean()


def test_cli_prints_the_measured_gain_beside_the_paper(capsys):
    assert main(["validate", "--learning", "--sessions", "1", "--workers", "1",
                 "--max-periods", "1000"]) == 0
    out = capsys.readouterr().out
    assert "~0.85" in out and "converged" in out and "0%" in out


def test_cli_learning_flags_are_checked(capsys):
    assert main(["validate", "--learning", "--sessions", "0"]) == 2
    assert "--sessions" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:  # still required without --learning
        main(["validate"])
    assert exit_.value.code == 2
    assert "required: --grid" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["validate", "--grid", "cigre-mv", "--sessions", "3"])
