"""Study results on disk: one folder per finished run, written atomically, and a manifest.

Layout of an output folder:

    manifest.json              spec, versions, seeds, per-run status and timings
    runs/<run_id>/run.json     the run's settings, seed, fingerprint and timings
    runs/<run_id>/*.parquet    rounds, agents, awards, structure, suppliers, regret
    summary.csv, plots/, report.md

A run folder is first written under a temporary name and then renamed, so a folder
named after a run is always complete; an interrupted study leaves at most a temporary
folder, which the next run removes. A finished run is recognised by its fingerprint
(a hash of everything that determines its results), so changing the spec recomputes
exactly the runs it affects and never reuses stale results.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

import pandas as pd

TABLES = ("rounds", "agents", "awards", "offers", "structure", "suppliers", "regret")
RUNS = "runs"
MANIFEST = "manifest.json"


def write_json_atomic(path: Path, data: object) -> None:
    """Write JSON via a temporary file and an atomic rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(handle, "w") as stream:
        json.dump(data, stream, indent=2, default=str)
        stream.flush()
        os.fsync(stream.fileno())  # on disk before it replaces the old file
    os.replace(tmp, path)


def write_run(out: Path, run_id: str, tables: dict[str, pd.DataFrame], meta: dict) -> Path:
    """Write a finished run's tables and metadata as one atomic folder."""
    runs = out / RUNS
    runs.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=runs, prefix=f".tmp-{run_id}-"))
    for name in TABLES:
        frame = tables.get(name, pd.DataFrame())
        frame.to_parquet(tmp / f"{name}.parquet", index=False)
        with open(tmp / f"{name}.parquet", "rb") as stream:
            os.fsync(stream.fileno())
    write_json_atomic(tmp / "run.json", meta)
    final = runs / run_id
    if final.exists():  # a stale run with another fingerprint
        shutil.rmtree(final)
    os.replace(tmp, final)
    return final


def clean_partial(out: Path) -> int:
    """Remove temporary folders left by an interrupted study; returns how many."""
    runs = out / RUNS
    if not runs.is_dir():
        return 0
    partial = [p for p in runs.iterdir() if p.name.startswith(".tmp-")]
    for path in partial:
        shutil.rmtree(path, ignore_errors=True)
    return len(partial)


def run_meta(out: Path, run_id: str) -> dict | None:
    """The metadata of a finished run, or None if it is not there."""
    path = out / RUNS / run_id / "run.json"
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        return None


def is_finished(out: Path, run_id: str, fingerprint: str) -> bool:
    """True if the run's folder holds results for exactly this fingerprint."""
    meta = run_meta(out, run_id)
    return meta is not None and meta.get("fingerprint") == fingerprint


def load_tables(out: Path, run_ids: Iterable[str]) -> dict[str, pd.DataFrame]:
    """Concatenate every table over the given runs, tagged with run id and settings.

    The tags are the run's design, pricing, learner, variant label, seed and one column
    per swept field (e.g. `voll`; a list value as text; a field named like one of the
    table's own columns, such as `hours`, keeps the column and is read from `variant`),
    so a table is ready to group without a join.
    """
    frames: dict[str, list[pd.DataFrame]] = {name: [] for name in TABLES}
    for run_id in run_ids:
        meta = run_meta(out, run_id)
        if meta is None:
            continue
        tags = {"run_id": run_id, "design": meta["design"], "pricing": meta["pricing"],
                "learner": meta["learner"], "variant": meta.get("variant", ""),
                "seed": meta["seed"]}
        swept = {key: value if isinstance(value, int | float | str) else str(value)
                 for key, value in meta.get("swept", {}).items()}
        for name in TABLES:
            path = out / RUNS / run_id / f"{name}.parquet"
            if path.is_file():  # results written before a table existed lack it
                frame = pd.read_parquet(path)
                frames[name].append(frame.assign(**tags, **{
                    key: value for key, value in swept.items() if key not in frame}))
    return {name: pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
            for name, parts in frames.items()}


class NetworkData(NamedTuple):
    """What the plots need of the grid, saved with the study so they need no grid loading.

    buses: bus, name, x, y (NaN without coordinates); lines: from_bus, to_bus;
    needs: the first market day's baseline needs (need_id, period, service, element,
    element_id, from_bus, to_bus, need, unit; a bus need has from_bus = to_bus);
    relief: per need, bus and product the need's relief per MW or MVAr (> 0 only).
    """

    buses: pd.DataFrame
    lines: pd.DataFrame
    needs: pd.DataFrame
    relief: pd.DataFrame

    @property
    def has_coordinates(self) -> bool:
        """True if every bus has coordinates (the awards map can be drawn)."""
        return bool(len(self.buses)) and not self.buses[["x", "y"]].isna().any().any()


NETWORK_FILES = ("buses", "lines", "needs", "relief")


def write_network(out: Path, network: NetworkData) -> None:
    """Save the study's network data under `network/` (one Parquet file per frame)."""
    folder = out / "network"
    folder.mkdir(parents=True, exist_ok=True)
    for name in NETWORK_FILES:
        handle, tmp = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".tmp")
        os.close(handle)
        getattr(network, name).to_parquet(tmp, index=False)
        os.replace(tmp, folder / f"{name}.parquet")


def read_network(out: Path) -> NetworkData | None:
    """The network data saved with the study (None for a study written before it)."""
    folder = out / "network"
    if not all((folder / f"{name}.parquet").is_file() for name in NETWORK_FILES):
        return None
    return NetworkData(*(pd.read_parquet(folder / f"{name}.parquet") for name in NETWORK_FILES))


def read_manifest(out: Path) -> dict:
    """The study's manifest (empty dict if none yet)."""
    path = out / MANIFEST
    if not path.is_file():
        return {}
    return json.loads(path.read_text())
