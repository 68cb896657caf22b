"""Study results on disk: one folder per finished run, written atomically, and a manifest.

Layout of an output folder:

    manifest.json              spec, versions, seeds, per-run status and timings
    runs/<run_id>/run.json     the run's settings, seed, fingerprint, timings, files' hashes
    runs/<run_id>/*.parquet    rounds, agents, awards, structure, suppliers, regret
    summary.csv, plots/, report.md

A run folder is written (by the worker, while the run goes) under a temporary name and
renamed when complete, so a folder named after a run is never half-written; an
interrupted study leaves at most temporary folders and files, which the next run
removes. A finished run is recognised by its fingerprint (a hash of everything that
determines its results) and by its files matching the sizes and hashes in its run.json,
so changing the spec recomputes exactly the runs it affects, never reuses stale results
and recomputes a run whose files were damaged. Every file is written atomically
(`lfm_abm.files`).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

import pandas as pd

from lfm_abm.files import DIR_MODE, TMP_PREFIX, remove_leftovers, write_json_atomic
from lfm_abm.records import TABLES, write_frames

RUNS = "runs"
RUN_JSON = "run.json"
MANIFEST = "manifest.json"


@contextmanager
def writing_run(out: Path, run_id: str) -> Iterator[Path]:
    """A temporary folder to write a run into; removed unless `publish_run` renamed it."""
    runs = out / RUNS
    runs.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=runs, prefix=f"{TMP_PREFIX}{run_id}-"))
    try:
        tmp.chmod(DIR_MODE)
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _file_record(path: Path) -> dict:
    with open(path, "rb") as stream:
        digest = hashlib.file_digest(stream, "sha256").hexdigest()
    return {"size": path.stat().st_size, "sha256": digest}


def publish_run(out: Path, run_id: str, folder: Path, meta: dict) -> Path:
    """Seal a fully written run folder: list its files in run.json, rename it in place.

    run.json records each file's size and sha256, so that `is_finished` can tell a
    complete run from one whose files were cut short or lost after the fact.
    """
    files = {path.name: _file_record(path) for path in sorted(folder.iterdir())
             if path.is_file()}
    write_json_atomic(folder / RUN_JSON, {**meta, "files": files})
    final = out / RUNS / run_id
    if final.exists():  # a stale run with another fingerprint, or a damaged one
        shutil.rmtree(final)
    os.replace(folder, final)
    return final


def install_run(out: Path, run_id: str, files: Mapping[str, bytes], meta: dict) -> Path:
    """Publish a run computed elsewhere (a Dask worker without shared disk) from its files."""
    with writing_run(out, run_id) as folder:
        for name, data in files.items():
            (folder / name).write_bytes(data)
        return publish_run(out, run_id, folder, meta)


def clean_partial(out: Path) -> int:
    """Remove what an interrupted study left: temporary run folders and files.

    Only while holding the folder's lock: another study's run in progress looks the same.
    Returns how many were removed.
    """
    runs = out / RUNS
    partial = [p for p in runs.iterdir() if p.name.startswith(TMP_PREFIX)] \
        if runs.is_dir() else []
    for path in partial:
        shutil.rmtree(path, ignore_errors=True)
    return len(partial) + sum(remove_leftovers(folder)
                              for folder in (out, out / "network", out / "plots"))


def run_meta(out: Path, run_id: str) -> dict | None:
    """The metadata of a finished run, or None if it is not there."""
    path = out / RUNS / run_id / RUN_JSON
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        return None


def is_finished(out: Path, run_id: str, fingerprint: str) -> bool:
    """True if the run's folder holds complete results for exactly this fingerprint.

    Complete: every table is there with the size and sha256 run.json recorded (a run
    written before files were recorded counts as unfinished and is recomputed).
    """
    meta = run_meta(out, run_id)
    if meta is None or meta.get("fingerprint") != fingerprint:
        return False
    files = meta.get("files", {})
    if not {f"{name}.parquet" for name in TABLES} <= set(files):
        return False
    folder = out / RUNS / run_id
    return all((folder / name).is_file() and _file_record(folder / name) == record
               for name, record in files.items())


def run_tags(out: Path, run_ids: Iterable[str]) -> pd.DataFrame:
    """One row per run: run id, design, pricing, learner, variant, seed, swept fields.

    What every table of the run is tagged with when read (`results.lazy`), the same
    values its files carry as columns (older files hold records only). A swept field's
    list value is shown as text.
    """
    metas = ((run_id, run_meta(out, run_id)) for run_id in run_ids)
    return pd.DataFrame([tags_of({**meta, "run_id": run_id})
                         for run_id, meta in metas if meta is not None])


def tags_of(meta: Mapping[str, object]) -> dict[str, object]:
    """A run's tags from its metadata (run.json): also the constant columns of its files."""
    swept = {key: value if isinstance(value, int | float | str) else str(value)
             for key, value in dict(meta.get("swept") or {}).items()}
    drawn = {"population": meta["population"]} if meta.get("population") else {}
    return {"run_id": meta["run_id"], "design": meta["design"], "pricing": meta["pricing"],
            "learner": meta["learner"], "variant": meta.get("variant", ""),
            "seed": meta["seed"], **drawn, **swept}


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
    write_frames(folder, {name: getattr(network, name) for name in NETWORK_FILES})


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


def write_manifest(out: Path, manifest: dict) -> None:
    """Write the study's manifest atomically."""
    write_json_atomic(out / MANIFEST, manifest)
