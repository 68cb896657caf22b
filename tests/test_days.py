"""A year, not a day: the year scan, the choice of days, and a year's figures."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lfm_abm.cli import main
from lfm_abm.days import ChosenDay, DaysRule, choose_days
from lfm_abm.days_check import representation_error, year_without_market
from lfm_abm.errors import InputError
from lfm_abm.market.params import MarketParams
from lfm_abm.network import year
from lfm_abm.network.grids import default_scenario, load_grid
from lfm_abm.network.needs import NeedLimits, find_needs
from lfm_abm.network.operating_points import operating_points
from lfm_abm.network.year import FEATURES, YearScan, scan_year
from lfm_abm.results.annual import annual_paired, annual_runs, annual_summary
from lfm_abm.study import load_study, run_study

ROOT = Path(__file__).resolve().parents[1]
SEMIURB = "simbench-semiurb"


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LFM_ABM_CACHE", str(tmp_path / "cache"))


# --- the year scan --------------------------------------------------------------------

def test_the_scan_finds_the_needs_of_one_power_flow_per_period(semiurb):
    """The batched scan, day after day on one model, equals plain per-period AC runs."""
    scenario = default_scenario(semiurb)
    days = ["2016-07-25", "2016-01-10", "2016-08-12"]
    scan = scan_year(SEMIURB, scenario, NeedLimits(), days=days)
    assert scan.days.day.tolist() == days
    for day in days:
        points = list(operating_points(semiurb, scenario, day))
        needs = find_needs(points, NeedLimits())
        row = scan.days.set_index("day").loc[day]
        assert row.need_hours == needs.period.nunique()
        cm = needs[needs.service == "CM"].need.sum()
        assert row.cm_need_mvah == pytest.approx(cm, abs=1e-6)
        assert row.vc_need_puh == pytest.approx(needs[needs.service == "VC"].need.sum(),
                                                abs=1e-7)
        hourly = scan.hourly[scan.hourly.day == day]
        assert hourly.v_max.to_numpy() == pytest.approx([p.vm_pu.max() for p in points],
                                                        abs=1e-8)
        assert hourly.v_min.to_numpy() == pytest.approx([p.vm_pu.min() for p in points],
                                                        abs=1e-8)
        for service, how, column in (("CM", "sum", "cm_need"), ("VC", "sum", "vc_need"),
                                     ("CM", "max", "cm_worst"), ("VC", "max", "vc_worst")):
            mine = needs[needs.service == service].groupby("period").need.agg(how)
            assert hourly[column].to_numpy() == pytest.approx(
                mine.reindex(range(24), fill_value=0.0).to_numpy(), abs=1e-7)
    assert scan.need_days == ["2016-07-25", "2016-08-12"]  # 10 January has no need


def test_a_scan_is_cached_under_what_it_depends_on(monkeypatch, semiurb):
    scenario = default_scenario(semiurb)
    first = scan_year(SEMIURB, scenario, NeedLimits(), days=["2016-07-25"])
    monkeypatch.setattr(year, "_scan", lambda *args: pytest.fail("scanned again"))
    again = scan_year(SEMIURB, scenario, NeedLimits(), days=["2016-07-25"])
    pd.testing.assert_frame_equal(first.days, again.days)
    pd.testing.assert_frame_equal(first.hourly, again.hourly)
    calls = []
    monkeypatch.setattr(year, "_scan", lambda *args: calls.append(args) or first)
    scan_year(SEMIURB, scenario, NeedLimits(vmax=1.06), days=["2016-07-25"])
    scan_year(SEMIURB, scenario.__class__(pv_scale=1.0), NeedLimits(), days=["2016-07-25"])
    assert len(calls) == 2  # other limits, other growth: scanned anew


def test_days_need_a_grid_with_a_profile_year():
    with pytest.raises(InputError, match="no profile year") as err:
        scan_year("cigre-mv", default_scenario(load_grid("cigre-mv")), NeedLimits())
    assert err.value.field == "days"


# --- choosing days ----------------------------------------------------------------------

def scan_of(peaks: dict[str, float], quiet: tuple[str, ...] = ()) -> YearScan:
    """A scan whose days with needs have the same hourly shape scaled to a voltage peak
    ({day: peak}), and `quiet` days without a need (which are never chosen)."""
    hours = np.arange(24)
    shape = np.exp(-((hours - 13) / 3.0) ** 2)
    hourly = [pd.DataFrame({"day": day, "hour": hours, "loading_max": 60 + 20 * shape,
                            "v_max": 1.0 + (peak - 1.0) * shape, "v_min": 0.99,
                            "cm_need": 0.0, "vc_need": np.maximum(peak - 1.05, 0) * shape,
                            "cm_worst": 0.0, "vc_worst": np.maximum(peak - 1.05, 0) * shape})
              for day, peak in peaks.items()]
    days = ([{"day": day, "need_hours": 5, "converged": True} for day in peaks]
            + [{"day": day, "need_hours": 0, "converged": True} for day in quiet])
    hourly = (pd.concat(hourly, ignore_index=True) if hourly
              else pd.DataFrame(columns=["day", "hour", *FEATURES]))
    return YearScan(pd.DataFrame(days), hourly)


def synthetic_scan(groups: dict[str, tuple[int, float]], quiet: int = 5) -> YearScan:
    """Days from 1 March in groups of identical profiles: {name: (days, voltage peak)}."""
    dates = (pd.Timestamp("2016-03-01") + pd.Timedelta(days=d) for d in range(366))
    peaks = {next(dates).date().isoformat(): peak for count, peak in groups.values()
             for _ in range(count)}
    return scan_of(peaks, tuple(next(dates).date().isoformat() for _ in range(quiet)))


def test_representative_days_weigh_their_clusters_hand_case():
    """Ten identical mild days and five identical hot ones: k = 2 keeps one of each,
    weighing 10 and 5; the quiet days are in no cluster."""
    scan = synthetic_scan({"mild": (10, 1.06), "hot": (5, 1.09)})
    chosen = choose_days(scan, DaysRule(rule="representative", k=2, keep_worst=False))
    weights = {day.day: day.weight for day in chosen}
    assert sorted(weights.values()) == [5.0, 10.0]
    mild, hot = scan.need_days[:10], scan.need_days[10:]
    assert {day for day, w in weights.items() if w == 10.0} <= set(mild)
    assert {day for day, w in weights.items() if w == 5.0} <= set(hot)


def test_a_cluster_is_represented_by_its_mean_need_not_its_medoid_hand_case():
    """One cluster of five days whose voltage needs (in units of the shape) are 1, 1, 1,
    4 and 11: the year's need is 18. The medoid is a day of need 1 (distances 0+0+3+10 =
    13 against 16 for the day of 4), so five of them give 5 (-72 %); the day nearest the
    cluster's mean need (3.6) is the day of 4, and five of them give 20 (+11 %)."""
    peaks = {"2016-05-01": 1.051, "2016-05-02": 1.051, "2016-05-03": 1.051,
             "2016-05-04": 1.054, "2016-05-05": 1.061}
    scan = scan_of(peaks)
    rule = DaysRule(rule="representative", k=1, keep_worst=False)
    assert choose_days(scan, rule) == [ChosenDay("2016-05-04", 5.0)]
    medoid = choose_days(scan, replace(rule, representative="medoid"))
    assert len(medoid) == 1 and peaks[medoid[0].day] == 1.051 and medoid[0].weight == 5.0


def test_keep_worst_keeps_the_days_of_the_extreme_hours():
    groups = {"mild": (12, 1.06), "warm": (8, 1.07), "hot": (6, 1.08), "worst": (1, 1.10)}
    scan = synthetic_scan(groups)
    worst = scan.need_days[26]
    with_worst = choose_days(scan, DaysRule(rule="representative", k=3))
    assert {day.day: day.weight for day in with_worst}[worst] == 1.0  # its own, alone
    assert sum(day.weight for day in with_worst) == 27
    assert len(with_worst) == 3
    assert [d.day for d in with_worst] == sorted(d.day for d in with_worst)
    again = choose_days(scan, DaysRule(rule="representative", k=3))
    assert again == with_worst  # the same days and weights every time


@pytest.mark.parametrize("method", ["hierarchical", "kmeans"])
def test_every_k_gives_k_days_weighing_the_year(method):
    """Extreme days alone, the others clustered: k days for every k, weights adding up."""
    rng = np.random.default_rng(0)
    peaks = dict(zip([f"2016-{m:02d}-{d:02d}" for m in range(4, 10) for d in range(1, 11)],
                     1.055 + 0.03 * rng.random(60), strict=True))
    scan = scan_of(peaks)
    scan = YearScan(scan.days, scan.hourly.assign(
        loading_max=scan.hourly.loading_max + rng.normal(0, 2, len(scan.hourly)),
        v_min=scan.hourly.v_min - 0.01 * rng.random(len(scan.hourly))))
    for k in range(4, 61, 7):
        chosen = choose_days(scan, DaysRule(rule="representative", k=k, method=method))
        assert len(chosen) == k and sum(day.weight for day in chosen) == 60


def test_kmeans_is_seeded():
    rng = np.random.default_rng(3)
    scan = synthetic_scan({f"g{i}": (3, 1.055 + 0.002 * i) for i in range(12)})
    noisy = scan.hourly.assign(vc_need=scan.hourly.vc_need
                               + np.abs(rng.normal(0, 0.003, len(scan.hourly))))
    scan = YearScan(scan.days, noisy)
    rule = DaysRule(rule="representative", k=4, method="kmeans", seed=1, keep_worst=False)
    first = choose_days(scan, rule)
    assert choose_days(scan, rule) == first
    assert sum(day.weight for day in first) == 36 and len(first) == 4


def test_the_needs_rule_and_a_large_k_take_every_day_with_a_need():
    scan = synthetic_scan({"mild": (4, 1.06), "hot": (2, 1.09)})
    for rule in (DaysRule(rule="needs"), DaysRule(rule="representative", k=50)):
        chosen = choose_days(scan, rule)
        assert [day.day for day in chosen] == scan.need_days
        assert {day.weight for day in chosen} == {1.0}


@pytest.mark.parametrize(("scan", "rule", "field"), [
    (synthetic_scan({}, quiet=10), DaysRule(rule="needs"), "days.rule"),
    (synthetic_scan({"a": (10, 1.06), "worst": (1, 1.09)}),
     DaysRule(rule="representative", k=1), "days.k"),
])
def test_a_year_without_needs_or_a_k_too_small_is_an_error(scan, rule, field):
    with pytest.raises(InputError) as err:
        choose_days(scan, rule)
    assert err.value.field == field


def test_bad_days_rules_name_the_field():
    with pytest.raises(InputError) as err:
        DaysRule(rule="some")
    assert err.value.field == "days.rule" and "representative" in str(err.value)
    with pytest.raises(InputError) as err:
        DaysRule(rule="representative", method="ward")
    assert err.value.field == "days.method"


# --- a year's figures -----------------------------------------------------------------

def day_runs() -> pd.DataFrame:
    """Two designs x two days (weights 3 and 5) x two seeds, costs known by hand."""
    rows = []
    costs = {("A", "d1"): (10.0, 12.0), ("A", "d2"): (1.0, 3.0),
             ("B", "d1"): (20.0, 20.0), ("B", "d2"): (2.0, 2.0)}
    for (design, day), by_seed in costs.items():
        for seed, cost in enumerate(by_seed):
            rows.append({"design": design, "pricing": "pay-as-bid", "learner": "re",
                         "variant": f"day={day}", "seed": seed, "chosen_day": day,
                         "total_cost": cost,
                         "unmet_need_no_market": 2.0 if day == "d1" else 1.0,
                         **{name: 0.0 for name in ("dso_cost", "unmet_cost_after_ac",
                                                   "tap_cost", "cost_no_market",
                                                   "cost_dso_alone", "unmet_need_after_ac",
                                                   "curtailed_after_ac", "shed_after_ac",
                                                   "unmet_need_dso_alone", "truthful_cost")}})
    return pd.DataFrame(rows)


WEIGHTS = {"": {"d1": 3.0, "d2": 5.0}}  # the study's days and weights (manifest)


def test_a_year_is_the_weighted_sum_of_its_days_hand_case():
    years = annual_runs(day_runs(), WEIGHTS).set_index(["design", "seed"])
    # A: seed 0 = 3 x 10 + 5 x 1 = 35, seed 1 = 3 x 12 + 5 x 3 = 51; B: 70 both
    assert years.loc[("A", 0), "total_cost"] == 35.0
    assert years.loc[("A", 1), "total_cost"] == 51.0
    assert years.loc[("B", 0), "total_cost"] == 70.0
    assert years.loc[("A", 0), "unmet_need_no_market"] == 3 * 2.0 + 5 * 1.0
    assert years.loc[("A", 0), "total_cost_per_need"] == pytest.approx(35.0 / 11.0)
    assert (years.variant == "").all() and (years.days == 2).all()
    summary = annual_summary(annual_runs(day_runs(), WEIGHTS)).set_index("design")
    assert summary.loc["A", "total_cost_mean"] == 43.0
    # t(0.975, 1) s / sqrt(2) with s = 16 / sqrt(2)
    assert summary.loc["A", "total_cost_ci"] == pytest.approx(12.706205 * 8.0, rel=1e-6)
    pairs = annual_paired(annual_runs(day_runs(), WEIGHTS), "A")
    total = pairs[pairs.kpi == "total_cost"].iloc[0]
    assert total.difference == 27.0  # (70 - 35 + 70 - 51) / 2


def test_a_year_missing_a_day_is_left_out():
    runs = day_runs()
    runs = runs[~((runs.design == "A") & (runs.seed == 1) & (runs.chosen_day == "d2"))]
    years = annual_runs(runs, WEIGHTS)
    assert len(years) == 3
    assert not ((years.design == "A") & (years.seed == 1)).any()
    everywhere = day_runs()
    assert annual_runs(everywhere[everywhere.chosen_day == "d1"], WEIGHTS).empty  # no d2 run


def test_a_day_without_a_value_leaves_the_year_without_one():
    runs = day_runs()
    runs.loc[(runs.chosen_day == "d2") & (runs.seed == 0), "cost_dso_alone"] = np.nan
    years = annual_runs(runs, WEIGHTS).set_index(["design", "seed"])
    assert np.isnan(years.loc[("A", 0), "cost_dso_alone"])
    assert years.loc[("A", 1), "cost_dso_alone"] == 0.0
    assert years.loc[("A", 0), "total_cost"] == 35.0


def test_the_weights_are_the_studys_not_the_runs():
    """A rerun with another rule weighs the runs it keeps anew; other days are ignored."""
    years = annual_runs(day_runs(), {"": {"d1": 10.0, "d2": 1.0}}).set_index(["design", "seed"])
    assert years.loc[("A", 0), "total_cost"] == 10 * 10.0 + 1 * 1.0
    only_d1 = annual_runs(day_runs(), {"": {"d1": 7.0}}).set_index(["design", "seed"])
    assert only_d1.loc[("A", 0), "total_cost"] == 70.0 and (only_d1.days == 1).all()


def test_a_study_without_days_has_no_year():
    runs = day_runs().drop(columns=["chosen_day"])
    assert annual_runs(runs, {}).empty
    assert annual_runs(day_runs(), {}).empty


# --- a study of days ------------------------------------------------------------------

DAYS_SPEC = f"""[study]
grid = "simbench-semiurb"
population = "{ROOT / "agents" / "simbench_semiurb.toml"}"
designs = ["CMVC_PQ", "CM_P"]
rounds = 2
window = 2
seeds = 1
regret = false
references = false

[days]
rule = "representative"
k = 2
keep_worst = false

[sweep]
"market.curtailment_price" = [100.0, 1000.0]
"""


def two_day_scan() -> YearScan:
    """A year whose needs fall on four hot days like 2016-07-25 and a mild one."""
    hot = {f"2016-07-2{d}": 1.09 for d in range(5, 9)}
    return scan_of({**hot, "2016-08-12": 1.06}, ("2016-01-10",))


def test_a_days_study_expands_each_swept_variant_into_its_days(tmp_path, monkeypatch):
    monkeypatch.setattr("lfm_abm.network.year.scan_year",
                        lambda *args, **kwargs: two_day_scan())
    path = tmp_path / "days.toml"
    path.write_text(DAYS_SPEC)
    spec = load_study(path, out=str(tmp_path / "out"))
    labels = [variant.label for variant in spec.variants]
    assert labels == ["day=2016-07-25,curtailment_price=100.0",
                      "day=2016-08-12,curtailment_price=100.0",
                      "day=2016-07-25,curtailment_price=1000.0",
                      "day=2016-08-12,curtailment_price=1000.0"]
    assert [variant.day_weight for variant in spec.variants] == [4.0, 1.0, 4.0, 1.0]
    assert spec.describe()["days"]["chosen"] == {
        "curtailment_price=100.0": {"2016-07-25": 4.0, "2016-08-12": 1.0},
        "curtailment_price=1000.0": {"2016-07-25": 4.0, "2016-08-12": 1.0}}
    assert [variant.scenario.days for variant in spec.variants][:2] == [
        ("2016-07-25",), ("2016-08-12",)]
    assert spec.describe()["days"]["k"] == 2


@pytest.mark.parametrize(("extra", "field"), [
    ('[scenario]\ndays = ["2016-07-25"]\n', "scenario.days"),
    ('[sweep.scenario]\ndays = [["2016-07-25"]]\n', "scenario.days"),
])
def test_days_chosen_twice_is_an_error(tmp_path, extra, field):
    path = tmp_path / "days.toml"
    path.write_text(DAYS_SPEC.replace("[sweep]\n\"market.curtailment_price\" = [100.0, 1000.0]",
                                      "") + extra)
    with pytest.raises(InputError) as err:
        load_study(path)
    assert err.value.field == field and str(path) in str(err.value)


def test_days_and_resampled_days_are_an_error(tmp_path):
    path = tmp_path / "days.toml"
    path.write_text(DAYS_SPEC.replace("references = false", "references = false\n"
                                      "resample_days = true"))
    with pytest.raises(InputError) as err:
        load_study(path)
    assert err.value.field == "study.resample_days"


def test_days_on_a_grid_without_a_year_name_the_file(tmp_path):
    path = tmp_path / "days.toml"
    path.write_text(DAYS_SPEC.replace("simbench-semiurb", "cigre-mv").replace(
        "simbench_semiurb", "cigre_mv"))
    with pytest.raises(InputError, match="no profile year") as err:
        load_study(path)
    assert str(path) in str(err.value)


@pytest.mark.slow
def test_a_days_study_reports_its_year(tmp_path, monkeypatch):
    """Two days, two prices: the year equals the weighted runs, in every
    output (annual.csv, report, figure)."""
    monkeypatch.setattr("lfm_abm.network.year.scan_year",
                        lambda *args, **kwargs: two_day_scan())
    path = tmp_path / "days.toml"
    path.write_text(DAYS_SPEC)
    spec = load_study(path, out=str(tmp_path / "out"))
    out = run_study(replace(spec, designs=("CMVC_PQ",), reference="CMVC_PQ"), progress=False)
    runs = pd.read_csv(out / "runs.csv")
    assert set(runs.chosen_day) == {"2016-07-25", "2016-08-12"}
    years = pd.read_csv(out / "annual_runs.csv", keep_default_na=False, na_values=[""])
    assert len(years) == 2  # one per price, one seed
    weight = runs.chosen_day.map({"2016-07-25": 4.0, "2016-08-12": 1.0})
    for row in years.itertuples():
        mine = (runs.design == row.design) & runs.variant.str.endswith(row.variant)
        assert mine.sum() == 2
        assert row.total_cost == pytest.approx((runs.total_cost * weight)[mine].sum())
        assert row.cost_no_market == pytest.approx((runs.cost_no_market * weight)[mine].sum())
    hot = runs[(runs.chosen_day == "2016-07-25") & (runs.curtailment_price == 100.0)]
    assert (hot.cost_no_market > 0).all()  # the hot day has needs the year counts
    report = (out / "report.md").read_text()
    assert "## The year" in report and "2016-07-25 (4)" in report
    assert (out / "plots" / "year_comparison.png").is_file()


def test_a_year_is_one_per_population_and_seed():
    runs = pd.concat([day_runs().assign(population="a"),
                      day_runs().assign(population="b",
                                        total_cost=day_runs().total_cost * 2)])
    years = annual_runs(runs, WEIGHTS).set_index(["design", "population", "seed"])
    assert years.loc[("A", "a", 0), "total_cost"] == 35.0
    assert years.loc[("A", "b", 0), "total_cost"] == 70.0
    summary = annual_summary(annual_runs(runs, WEIGHTS)).set_index("design")
    # population means of A's years: a (35 + 51) / 2 = 43, b 86: CI over the two
    assert summary.loc["A", "total_cost_mean"] == 64.5
    assert summary.loc["A", "total_cost_ci"] == pytest.approx(
        12.706205 * np.std([43.0, 86.0], ddof=1) / np.sqrt(2))


# --- how well representative days stand for the year ----------------------------------

def test_representation_error_hand_case():
    by_day = pd.DataFrame({"day": ["a", "b", "c"], "mwh": [1.0, 2.0, 4.0],
                           "cost": [100.0, 200.0, 400.0]})
    error = representation_error(by_day, [ChosenDay("a", 2.0), ChosenDay("c", 1.0)])
    assert error["mwh_exact"] == 7.0 and error["mwh_estimate"] == 6.0  # 2 x 1 + 4
    assert error["mwh_error"] == pytest.approx(-1 / 7)
    assert error["cost_estimate"] == 600.0


@pytest.mark.slow
def test_the_days_command_checks_its_days_on_the_year(monkeypatch, capsys):
    """Two real days: the year without a market is each day's emergency action, summed."""
    monkeypatch.setattr("lfm_abm.network.year.scan_year",
                        lambda *args, **kwargs: scan_of({"2016-07-25": 1.09,
                                                         "2016-08-12": 1.06}))
    assert main(["days", "--grid", SEMIURB, "--k", "2"]) == 0
    printed = capsys.readouterr().out
    by_day = year_without_market(SEMIURB, default_scenario(load_grid(SEMIURB)), NeedLimits(),
                                 MarketParams(), ["2016-07-25", "2016-08-12"])
    assert by_day.set_index("day").loc["2016-07-25", "mwh"] == pytest.approx(14.66, abs=0.01)
    assert f"{by_day.mwh.sum():,.1f} MWh" in printed
    assert "+0.0 %" in printed  # k = 2: both days, the year exactly
    assert main(["days", "--grid", SEMIURB, "--k", "1"]) == 2  # before any power flow
