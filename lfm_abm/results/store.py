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

import numpy as np
import pandas as pd

TABLES = ("rounds", "agents", "awards", "structure", "suppliers", "regret")
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
    """Concatenate every table over the given runs, tagged with run id and settings."""
    frames: dict[str, list[pd.DataFrame]] = {name: [] for name in TABLES}
    for run_id in run_ids:
        meta = run_meta(out, run_id)
        if meta is None:
            continue
        tags = {"run_id": run_id, "design": meta["design"], "pricing": meta["pricing"],
                "learner": meta["learner"], "variant": meta.get("variant", ""),
                "seed": meta["seed"]}
        for name in TABLES:
            path = out / RUNS / run_id / f"{name}.parquet"
            frame = pd.read_parquet(path)
            frames[name].append(frame.assign(**tags))
    return {name: pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
            for name, parts in frames.items()}


def write_network(out: Path, net) -> None:
    """Save bus coordinates and line ends, so the awards map needs no grid loading."""
    folder = out / "network"
    folder.mkdir(parents=True, exist_ok=True)
    coordinates = net.bus.geo.map(lambda text: json.loads(text)["coordinates"]
                                  if isinstance(text, str) else [np.nan, np.nan])
    buses = pd.DataFrame({"bus": net.bus.index, "x": [c[0] for c in coordinates],
                          "y": [c[1] for c in coordinates]})
    lines = pd.DataFrame({"from_bus": net.line.from_bus.to_numpy(),
                          "to_bus": net.line.to_bus.to_numpy()})
    buses.to_parquet(folder / "buses.parquet", index=False)
    lines.to_parquet(folder / "lines.parquet", index=False)


def read_network(out: Path) -> tuple[pd.DataFrame, pd.DataFrame] | None:
    """Bus coordinates and line ends saved with the study (None if the grid has none)."""
    folder = out / "network"
    if not (folder / "buses.parquet").is_file():
        return None
    buses = pd.read_parquet(folder / "buses.parquet")
    if buses[["x", "y"]].isna().all().any():
        return None
    return buses, pd.read_parquet(folder / "lines.parquet")


def read_manifest(out: Path) -> dict:
    """The study's manifest (empty dict if none yet)."""
    path = out / MANIFEST
    if not path.is_file():
        return {}
    return json.loads(path.read_text())
