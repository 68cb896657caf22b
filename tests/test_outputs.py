"""Outputs a reader can trust: one KPI registry, headline, paired differences, warnings."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lfm_abm.cli import main
from lfm_abm.learning import ActionGrid
from lfm_abm.results.diagnostics import diagnose
from lfm_abm.results.kpis import headline, headline_columns, paired, run_kpis, summarise
from lfm_abm.results.registry import HEADLINE, KPIS

ROOT = Path(__file__).resolve().parents[1]
GRID = ActionGrid()


def tiny_run(rounds: int = 4) -> dict[str, pd.DataFrame]:
    """Hand-made tables of one run; per round two PV FSPs win P:

    a: 2 MWh at 30 EUR/MWh, cost 20 (markup 0.5): payment 60, profit 20;
    b: 1 MWh at 40 EUR/MWh, cost 10 (markup 3): payment 40, profit 30.
    Lerner = 50 / 100 (an unweighted mean of 1/3 and 3/4 would be 0.54); markup weighted
    by energy = (2 x 0.5 + 1 x 3) / 3 = 4/3 (unweighted 1.75). Both always play their
    greedy action. Truthful offers: a pivotal in one of two periods; learned offers: a
    and b pivotal in both. Regret of the greedy profile 3 EUR; of the played strategies
    a gains 6 (± 1) of 26, b nothing of 30. Emergency action 0.5 MWh: 0.1 curtailed at
    100 EUR/MWh and 0.4 shed at VOLL 1000, 410 EUR; total cost 100 + 410.
    """
    frame = pd.DataFrame({"round": range(1, rounds + 1), "status": "ok",
                          "dso_cost": 100.0, "truthful_cost": 40.0, "ac_validated": True,
                          "unmet_need_after_ac": 0.5, "unmet_cost_after_ac": 410.0,
                          "curtailed_after_ac": 0.1, "curtailment_cost_after_ac": 10.0,
                          "shed_after_ac": 0.4, "shedding_cost_after_ac": 400.0,
                          "tap_cost": 2.0, "hhi": 10_000.0})
    one = {"fsp_type": "pv_inverter", "family": "P", "entropy": 0.0, "reward": 0.1}
    agents = pd.DataFrame(
        [{"round": r, "fsp_id": "a", "markup": 0.5, "awarded": 2.0, "payment": 60.0,
          "profit": 20.0, "action": 3, "greedy": 3, **one} for r in range(1, rounds + 1)]
        + [{"round": r, "fsp_id": "b", "markup": 3.0, "awarded": 1.0, "payment": 40.0,
            "profit": 30.0, "action": 5, "greedy": 5, **one} for r in range(1, rounds + 1)])
    structure = pd.DataFrame({"pivotal": [True, False, True, True],
                              "scarce": [False, False, False, False],
                              "offers": ["truthful"] * 2 + ["learned"] * 2})
    suppliers = pd.DataFrame({"provider_id": ["a", "a", "a", "b"],
                              "pivotal": [True, False, True, True],
                              "offers": ["truthful"] * 2 + ["learned"] * 2})
    regret = pd.DataFrame({"round": rounds, "profile": ["greedy", "played", "played"],
                           "profit": [20.0, 20.0, 30.0], "regret": [3.0, 6.0, 0.0],
                           "regret_share": [0.1, 6 / 26, 0.0],
                           "regret_se": [0.0, 1.0, 0.0]})
    return {"rounds": frame, "agents": agents, "structure": structure,
            "suppliers": suppliers, "regret": regret}


def test_run_kpis_returns_exactly_the_registry_with_hand_values():
    kpis = run_kpis(tiny_run(), window=2, grid=GRID)
    assert list(kpis) == list(KPIS)
    assert kpis["dso_cost"] == 100.0 and kpis["cost_ratio"] == pytest.approx(2.5)
    assert kpis["total_cost"] == 512.0  # procurement + emergency + tap wear
    assert kpis["unmet_cost_after_ac"] == kpis["curtailment_cost_after_ac"] + kpis[
        "shedding_cost_after_ac"] == 410.0
    assert kpis["lerner"] == pytest.approx(0.5)
    assert kpis["markup_pv_inverter_P"] == pytest.approx(4 / 3) and kpis["psi"] == 0.5
    assert kpis["markup_all_pv_inverter"] == pytest.approx(1.75)
    assert kpis["pivotal_fsps"] == 1 and kpis["regret_max"] == 3.0
    assert kpis["psi_learned"] == 1.0 and kpis["pivotal_fsps_learned"] == 2
    assert kpis["regret_played_max"] == 6.0 and kpis["regret_played_se"] == 1.0
    assert kpis["regret_played_mean"] == 3.0
    assert kpis["regret_played_share"] == pytest.approx(6 / (26 + 30))
    assert kpis["greedy_share"] == 1.0 and kpis["all_greedy_share"] == 1.0
    assert kpis["earners"] == 2 and kpis["entropy_earners"] == 0.0
    assert kpis["share_at_top"] == 0.0
    assert np.isnan(kpis["converged"])  # 4 rounds: too few blocks to judge
    assert np.isnan(kpis["dso_cost_vs_random"])  # needs the random run: reference_kpis


def test_a_kpi_missing_from_the_registry_cannot_vanish(monkeypatch):
    from lfm_abm.results import kpis

    monkeypatch.setattr(kpis, "KPIS", {k: v for k, v in KPIS.items() if k != "lerner"})
    with pytest.raises(RuntimeError, match="lerner"):
        kpis.run_kpis(tiny_run(), window=2, grid=GRID)


def test_every_kpi_has_a_unit_meaning_and_docs_entry():
    model = (ROOT / "docs" / "model.md").read_text()
    kpi_table = model[model.index("## 9. KPIs"):model.index("## 10.")]
    for kpi in KPIS.values():
        assert kpi.meaning and kpi.label, kpi.name
        assert f"`{kpi.name}`" in kpi_table, f"docs/model.md section 9 lacks {kpi.name}"


def test_paired_difference_is_per_seed_with_a_t_interval():
    """Pairs by seed whatever the row order; a seed without a reference run is left out."""
    runs = pd.DataFrame({"design": ["ref"] * 3 + ["alt"] * 4, "pricing": "p", "learner": "l",
                         "variant": "", "seed": [2, 0, 1, 1, 3, 0, 2],
                         "total_cost": [300.0, 100.0, 200.0, 212.0, 999.0, 110.0, 308.0]})
    for name in ("dso_cost", "unmet_need_after_ac", "lerner"):
        runs[name] = 1.0
    table = paired(runs, "ref").set_index("kpi")
    row = table.loc["total_cost"]
    assert row.difference == pytest.approx(10.0) and row.seeds == 3
    # differences 10, 12, 8: s = 2, t(0.975, 2) = 4.303
    assert row.ci == pytest.approx(4.302653 * 2 / np.sqrt(3), rel=1e-5)
    assert table.loc["lerner"].difference == 0.0


def test_headline_has_the_registry_columns_and_counts_converged_seeds():
    runs = pd.DataFrame([{"design": d, "pricing": "pay-as-bid", "learner": "x",
                          "variant": "", "seed": s,
                          **run_kpis(tiny_run(60), window=10, grid=GRID)}
                         for d in ("A", "B") for s in (0, 1)])
    runs.loc[0, "converged"] = 0.0
    table = headline(summarise(runs))
    assert list(table.columns) == ["design", *headline_columns().values()]
    assert len(HEADLINE) == 11
    assert list(table[headline_columns()["converged"]]) == ["1/2", "2/2"]


def test_intervals_stay_inside_what_the_quantity_can_be(tmp_path):
    """Two seeds: Lerner 0.9 and 1.0 (t interval 0.95 ± 0.635 would pass 1), DSO cost 10
    and 400 (205 ± 2478 would go below 0): cut at the bounds, shown as [low, high]."""
    runs = pd.DataFrame([{"design": "A", "pricing": "pay-as-bid", "learner": "x",
                          "variant": "", "seed": s,
                          **run_kpis(tiny_run(60), window=10, grid=GRID)} for s in (0, 1)])
    runs["lerner"], runs["dso_cost"] = [0.9, 1.0], [10.0, 400.0]
    summary = summarise(runs)
    half = 12.7062047 * np.std([0.9, 1.0], ddof=1) / np.sqrt(2)
    assert summary.lerner_ci.iloc[0] == pytest.approx(half)
    assert summary.lerner_hi.iloc[0] == 1.0
    assert summary.lerner_lo.iloc[0] == pytest.approx(0.95 - half)
    assert summary.dso_cost_lo.iloc[0] == 0.0 and summary.dso_cost_hi.iloc[0] > 2000
    shown = headline(summary).iloc[0]
    assert shown[headline_columns()["lerner"]] == f"0.95 [{0.95 - half:.2f}, 1.00]"
    assert shown[headline_columns()["dso_cost"]].startswith("205.0 [0.0, ")
    inside = summarise(runs.assign(lerner=[0.3, 0.4]))  # not cut: the usual form
    assert headline(inside).iloc[0][headline_columns()["lerner"]] == "0.35 ± 0.64"
    inside.to_csv(tmp_path / "summary.csv", index=False)  # 16 digits: still not a cut
    again = pd.read_csv(tmp_path / "summary.csv", keep_default_na=False, na_values=[""])
    assert headline(again).iloc[0][headline_columns()["lerner"]] == "0.35 ± 0.64"


def summary_row(**values) -> pd.DataFrame:
    base = {"design": "CMVC_PQ", "pricing": "pay-as-bid", "learner": "x", "variant": "",
            "seeds": 4, "converged_mean": 1.0, "truthful_unmet_need_after_ac_mean": 0.0,
            "unmet_need_no_market_mean": 10.0, "scarcity_mean": 0.0,
            "share_at_cap_mean": 0.0, "share_at_top_mean": 0.0, "converged_seeds": 2,
            "dso_cost_vs_random_mean": -50.0, "dso_cost_vs_random_ci": 10.0,
            "lerner_vs_random_mean": 0.1, "lerner_vs_random_ci": 0.3,
            "regret_played_worst_share_mean": 0.05, "regret_played_max_mean": 5.0,
            "dso_cost_mean": 300.0}
    return pd.DataFrame([{**base, **values}])


STUDY = {"rounds": 200, "window": 50, "grid": "simbench-rural"}
NEEDS = pd.DataFrame({"service": ["CM", "VC"]})


@pytest.mark.parametrize(("values", "study", "kind", "fix"), [
    ({}, STUDY, None, None),
    ({"converged_mean": 0.5}, STUDY, "not converged", "--rounds 400"),
    ({}, {**STUDY, "window": 200}, "window", "below `rounds`"),
    ({"truthful_unmet_need_after_ac_mean": 5.0}, STUDY, "unmet under truthful bids",
     "relinearise = 2"),
    ({"truthful_unmet_need_after_ac_mean": 5.0, "design": "CM_P"}, STUDY,
     "unmet under truthful bids", "buys every service"),
    ({"truthful_unmet_need_after_ac_mean": 5.0, "scarcity_mean": 0.2}, STUDY,
     "unmet under truthful bids", "more supply"),
    # 0.9 of 10 MWh at the grid's taps is under the 10 % line; on a day the DSO's taps
    # have already cut to 2 MWh, a design that leaves 0.9 leaves 45 % of its day's need
    ({"truthful_unmet_need_after_ac_mean": 0.9, "unmet_need_dso_alone_mean": 2.0,
      "tap_moves_mean": 0.0}, STUDY, None, None),
    ({"truthful_unmet_need_after_ac_mean": 0.9, "unmet_need_dso_alone_mean": 2.0,
      "tap_moves_mean": 3.0}, STUDY, "unmet under truthful bids", "relinearise = 2"),
    ({"share_at_cap_mean": 0.4}, STUDY, "price cap", "market.reservation_price"),
    ({"share_at_top_mean": 0.06}, STUDY, "grid top", "market.reservation_price"),
    ({"share_at_top_mean": 0.06}, {**STUDY, "actions": {"cap_action": False}}, "grid top",
     "cap_action = true"),
    # learned - random: DSO cost -50 ± 10 tells them apart even if the Lerner CI does not
    ({"dso_cost_vs_random_ci": 60.0}, STUDY, "like random play", "more seeds"),
    ({"dso_cost_vs_random_ci": float("nan")}, STUDY, "like random play", "--seeds 4"),
    ({"seeds": 2}, STUDY, "few seeds", "--seeds 8"),
    # converged (choices settled) and still far from a best response: said, not hidden
    ({"regret_played_worst_share_mean": 0.45, "regret_played_max_mean": 9.0}, STUDY,
     "large regret", "more rounds"),
    ({"regret_played_worst_share_mean": 0.45}, STUDY, None, None),  # 5 of 300: cents
    ({"regret_played_max_mean": 60.0}, STUDY, "large regret", "regret_played_max"),
    ({"regret_played_worst_share_mean": float("nan"),
      "regret_played_max_mean": float("nan")}, STUDY, None, None),
])
def test_each_warning_fires_on_its_case_with_its_fix(values, study, kind, fix):
    found = diagnose(summary_row(**values), study, NEEDS)
    assert [d.kind for d in found] == ([kind] if kind else [])
    if fix:
        assert fix in found[0].fix


def test_a_warning_names_the_setting_that_tells_rows_apart():
    rows = pd.concat([summary_row(pricing="pay-as-bid"),
                      summary_row(pricing="locational", share_at_cap_mean=0.5)])
    (found,) = diagnose(rows, STUDY, NEEDS)
    assert "CMVC_PQ / locational (50%)" in found.found and "pay-as-bid" not in found.found


def test_warnings_are_about_the_learned_settings():
    # The reference runs (random play never converges) are the yardstick, not a finding.
    rows = pd.concat([summary_row(), summary_row(learner="random", converged_mean=0.0,
                                                 dso_cost_vs_random_mean=float("nan"))])
    assert diagnose(rows, STUDY, NEEDS) == []


def test_unjudged_convergence_is_not_a_warning():
    assert diagnose(summary_row(converged_mean=float("nan"), converged_seeds=0), STUDY,
                    NEEDS) == []


def test_readme_headline_has_the_columns_run_prints():
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"```\nheadline: .*?\n(.*?)\n", readme, flags=re.DOTALL)
    assert block, "README lacks the printed headline block"
    header = block.group(1)
    for title in ["design", *headline_columns().values()]:
        assert title in header, f"README headline lacks column {title!r}"


def test_glossary_explains_every_headline_column(capsys):
    assert main(["run", "--explain"]) == 0
    text = capsys.readouterr().out
    for title in headline_columns().values():
        assert f"  {title}: " in text
    for name in KPIS:
        assert f"  {name} (" in text


def test_clear_help_documents_the_bid_format(capsys):
    with pytest.raises(SystemExit):
        main(["clear", "--help"])
    text = capsys.readouterr().out
    for column in ("bid_id", "provider_id", "bus", "period", "product", "quantity", "price",
                   "device_id", "locational_price"):
        assert re.search(rf"\b{column}\b", text)


def test_simulate_shows_its_real_signature():
    import lfm_abm

    assert list(inspect.signature(lfm_abm.simulate).parameters)[:5] == [
        "grid", "population", "design", "rounds", "seed"]
    assert "per-round records" in lfm_abm.simulate.__doc__


@pytest.mark.parametrize(("stable_from", "converged"), [(51.0, 1.0), (52.0, 0.0),
                                                        (float("nan"), 0.0)])
def test_converged_means_stable_from_the_windows_first_round(monkeypatch, stable_from,
                                                             converged):
    """60 rounds, window 10: the window is rounds 51-60."""
    from lfm_abm.learning import convergence
    from lfm_abm.results import kpis

    monkeypatch.setattr(convergence, "rounds_to_stable", lambda agents, n: stable_from)
    assert kpis.run_kpis(tiny_run(60), window=10, grid=GRID)["converged"] == converged


def test_offers_carry_their_true_cost_and_the_new_round_columns():
    """Offer prices are the true cost times (1 + the group's markup), row by row."""
    from lfm_abm.agents.population import load_population
    from lfm_abm.model import LFMModel, ModelSettings
    from lfm_abm.network.scenarios import Scenario

    settings = ModelSettings("cigre-mv", load_population(ROOT / "agents" / "cigre_mv.toml"),
                             "CMVC_PQ", scenario=Scenario(ev_peak_mw=1.5, hours=(13, 20)))
    model = LFMModel(settings, 3)
    for _ in range(3):
        model.step()
    tables = model.records()
    offers, agents = tables["offers"], tables["agents"]
    assert sorted(set(offers["round"])) == [1, 3]
    by_group = agents.set_index(["round", "fsp_id", "family"])
    key = list(zip(offers["round"], offers.provider_id, offers["product"].str[0], strict=True))
    capped = by_group.action.loc[key].to_numpy() == len(model.settings.actions) - 1
    assert capped.any() and not capped.all()  # seed 3 plays the cap action somewhere
    markup = by_group.markup.loc[key].to_numpy()
    assert offers.price.to_numpy()[~capped] == pytest.approx(
        offers.cost.to_numpy()[~capped] * (1 + markup[~capped]))
    assert (offers.price.to_numpy()[capped] == model.settings.market.max_bid_price).all()
    assert (offers.quantity <= offers.capacity + 1e-12).all()
    rounds = tables["rounds"]
    day = model.day(model.days[0])
    assert (rounds.unmet_need_no_market == day.case.baseline_emergency.emergency_mwh).all()
    assert rounds.share_at_cap.between(0, 1).all()
