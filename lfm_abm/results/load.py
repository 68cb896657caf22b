"""A study's results in one call: tidy frames with every run's settings joined.

    results = lfm_abm.load_results("out/designs")
    results.runs.groupby("design").total_cost.mean()   # KPIs per run, one row per seed
    results.rounds.query("design == 'CMVC_PQ'")        # per-round records, tagged

Nothing is simulated: the frames come from the saved Parquet tables, and the KPIs are
recomputed from them with the same code as `summary.csv`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from lfm_abm.errors import InputError
from lfm_abm.learning import ActionGrid
from lfm_abm.results import store
from lfm_abm.results.kpis import GROUP, paired, reference_kpis, run_kpis, summarise


def reference_design(study: dict) -> str:
    """The design paired differences are taken to (the spec's `reference`, else the first)."""
    return study.get("reference", study["designs"][0])


def swept_fields(study: dict) -> list[str]:
    """Names of the study's swept fields, each a column of every result frame."""
    return [name for table in study.get("sweep", {}).values() for name in table]


@dataclass(frozen=True)
class StudyResults:
    """Every table of a study's finished runs, tagged with run id, settings and seed.

    rounds, agents, awards, offers, structure, suppliers, regret: the per-run tables
    (docs/results.md) concatenated; runs: the KPIs of each run; summary: mean and 95 % CI
    over seeds; paired: each design minus the reference design on common seeds.
    """

    out: Path
    manifest: dict
    rounds: pd.DataFrame
    agents: pd.DataFrame
    awards: pd.DataFrame
    offers: pd.DataFrame
    structure: pd.DataFrame
    suppliers: pd.DataFrame
    regret: pd.DataFrame
    runs: pd.DataFrame
    summary: pd.DataFrame
    paired: pd.DataFrame
    network: store.NetworkData | None

    @property
    def study(self) -> dict:
        """The study spec as run (manifest's `study`)."""
        return self.manifest["study"]

    @property
    def swept(self) -> list[str]:
        """Names of the swept fields, each a column of every frame."""
        return swept_fields(self.study)

    @property
    def reference(self) -> str:
        """The design the paired differences are taken to."""
        return reference_design(self.study)

    @property
    def tables(self) -> dict[str, pd.DataFrame]:
        """The per-run tables by name."""
        return {name: getattr(self, name) for name in store.TABLES}


def finished_runs(out: Path, manifest: dict) -> list[str]:
    """Current runs whose folder holds complete results of the fingerprint expected.

    A folder damaged since (a table missing or truncated) is left out, not read.
    """
    runs = manifest.get("runs", {})
    return [r for r in manifest.get("current_runs", [])
            if runs.get(r, {}).get("status") == "finished"
            and store.is_finished(out, r, runs[r].get("fingerprint", ""))]


def failed_runs(manifest: dict) -> dict[str, dict]:
    """Current runs that failed, with their manifest entry (error, traceback)."""
    runs = manifest.get("runs", {})
    return {r: runs[r] for r in manifest.get("current_runs", [])
            if runs.get(r, {}).get("status") == "failed"}


def load_results(out: str | Path) -> StudyResults:
    """Load a study output folder (written by `lfm-abm run`) as tidy pandas frames."""
    out = Path(out)
    manifest = store.read_manifest(out)
    if not manifest:
        raise InputError("no manifest.json: not a study output folder", source=str(out),
                         field="DIR")
    run_ids = finished_runs(out, manifest)
    if not run_ids:
        raise InputError("no finished runs", source=str(out), field="runs")
    tables = store.load_tables(out, run_ids)
    study = manifest["study"]
    tags = ["run_id", *GROUP, "seed", *swept_fields(study)]
    by_run = {name: dict(tuple(frame.groupby("run_id"))) if len(frame) else {}
              for name, frame in tables.items()}
    grid = ActionGrid.from_dict(study["actions"], f"{out}/manifest.json: study")
    rows = []
    for run_id in run_ids:
        mine = {name: parts.get(run_id, pd.DataFrame()) for name, parts in by_run.items()}
        rows.append({**mine["rounds"].iloc[0][tags].to_dict(),
                     **run_kpis(mine, study["window"], grid)})
    runs = reference_kpis(pd.DataFrame(rows))
    summary = summarise(runs)
    return StudyResults(out, manifest, **tables, runs=runs, summary=summary,
                        paired=paired(runs, reference_design(study)),
                        network=store.read_network(out))
