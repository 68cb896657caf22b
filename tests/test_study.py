"""Studies: outputs, resume after interruption, Dask, failures, spec validation."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

from lfm_abm import study as study_module
from lfm_abm.cli import main
from lfm_abm.errors import InputError
from lfm_abm.files import TMP_PREFIX
from lfm_abm.records import TABLES
from lfm_abm.results import store
from lfm_abm.results.lazy import StudyTables
from lfm_abm.study import expand, load_study, run_study

ROOT = Path(__file__).resolve().parents[1]
QUICK = ROOT / "studies" / "quick.toml"


def small(tmp_path, name="out", rounds=6, seeds=2, regret=False, references=False):
    """The quick study, small; without the regret re-clearings and the reference runs
    unless they are tested."""
    spec = load_study(QUICK, rounds=rounds, seeds=seeds, out=str(tmp_path / name))
    return replace(spec, regret=regret, references=references)


def tables_of(out: Path) -> dict[str, pd.DataFrame]:
    runs = sorted(store.read_manifest(out)["current_runs"])
    stored = StudyTables.on_disk(out, store.run_tags(out, runs))
    return {name: stored.frame(name) for name in TABLES}


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """The quick study, small, run once without interruption."""
    out = run_study(small(tmp_path_factory.mktemp("study"), regret=True, references=True),
                    workers=1, progress=False)
    return out


def test_study_writes_every_output(finished):
    manifest = store.read_manifest(finished)
    assert len(manifest["current_runs"]) == 8 * 3  # learned, random and truthful
    assert all(v["status"] == "finished" for v in manifest["runs"].values())
    assert {"python", "pandapower", "highspy", "mesa"} <= set(manifest["versions"])
    summary = pd.read_csv(finished / "summary.csv")
    designs = ["CM_P", "VC_Q", "CMVC_PQ", "CM_P>VC_Q"]
    assert list(summary.design) == [d for d in designs for _ in range(3)]
    assert list(summary.learner[:3]) == ["roth-erev", "random", "truthful"]
    for column in ("dso_cost_mean", "dso_cost_ci", "cost_ratio_mean", "unmet_need_after_ac_mean",
                   "lerner_pv_inverter_P_mean", "lerner_mean", "hhi_mean", "psi_mean",
                   "scarcity_mean", "regret_max_mean", "regret_max_ci",
                   "rounds_to_stable_mean", "volume_Q_down_mean", "dso_cost_vs_random_mean",
                   "regret_played_max_mean", "psi_learned_mean", "greedy_share_mean"):
        assert column in summary
    assert (summary.seeds == 2).all()
    learned = summary[summary.learner == "roth-erev"]
    assert learned.dso_cost_vs_random_mean.notna().all()
    assert learned.regret_played_max_mean.notna().all() and learned.psi_learned_mean.notna().all()
    references = summary[summary.learner != "roth-erev"]
    assert references.dso_cost_vs_random_mean.isna().all()
    assert references.regret_max_mean.isna().all()  # references skip the regret tests
    runs = pd.read_csv(finished / "runs.csv")
    random = runs[runs.learner == "random"].set_index(["design", "seed"])
    mine = runs[runs.learner == "roth-erev"].set_index(["design", "seed"])
    assert (mine.dso_cost - random.dso_cost.loc[mine.index]).to_numpy() == pytest.approx(
        mine.dso_cost_vs_random.to_numpy())
    for figure in ("markups_accepted", "learning_profits", "cost_curves", "design_comparison",
                   "market_power", "profits", "surplus_split", "supply_stack",
                   "locational_prices", "awards_map"):
        assert (finished / "plots" / f"{figure}.png").stat().st_size > 10_000
    report = (finished / "report.md").read_text()
    assert "plots/cost_curves.png" in report and "CMVC_PQ" in report
    for section in ("## Headline", "## Did the agents learn?", "## Warnings",
                    "## Each design against CM_P (paired"):
        assert section in report
    assert "DSO cost random" in report and "learned - random Lerner" in report
    paired = pd.read_csv(finished / "paired.csv")
    assert set(paired.design) == {"VC_Q", "CMVC_PQ", "CM_P>VC_Q"} and (paired.seeds == 2).all()
    rounds = tables_of(finished)["rounds"]
    assert len(rounds) == 24 * 6 and not rounds.duplicated(["run_id", "round"]).any()


def test_load_results_and_three_lines_reproduce_the_summary(finished):
    from lfm_abm import load_results

    results = load_results(finished)
    learned = results.runs[results.runs.learner == "roth-erev"]
    means = learned.groupby("design", sort=False)[["dso_cost", "total_cost", "lerner"]]
    table = means.mean()
    summary = pd.read_csv(finished / "summary.csv").query("learner == 'roth-erev'")
    summary = summary.set_index("design")
    for name in ("dso_cost", "total_cost", "lerner"):
        assert table[name].to_numpy() == pytest.approx(
            summary.loc[table.index, f"{name}_mean"].to_numpy(), nan_ok=True)
    # and from the raw records: the window (10 rounds) covers the 6 rounds of each run
    raw = results.rounds.query("learner == 'roth-erev'").groupby("design", sort=False
                                                                  ).dso_cost.mean()
    assert raw.to_numpy() == pytest.approx(summary.loc[raw.index, "dso_cost_mean"].to_numpy())
    paid = results.agents[results.agents.awarded > 0].groupby("run_id")[
        ["profit", "payment"]].sum()
    lerner = (paid.profit / paid.payment).reindex(results.runs.run_id).to_numpy()
    assert lerner == pytest.approx(results.runs.lerner.to_numpy(), nan_ok=True)
    for frame in (results.rounds, results.agents, results.awards, results.offers):
        assert {"run_id", "design", "pricing", "learner", "seed"} <= set(frame.columns)
    assert set(results.offers["round"]) == {1, 6}
    assert results.network is not None and len(results.network.needs) > 0


def test_rerun_skips_finished_runs(finished):
    before = {p.name: p.stat().st_mtime_ns for p in (finished / "runs").iterdir()}
    spec = load_study(QUICK, rounds=6, seeds=2, out=str(finished))
    run_study(spec, workers=1, progress=False)
    after = {p.name: p.stat().st_mtime_ns for p in (finished / "runs").iterdir()}
    assert before == after


def test_changed_settings_recompute_only_what_changed(finished, tmp_path):
    spec = load_study(QUICK, rounds=6, seeds=3, out=str(finished))
    runs = study_module.expand(spec)
    todo = [r for r in runs if not store.is_finished(finished, r.run_id, r.fingerprint)]
    assert {r.seed for r in todo} == {2} and len(todo) == 4 * 3
    longer = study_module.expand(load_study(QUICK, rounds=7, seeds=2, out=str(finished)))
    assert not any(store.is_finished(finished, r.run_id, r.fingerprint) for r in longer)


@pytest.mark.slow
def test_interrupted_study_resumes_to_the_same_results(finished, tmp_path):
    out = tmp_path / "interrupted"
    command = [sys.executable, "-m", "lfm_abm.cli", "run", str(QUICK), "--rounds", "6",
               "--seeds", "2", "--workers", "1", "--quiet", "--out", str(out)]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline:
        runs = [p for p in (out / "runs").glob("*") if not p.name.startswith(".")] \
            if (out / "runs").is_dir() else []
        if len(runs) >= 2:
            break
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    partial = [p for p in (out / "runs").iterdir() if not p.name.startswith(".")]
    assert 2 <= len(partial) < 8, "the study was interrupted half way"
    assert main(["run", str(QUICK), "--rounds", "6", "--seeds", "2", "--workers", "1",
                 "--quiet", "--out", str(out)]) == 0
    resumed, reference = tables_of(out), tables_of(finished)
    for name in ("rounds", "agents", "awards"):
        left = resumed[name].drop(columns=["solve_seconds"], errors="ignore")
        right = reference[name].drop(columns=["solve_seconds"], errors="ignore")
        pd.testing.assert_frame_equal(left.reset_index(drop=True), right.reset_index(drop=True))
    assert not resumed["rounds"].duplicated(["run_id", "round"]).any()
    assert not [p for p in (out / "runs").iterdir() if p.name.startswith(TMP_PREFIX)]


@pytest.mark.slow
def test_dask_local_cluster_gives_the_same_results(finished, tmp_path):
    distributed = pytest.importorskip("distributed")
    # two threads in the test's own process: runs share its cached market days
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                  dashboard_address=None) as cluster:
        out = run_study(small(tmp_path, "dask"), scheduler=cluster.scheduler_address,
                        progress=False)
    left, right = tables_of(out)["rounds"], tables_of(finished)["rounds"]
    right = right[right.learner == "roth-erev"].reset_index(drop=True)
    pd.testing.assert_frame_equal(left.drop(columns="solve_seconds"),
                                  right.drop(columns="solve_seconds"))


@pytest.mark.slow
def test_runs_in_worker_processes_equal_the_same_runs_in_this_process(finished, tmp_path):
    # Exactly: the serial runs each followed others (references too) in one process.
    out = run_study(small(tmp_path, "pool", seeds=1), workers=2, progress=False)
    pooled, serial = tables_of(out), tables_of(finished)
    for name in ("rounds", "agents", "awards"):
        mine = serial[name][(serial[name].seed == 0) & (serial[name].learner == "roth-erev")]
        pd.testing.assert_frame_equal(
            pooled[name].drop(columns="solve_seconds", errors="ignore"),
            mine.reset_index(drop=True).drop(columns="solve_seconds", errors="ignore"),
            check_exact=True, obj=name)


def test_a_failing_run_is_recorded_and_the_others_go_on(tmp_path, monkeypatch):
    real = study_module.execute_run

    def flaky(run, out):
        if run.design == "VC_Q" and run.seed == 1:
            raise RuntimeError("solver exploded")
        return real(run, out)

    monkeypatch.setattr(study_module, "execute_run", flaky)
    out = run_study(small(tmp_path, rounds=3), workers=1, progress=False)
    runs = store.read_manifest(out)["runs"]
    failed = {k: v for k, v in runs.items() if v["status"] == "failed"}
    assert list(failed) == ["VC_Q__pay-as-bid__roth-erev__s1"]
    assert "solver exploded" in failed["VC_Q__pay-as-bid__roth-erev__s1"]["error"]
    assert sum(v["status"] == "finished" for v in runs.values()) == 7
    assert "failed" in (out / "report.md").read_text()
    monkeypatch.setattr(study_module, "execute_run", real)
    run_study(small(tmp_path, rounds=3), workers=1, progress=False)  # retried on rerun
    assert store.read_manifest(out)["runs"]["VC_Q__pay-as-bid__roth-erev__s1"]["status"] \
        == "finished"


def write_spec(tmp_path, study: str, extra: str = "") -> Path:
    path = tmp_path / "spec.toml"
    path.write_text(f"[study]\n{study}\n{extra}")
    return path


BASE = (f'grid = "cigre-mv"\npopulation = "{ROOT / "agents" / "cigre_mv.toml"}"\n'
        'designs = ["CMVC_PQ"]\nrounds = 3\nreferences = false\n')


@pytest.mark.parametrize(
    ("study", "extra", "field"),
    [
        (BASE.replace("CMVC_PQ", "CMVC_QP"), "", "study.designs[0]"),
        (BASE.replace('["CMVC_PQ"]', '["CM_P", "CM_X>VC_Q"]'), "", "study.designs[1]"),
        (BASE.replace('["CMVC_PQ"]', '["CM_P", "cm_p "]'), "", "study.designs"),
        (BASE.replace("rounds = 3", "rouns = 3"), "", "study.rouns"),
        (BASE.replace("cigre_mv.toml", "nobody.toml"), "", "study.population"),
        (BASE + "seeds = -2\n", "", "study.seeds"),
        (BASE + "colour = 1\n", "", "study.colour"),
        (BASE + "regret = 1\n", "", "study.regret"),
        (BASE + "regret_every = -1\n", "", "study.regret_every"),
        (BASE.replace("rounds = 3", "rounds = 0"), "", "study.rounds"),
        (BASE + 'pricing = ["vickrey"]\n', "", "pricing"),
        (BASE, "[market]\nvoll = -5\n", "market.voll"),
        (BASE, "[learners]\nmine = { kind = \"ucb2\" }\n", "learner.kind"),
        (BASE, "[scenario]\npv_scal = 1.2\n", "scenario.pv_scal"),
        (BASE, "[extras]\n", "extras"),
        (BASE, "[sweep.market]\nvoll = 300.0\n", "sweep.market.voll"),
        (BASE, "[sweep.pricing]\nrule = [1]\n", "sweep.pricing"),
        (BASE, "[sweep.market]\nvoll = [300.0, -1.0]\n", "market.voll"),
        (BASE, "[sweep.market]\nreservation_price = [0.0]\n", "market.reservation_price"),
        (BASE, "[sweep]\n\"fsp_costs.Q_scale\" = [1.0, 0.0]\n", "fsp_costs.Q_scale"),
        (BASE, "[fsp_costs]\nR_scale = 2.0\n", "fsp_costs.R_scale"),
        (BASE, "[sweep]\nvoll = [1.0]\n", "sweep.voll"),
        (BASE + 'reference = "CM_P"\n', "", "study.reference"),
    ],
)
def test_bad_specs_name_the_field(tmp_path, study, extra, field):
    path = write_spec(tmp_path, study, extra)
    with pytest.raises(InputError) as err:
        load_study(path)
    assert err.value.field == field
    assert str(path) in str(err.value)


def test_the_documented_duckdb_query_reads_tags_from_the_files(finished):
    """docs/results.md's query, on the finished study: per-setting means from the files'
    own tag columns equal the same means over the runs' tables read by run id."""
    import duckdb

    text = (ROOT / "docs" / "results.md").read_text()
    sql = text.split("```sql\n")[1].split("```")[0]
    sql = sql.replace("out/designs", str(finished)).replace("round > 150", "round > 3")
    documented = duckdb.sql(sql).df().set_index(["design", "pricing", "variant"]).dso_cost
    runs = sorted(store.read_manifest(finished)["current_runs"])
    tags = store.run_tags(finished, runs).set_index("run_id")
    expected = {}
    for run_id in runs:
        if tags.learner[run_id] in ("random", "truthful"):
            continue
        rounds = pd.read_parquet(finished / "runs" / run_id / "rounds.parquet")
        assert (rounds.run_id == run_id).all() and (rounds.design == tags.design[run_id]).all()
        expected.setdefault((tags.design[run_id], tags.pricing[run_id], tags.variant[run_id]),
                            []).append(rounds.dso_cost[rounds["round"] > 3])
    assert len(documented) == len(expected) == 4
    for key, parts in expected.items():
        assert documented[key] == pytest.approx(pd.concat(parts).mean(), rel=1e-12)


def test_a_rerun_says_it_has_nothing_to_do_and_the_manifest_adds_up_its_sessions(
        tmp_path, capsys):
    spec = small(tmp_path, rounds=2, seeds=1)
    out = run_study(spec, workers=1, progress=False)
    first = store.read_manifest(out)
    capsys.readouterr()
    run_study(spec, workers=1, progress=False)
    assert capsys.readouterr().out.startswith(
        f"{spec.name}: nothing to do: {len(first['current_runs'])} runs already finished")
    manifest = store.read_manifest(out)
    sessions = manifest["sessions"]
    assert [s["runs_to_do"] for s in sessions] == [len(first["current_runs"]), 0]
    assert all(s["completed"] for s in sessions)
    assert manifest["wall_seconds"] == pytest.approx(sum(s["wall_seconds"] for s in sessions))
    assert manifest["wall_seconds"] >= first["wall_seconds"] > 1.0
    provenance = manifest["provenance"]
    assert provenance["code_hash"] == study_module.code_identity() and provenance["cpus"] >= 1
    assert provenance["git_commit"] is None or len(provenance["git_commit"]) == 40


def test_design_names_have_one_spelling_whatever_the_case(tmp_path):
    spec = load_study(write_spec(tmp_path, BASE.replace(
        '["CMVC_PQ"]', '["cm_p > vc_q", "Cmvc_pq"]') + 'reference = "cmvc_pq"\n'))
    assert spec.designs == ("CM_P>VC_Q", "CMVC_PQ") and spec.reference == "CMVC_PQ"
    assert {run.run_id.split("__")[0] for run in expand(spec)} == {"CM_P-then-VC_Q", "CMVC_PQ"}


def test_a_bad_design_flag_names_the_flag_once(capsys):
    assert main(["clear", "--grid", "cigre-mv", "--design", "CMVC_QP", "--bids", "x.csv"]) == 2
    err = capsys.readouterr().err
    assert "--design: unknown design 'CMVC_QP'" in err and "design: design" not in err


def test_bad_spec_exits_2_without_creating_output(tmp_path, capsys):
    path = write_spec(tmp_path, BASE.replace("CMVC_PQ", "CMVC_QP") + f'out = "{tmp_path}/o"\n')
    assert main(["run", str(path)]) == 2
    assert "CMVC_QP" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_plot_and_report_rebuild_from_saved_results(finished, capsys):
    (finished / "report.md").unlink()
    (finished / "plots" / "cost_curves.png").unlink()
    assert main(["report", str(finished)]) == 0
    assert (finished / "report.md").is_file()
    assert (finished / "plots" / "cost_curves.png").is_file()
    assert "CMVC_PQ" in capsys.readouterr().out


def test_summary_of_a_folder_without_results_is_a_clear_error(tmp_path, capsys):
    assert main(["plot", str(tmp_path)]) == 2
    assert "manifest" in capsys.readouterr().err


def test_interrupted_change_of_spec_never_summarises_stale_runs(tmp_path, monkeypatch):
    out = run_study(small(tmp_path, rounds=3), workers=1, progress=False)
    real = study_module.execute_run
    calls = {"n": 0}

    def interrupted(run, out):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(run, out)

    monkeypatch.setattr(study_module, "execute_run", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_study(small(tmp_path, rounds=4), workers=1, progress=False)
    summary = study_module.summarise_study(out)
    assert summary.seeds.sum() == 1  # only the one run made with 4 rounds
    statuses = [v["status"] for v in store.read_manifest(out)["runs"].values()]
    assert statuses.count("finished") == 1 and statuses.count("pending") == 7


def test_a_run_whose_manifest_entry_was_lost_is_still_counted(finished):
    manifest = store.read_manifest(finished)
    lost = manifest["current_runs"][0]
    del manifest["runs"][lost]
    store.write_manifest(finished, manifest)
    run_study(load_study(QUICK, rounds=6, seeds=2, out=str(finished)), workers=1,
              progress=False)
    assert store.read_manifest(finished)["runs"][lost]["status"] == "finished"
    assert (pd.read_csv(finished / "summary.csv").seeds == 2).all()


def test_a_sweep_runs_every_value_and_reports_it_as_a_variant(tmp_path):
    """A [sweep] is a study dimension: one run set per value, kept apart in the summary."""
    path = write_spec(tmp_path, BASE + f'out = "{tmp_path / "swept"}"\n',
                      "[learners]\nfixed = { kind = \"fixed-markup\", markup = 0.5 }\n"
                      "[sweep.market]\nvoll = [300.0, 3000.0]\n")
    spec = load_study(path)
    assert [v.label for v in spec.variants] == ["voll=300.0", "voll=3000.0"]
    assert [v.market.voll for v in spec.variants] == [300.0, 3000.0]
    out = run_study(spec, workers=1, progress=False)
    assert store.read_manifest(out)["current_runs"] == [
        "CMVC_PQ__pay-as-bid__fixed__voll=300.0__s0", "CMVC_PQ__pay-as-bid__fixed__voll=3000.0__s0"]
    runs = pd.read_csv(out / "runs.csv").set_index("variant")
    assert set(runs.index) == {"voll=300.0", "voll=3000.0"}
    curtail = spec.variants[0].market.curtailment_price
    for variant, voll in (("voll=300.0", 300.0), ("voll=3000.0", 3000.0)):
        row = runs.loc[variant]
        assert row.curtailed_after_ac + row.shed_after_ac == pytest.approx(
            row.unmet_need_after_ac)
        assert row.unmet_cost_after_ac == pytest.approx(
            curtail * row.curtailed_after_ac + voll * row.shed_after_ac)
    assert "voll=3000.0" in (out / "report.md").read_text()


def test_a_cost_sweep_scales_true_costs_and_tags_the_results(tmp_path):
    """`"fsp_costs.Q_scale"` multiplies every Q cost; the swept value is a column."""
    path = write_spec(tmp_path, BASE.replace("rounds = 3", "rounds = 2")
                      + f'out = "{tmp_path / "q"}"\n',
                      "[learners]\ntruthful = { kind = \"truthful\" }\n"
                      "[sweep]\n\"fsp_costs.Q_scale\" = [1.0, 4.0]\n")
    spec = load_study(path)
    assert [v.fsp_costs.Q_scale for v in spec.variants] == [1.0, 4.0]
    runs = study_module.expand(spec)
    plain, dear = (r.settings.population for r in runs)
    for fsp_plain, fsp_dear in zip(plain.fsps, dear.fsps, strict=True):
        for a, b in zip(fsp_plain.assets, fsp_dear.assets, strict=True):
            assert {p: 4.0 * c if p[0] == "Q" else c for p, c in a.cost.items()} == b.cost
    from lfm_abm import load_results

    results = load_results(run_study(spec, workers=1, progress=False))
    assert sorted(results.runs.Q_scale) == [1.0, 4.0]
    q = results.agents[(results.agents.family == "Q") & (results.agents.awarded > 0)]
    cost = q.groupby("Q_scale").true_cost.sum() / q.groupby("Q_scale").awarded.sum()
    assert cost[4.0] > 2.0 * cost[1.0]  # dearer per MVArh (and bought less where P wins)
    assert (tmp_path / "q" / "plots" / "sweep_Q_scale.png").is_file()


def test_progress_bar_counts_rounds_and_runs(tmp_path, capsys):
    spec = load_study(write_spec(tmp_path, BASE + f'out = "{tmp_path / "bar"}"\n'
                                 + "seeds = 2\nregret = false\n"))
    run_study(spec, workers=1, progress=True)
    bar = capsys.readouterr().err.replace("\r", "\n").splitlines()
    final = [line for line in bar if "6/6" in line]
    assert final and "runs 2/2" in final[-1] and re.search(r"round/s|s/round", final[-1])


def test_regret_every_k_rounds_measures_the_profile_along_the_run(tmp_path):
    spec = load_study(write_spec(tmp_path, BASE + "regret_every = 2\n"))
    (run,) = study_module.expand(spec)
    study_module.execute_run(run, tmp_path)
    regret = pd.read_parquet(tmp_path / "runs" / run.run_id / "regret.parquet")
    assert sorted(regret["round"].unique()) == [2, 3]


@pytest.mark.parametrize("path", sorted((ROOT / "studies").glob("*.toml")), ids=lambda p: p.stem)
def test_every_shipped_study_loads(path):
    """A study file the README points to must not fail at its first line of work."""
    spec = load_study(path)
    assert spec.variants and spec.seeds and spec.designs
