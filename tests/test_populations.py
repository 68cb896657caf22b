"""Many populations: drawn from the generator, run as a dimension, summarised per draw."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lfm_abm.agents.population import load_population
from lfm_abm.errors import InputError
from lfm_abm.results.kpis import over_draws, paired, summarise
from lfm_abm.results.registry import KPIS
from lfm_abm.study import expand, load_study, run_study

ROOT = Path(__file__).resolve().parents[1]
SPEC = f"""[study]
grid = "cigre-mv"
population = "{ROOT / "agents" / "cigre_mv.toml"}"
designs = ["CMVC_PQ", "CM_P"]
rounds = 2
window = 2
seeds = 2
regret = false
references = false

[scenario]
hours = [12, 19]

[populations]
draws = 2
first_seed = 5
generator = {{ pv_density = 0.6, ev_fleets = 2, aggregators = 1 }}
"""


def write(tmp_path, text: str = SPEC) -> Path:
    path = tmp_path / "pops.toml"
    path.write_text(text)
    return path


def test_populations_are_drawn_by_seed_and_every_setting_runs_on_each(tmp_path):
    spec = load_study(write(tmp_path), out=str(tmp_path / "out"))
    assert [p.label for p in spec.populations] == ["shipped", "drawn-5", "drawn-6"]
    again = load_study(write(tmp_path), out=str(tmp_path / "out"))
    assert [p.text for p in again.populations] == [p.text for p in spec.populations]
    assert spec.populations[1].population.fsps != spec.populations[2].population.fsps
    runs = expand(spec)
    assert len(runs) == 2 * 3 * 2  # designs x populations x seeds (no references)
    mine = [r for r in runs if r.learner == "population" and r.design == "CM_P"]
    assert {r.population for r in mine} == {"shipped", "drawn-5", "drawn-6"}
    assert len({r.fingerprint for r in mine}) == len(mine)
    assert "__drawn-5__s0" in next(r.run_id for r in mine if r.population == "drawn-5")
    shipped = next(r for r in mine if r.population == "shipped").settings.population
    assert shipped.fsps == load_population(ROOT / "agents" / "cigre_mv.toml").fsps
    assert spec.describe()["populations"]["labels"] == ["shipped", "drawn-5", "drawn-6"]


def test_without_the_shipped_file_only_draws_run(tmp_path):
    spec = load_study(write(tmp_path, SPEC.replace("first_seed = 5",
                                                   "first_seed = 5\nshipped = false")))
    assert [p.label for p in spec.populations] == ["drawn-5", "drawn-6"]


@pytest.mark.parametrize(("line", "field"), [
    ("draws = 0", "populations.draws"),
    ("colour = 1", "populations.colour"),
    ("generator = { pv_dens = 0.5 }", "populations.generator.pv_dens"),
    ("generator = { ev_fleets = -1 }", "populations.generator.ev_fleets"),
])
def test_bad_populations_name_the_field(tmp_path, line, field):
    text = SPEC.replace("draws = 2", line) if line.startswith(("draws", "colour")) else (
        SPEC.replace("generator = { pv_density = 0.6, ev_fleets = 2, aggregators = 1 }", line))
    if line.startswith("colour"):
        text = SPEC.replace("draws = 2", "draws = 2\ncolour = 1")
    path = write(tmp_path, text)
    with pytest.raises(InputError) as err:
        load_study(path)
    assert err.value.field == field and str(path) in str(err.value)


def test_a_study_records_its_populations_and_tags_every_run(tmp_path):
    path = write(tmp_path, SPEC.replace('designs = ["CMVC_PQ", "CM_P"]', 'designs = ["CMVC_PQ"]')
                 .replace("seeds = 2", "seeds = 1"))
    out = run_study(load_study(path, out=str(tmp_path / "out")), progress=False)
    spec = load_study(path, out=str(tmp_path / "out"))
    for drawn in spec.populations:
        written = load_population(out / "populations" / f"{drawn.label}.toml")
        assert written.fsps == drawn.population.fsps
    runs = pd.read_csv(out / "runs.csv")
    assert set(runs.population) == {"shipped", "drawn-5", "drawn-6"}
    summary = pd.read_csv(out / "summary.csv")
    assert (summary.populations == 3).all() and (summary.seeds == 3).all()
    assert "over populations" in (out / "report.md").read_text()


# --- confidence intervals over populations x seeds ----------------------------------

def runs_of(values: dict[tuple[str, str, int], float]) -> pd.DataFrame:
    """Runs with `total_cost` (and every other KPI) set from {(design, population, seed)}."""
    rows = [{"design": design, "pricing": "pay-as-bid", "learner": "re", "variant": "",
             "population": population, "seed": seed, **dict.fromkeys(KPIS, value)}
            for (design, population, seed), value in values.items()]
    return pd.DataFrame(rows)


def test_the_ci_is_over_population_means_hand_case():
    """Population a: seeds 1, 3 (mean 2); b: 5, 7 (mean 6); c: 9, 11 (mean 10): the
    interval is t(0.975, 2) x sd(2, 6, 10) / sqrt(3), not that of the six runs."""
    values = np.array([1.0, 3.0, 5.0, 7.0, 9.0, 11.0])
    populations = np.array(["a", "a", "b", "b", "c", "c"])
    mean, ci = over_draws(values, populations)
    assert mean == 6.0
    assert ci == pytest.approx(4.302653 * 4.0 / np.sqrt(3), rel=1e-6)
    assert over_draws(values, np.array(["a"] * 6)) == over_draws(values)  # one: over seeds
    summary = summarise(runs_of({("X", p, s): v for (p, s), v in zip(
        [("a", 0), ("a", 1), ("b", 0), ("b", 1), ("c", 0), ("c", 1)], values, strict=True)}))
    row = summary.iloc[0]
    assert row.total_cost_mean == 6.0 and row.populations == 3 and row.seeds == 6
    assert row.total_cost_ci == pytest.approx(ci)


def test_paired_differences_pair_on_population_and_seed():
    """Seed 0 of population a is not seed 0 of b: pairs match both."""
    base = {("R", "a", 0): 10.0, ("R", "a", 1): 20.0, ("R", "b", 0): 100.0,
            ("R", "b", 1): 200.0}
    other = {("X", "a", 0): 11.0, ("X", "a", 1): 21.0, ("X", "b", 0): 103.0,
             ("X", "b", 1): 203.0}
    pairs = paired(runs_of({**base, **other}), "R")
    total = pairs[pairs.kpi == "total_cost"].iloc[0]
    assert total.difference == 2.0  # (1 + 1 + 3 + 3) / 4
    assert total.seeds == 4
    assert total.ci == pytest.approx(12.706205 * np.std([1.0, 3.0], ddof=1) / np.sqrt(2))
