"""The documentation keeps up with the code, and its example script runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from lfm_abm.learning import LEARNERS
from lfm_abm.market.designs import SINGLE_DESIGNS
from lfm_abm.market.pricing import PRICING_RULES
from lfm_abm.results.registry import KPIS

ROOT = Path(__file__).resolve().parents[1]


def test_every_design_learner_pricing_rule_and_kpi_is_documented():
    model = (ROOT / "docs" / "model.md").read_text()
    names = [*SINGLE_DESIGNS, "CM_P>VC_Q", *LEARNERS, *PRICING_RULES, *KPIS]
    missing = [name for name in names if f"`{name}`" not in model and name not in model]
    assert not missing, f"docs/model.md does not mention: {missing}"


def test_every_output_column_is_documented():
    results = (ROOT / "docs" / "results.md").read_text()
    import pandas as pd

    from lfm_abm.agents.population import load_population
    from lfm_abm.model import LFMModel, ModelSettings
    from lfm_abm.network.scenarios import Scenario

    settings = ModelSettings("cigre-mv", load_population(ROOT / "agents" / "cigre_mv.toml"),
                             "CMVC_PQ", scenario=Scenario(ev_peak_mw=1.5, hours=(13, 20)))
    model = LFMModel(settings, 0)
    model.step()
    tables = model.records()
    columns = {c for frame in tables.values() for c in pd.DataFrame(frame).columns}
    missing = sorted(c for c in columns if f"`{c}`" not in results)
    assert not missing, f"docs/results.md does not describe: {missing}"


def test_example_script_runs_from_a_clean_folder(tmp_path):
    out = tmp_path / "quick"
    result = subprocess.run([sys.executable, str(ROOT / "studies" / "example_plot.py"),
                             str(out), "--rounds", "4"], cwd=ROOT, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert (out / "plots" / "lerner_by_round.png").stat().st_size > 10_000


#: Features the code has, with a check that it has them, and how a stale "limitation"
#: would deny them. docs/model.md and the README must not deny any of them.
FEATURES = {
    "energy accounts (batteries, EV energy, shiftable loads)": (
        lambda: __import__("lfm_abm.market.energy", fromlist=["account_rows"]).account_rows,
        ("no inter-temporal", "no intertemporal", "no energy constraint",
         "no state of charge", "no battery")),
    "re-linearisation": (
        lambda: __import__("lfm_abm.market.params", fromlist=["MarketParams"])
        .MarketParams().relinearise is not None,
        ("no re-linearisation", "never re-linearise")),
    "locational pricing": (lambda: "locational" in PRICING_RULES,
                           ("no locational pric", "pay-as-bid only")),
    "reactive power products": (lambda: "Q" in SINGLE_DESIGNS[1],
                                ("active power only", "no reactive")),
    "AC validation": (
        lambda: __import__("lfm_abm.network.ac_validation", fromlist=["ACEvaluator"])
        .ACEvaluator, ("awards are not validated", "not validated against ac")),
}


def test_the_docs_deny_no_feature_the_code_has():
    """A checked list: docs/model.md once listed energy constraints as missing while
    section 3.9 described them."""
    texts = {name: (ROOT / name).read_text().lower() for name in ("docs/model.md", "README.md")}
    for feature, (present, denials) in FEATURES.items():
        assert present(), f"the code lost {feature}: update FEATURES and the docs"
        for name, text in texts.items():
            denied = [phrase for phrase in denials if phrase in text]
            assert not denied, f"{name} says {denied} but the code has {feature}"
