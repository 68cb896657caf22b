"""Batched AC power flows give the same states as one power flow per period."""

from __future__ import annotations

import numpy as np
import pandas as pd

from lfm_abm.network.ac_validation import ACEvaluator


def test_batch_equals_single_period_runs(cigre_case):
    rng = np.random.default_rng(0)
    flex = pd.DataFrame({"period": np.repeat([12, 13, 19, 20], 3),
                         "bus": rng.choice(np.asarray(cigre_case.buses), 12),
                         "dp_mw": rng.uniform(-0.5, 0.5, 12),
                         "dq_mvar": rng.uniform(-0.3, 0.3, 12)})
    batched = ACEvaluator(cigre_case.net, cigre_case.injections, cigre_case.points,
                          cigre_case.limits)
    together = batched.evaluate(flex)
    assert batched.batch_runs == 1 and batched.power_flows == 4
    single = ACEvaluator(cigre_case.net, cigre_case.injections, cigre_case.points,
                         cigre_case.limits)
    single._batching = False
    alone = single.evaluate(flex)
    assert single.batch_runs == 0 and single.power_flows == 4
    for a, b in zip(together, alone, strict=True):
        np.testing.assert_allclose(a.vm_pu.sort_index(), b.vm_pu.sort_index(), atol=1e-8)
        np.testing.assert_allclose(a.branches.line.i_ka, b.branches.line.i_ka, atol=1e-8)
        np.testing.assert_allclose(a.branches.trafo.loading_percent,
                                   b.branches.trafo.loading_percent, atol=1e-6)
    again = batched.evaluate(flex)  # same awards again: served from the cache
    assert batched.power_flows == 4 and again[13] is together[13]


def test_batch_sensitivities_equal_single_period_ones(cigre_case):
    flex = pd.DataFrame({"period": [13, 13, 20], "bus": [11, 5, 8], "dp_mw": [-0.4, 0.0, 0.3],
                         "dq_mvar": [0.0, -0.2, 0.1]})
    batched = ACEvaluator(cigre_case.net, cigre_case.injections, cigre_case.points,
                          cigre_case.limits)
    together = batched.linearised(flex, batched.evaluate(flex))
    assert batched.batch_runs == 1
    single = ACEvaluator(cigre_case.net, cigre_case.injections, cigre_case.points,
                         cigre_case.limits)
    single._batching = False
    alone = single.linearised(flex, single.evaluate(flex))
    for period in (13, 20):
        a, b = together[period].sens, alone[period].sens
        for name in ("dv_dp", "dv_dq", "di_dp", "di_dq", "dt_dp", "dt_dq"):
            np.testing.assert_allclose(getattr(a, name).sort_index(),
                                       getattr(b, name).sort_index(), atol=1e-9, err_msg=name)


def test_a_diverged_period_leaves_later_batches_working(cigre_case):
    from lfm_abm.errors import PowerFlowError

    evaluator = ACEvaluator(cigre_case.net, cigre_case.injections, cigre_case.points,
                            cigre_case.limits)
    blow_up = pd.DataFrame({"period": [13], "bus": [11], "dp_mw": [400.0], "dq_mvar": [0.0]})
    try:
        evaluator.evaluate(blow_up)
    except PowerFlowError as exc:
        assert "h13" in str(exc)
    else:  # pragma: no cover - the injection is far beyond what the feeder can carry
        raise AssertionError("400 MW at a feeder end should not converge")
    fine = pd.DataFrame({"period": [12, 13], "bus": [11, 5], "dp_mw": [-0.2, -0.1],
                         "dq_mvar": [0.0, 0.0]})
    points = evaluator.linearised(fine, evaluator.evaluate(fine))
    assert points[12].sens is not None and points[13].sens is not None


def test_grids_the_batch_cannot_map_fall_back_to_single_runs(tmp_path):
    import pandapower as pp
    import pandapower.networks as pn

    from lfm_abm.market.clearing import MarketCase

    path = tmp_path / "multi.json"
    pp.to_json(pn.example_multivoltage(), str(path))
    from lfm_abm.network.grids import load_grid
    from lfm_abm.network.scenarios import Scenario

    case = MarketCase.build(load_grid(path), Scenario(hours=(12, 13), source="test"))
    bus = int(case.buses[5])
    flex = pd.DataFrame({"period": [0, 1], "bus": [bus, bus], "dp_mw": [0.1, 0.1],
                         "dq_mvar": [0.0, 0.0]})
    report = case.evaluator.validate(flex)
    assert report.power_flows == 2 and case.evaluator.batch_runs == 0
