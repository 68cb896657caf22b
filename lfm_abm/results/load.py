"""A study's results in one call: tidy frames with every run's settings joined.

    results = lfm_abm.load_results("out/designs")
    results.runs.groupby("design").total_cost.mean()   # KPIs per run, one row per seed
    results.rounds.query("design == 'CMVC_PQ'")        # per-round records, tagged

Nothing is simulated: the frames come from the saved Parquet tables, and the KPIs are
recomputed from them with the same code as `summary.csv`.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from lfm_abm.errors import InputError
from lfm_abm.learning import ActionGrid
from lfm_abm.results import store as store_module
from lfm_abm.results.annual import (
    DAY_COLUMNS,
    annual_paired,
    annual_runs,
    annual_summary,
    chosen_days,
)
from lfm_abm.results.kpis import paired, reference_kpis, run_kpis, summarise
from lfm_abm.results.lazy import StudyTables


def reference_design(study: dict) -> str:
    """The design paired differences are taken to (the spec's `reference`, else the first)."""
    return study.get("reference", study["designs"][0])


def swept_fields(study: dict) -> list[str]:
    """Names of the study's swept fields, each a column of every result frame.

    A study with a [days] rule also varies `chosen_day`.
    """
    days = list(DAY_COLUMNS) if study.get("days") else []
    return days + [name for table in study.get("sweep", {}).values() for name in table]


class StudyResults:
    """A study's finished runs: KPIs per run, their summary, and the tables on demand.

    runs: the KPIs of each run; summary: mean and 95 % CI over seeds; paired: each design
    minus the reference design on common seeds. The per-run tables (docs/results.md)
    stay on disk: `store` queries them with SQL (DuckDB views `rounds`, `agents`, ...,
    tagged with run id and settings; memory bounded however many runs and rounds), and
    `rounds`, `agents`, `awards`, `offers`, `structure`, `suppliers`, `regret` read one
    whole table of every run into a frame, on first use (for a study that fits in memory).
    """

    def __init__(self, out: Path, manifest: dict, store: StudyTables, runs: pd.DataFrame,
                 summary: pd.DataFrame, paired: pd.DataFrame,
                 network: store_module.NetworkData | None) -> None:
        self.out, self.manifest, self.store = out, manifest, store
        self.runs, self.summary, self.paired, self.network = runs, summary, paired, network
        #: A [days] study's year per seed, its mean and CI, and the paired years
        #: (`results.annual`; empty frames without [days]).
        self.annual_runs = annual_runs(runs, chosen_days(self.study))
        self.annual = annual_summary(self.annual_runs)
        self.annual_paired = (annual_paired(self.annual_runs, reference_design(self.study))
                              if len(self.annual_runs) else pd.DataFrame())

    def __getattr__(self, name: str) -> pd.DataFrame:
        if name not in store_module.TABLES:
            raise AttributeError(name)
        frame = self.store.frame(name)
        setattr(self, name, frame)  # read once
        return frame

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

    def query(self, sql: str, parameters: list | None = None) -> pd.DataFrame:
        """SQL over the study's tables (views rounds, agents, ..., and runs); a frame."""
        return self.store.query(sql, parameters)


def finished_runs(out: Path, manifest: dict) -> list[str]:
    """Current runs whose folder holds complete results of the fingerprint expected.

    A folder damaged since (a table missing or truncated) is left out, not read.
    """
    runs = manifest.get("runs", {})
    return [r for r in manifest.get("current_runs", [])
            if runs.get(r, {}).get("status") == "finished"
            and store_module.is_finished(out, r, runs[r].get("fingerprint", ""))]


def failed_runs(manifest: dict) -> dict[str, dict]:
    """Current runs that failed, with their manifest entry (error, traceback)."""
    runs = manifest.get("runs", {})
    return {r: runs[r] for r in manifest.get("current_runs", [])
            if runs.get(r, {}).get("status") == "failed"}


def load_results(out: str | Path) -> StudyResults:
    """Load a study output folder (written by `lfm-abm run`): KPIs now, tables on demand.

    The KPIs are computed one run at a time from what DuckDB aggregates in its files,
    so memory does not grow with the number of runs or their length.
    """
    out = Path(out)
    manifest = store_module.read_manifest(out)
    if not manifest:
        raise InputError("no manifest.json: not a study output folder", source=str(out),
                         field="DIR")
    run_ids = finished_runs(out, manifest)
    if not run_ids:
        raise InputError("no finished runs", source=str(out), field="runs")
    tags = store_module.run_tags(out, run_ids)
    tables = StudyTables.on_disk(out, tags)
    study = manifest["study"]
    grid = ActionGrid.from_dict(study["actions"], f"{out}/manifest.json: study")
    rows = [{**tag, **run_kpis(tables.run_records(tag["run_id"], study["window"], len(grid)),
                               study["window"], grid)}
            for tag in tags.to_dict("records")]
    runs = reference_kpis(pd.DataFrame(rows))
    return StudyResults(out, manifest, tables, runs=runs, summary=summarise(runs),
                        paired=paired(runs, reference_design(study)),
                        network=store_module.read_network(out))
