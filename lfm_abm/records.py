"""A run's records on flat memory: bounded buffers flushed to Parquet while the run goes.

A long run (100,000 rounds) must not keep every record: rows are buffered per table and,
once `max_rows` rows are buffered, written out at the end of the round as one part file
per table (whole rounds per part). `close` merges each table's parts into
`<folder>/<table>.parquet`, one row group per part, reading one part at a time.

Parts rather than one ParquetWriter opened on the first chunk's schema: a chunk's column
types are not known in advance (a column all-None in one chunk, a failed round's record
holding only round, day and status, an integer column with a missing value), so the
file's schema is the union of the parts' schemas, promoted as pandas would type the whole
table (int with a missing value -> float, null -> the other chunks' type, absent -> null).

Without a folder nothing is written: the tables are built in memory when asked for, as
for a short run in a notebook.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from lfm_abm.files import atomic_file

#: The tables of a run's records, in order (streamed: rounds, agents, awards, regret).
TABLES = ("rounds", "agents", "awards", "offers", "structure", "suppliers", "regret")
#: Buffered rows (all tables) that trigger a flush: ~15 MB of records as Python dicts.
MAX_ROWS = 10_000
PARTS = ".parts"


def _arrow(frame: pd.DataFrame) -> pa.Table:
    """A frame as an Arrow table without pandas metadata (parts may differ in dtype)."""
    return pa.Table.from_pandas(frame, preserve_index=False).replace_schema_metadata(None)


def tagged(frame: pd.DataFrame, tags: Mapping[str, object]) -> pd.DataFrame:
    """`frame` with the run's tags as constant columns (almost free in Parquet).

    So that a file describes itself: a query over many runs' files needs no folder
    names. A tag named like one of the table's columns would hide it: refused.
    """
    clash = sorted(set(tags) & set(frame.columns))
    if clash:
        raise ValueError(f"run tags {clash} are also columns of the table")
    return frame.assign(**tags) if tags else frame


def _conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """`table` with `schema`'s columns in its order: missing ones null, others cast."""
    columns = [table.column(f.name).cast(f.type) if f.name in table.column_names
               else pa.nulls(len(table), f.type) for f in schema]
    return pa.Table.from_arrays(columns, schema=schema)


class RecordSink:
    """Per-table record buffers of one run, streamed to `folder` (or kept, without one).

    Tables take rows (dicts, `add_rows`), frames (`add_frame`) or columns (arrays of
    equal length, `add_columns`: a frame is built per flush, not per round); `end_round`
    marks a round boundary, where a full buffer is flushed. `frames` gives every table
    so far (read back from the parts when streaming); `close` writes the final files.
    """

    def __init__(self, folder: str | Path | None = None, max_rows: int = MAX_ROWS,
                 tags: Mapping[str, object] | None = None) -> None:
        self.folder = None if folder is None else Path(folder)
        self.tags = dict(tags or {})  # constant columns of every file written (`tagged`)
        self.max_rows = max_rows
        self._rows: dict[str, list[dict]] = {}
        self._frames: dict[str, list[pd.DataFrame]] = {}
        self._columns: dict[str, list[Mapping[str, np.ndarray]]] = {}
        self._buffered = 0
        self._parts: dict[str, list[Path]] = {}
        self._written: dict[str, Path] = {}  # by `close`

    def add_rows(self, table: str, rows: list[dict]) -> None:
        """Append records (one dict per row) to `table`."""
        self._rows.setdefault(table, []).extend(rows)
        self._buffered += len(rows)

    def add_frame(self, table: str, frame: pd.DataFrame) -> None:
        """Append a frame of rows to `table`."""
        self._frames.setdefault(table, []).append(frame)
        self._buffered += len(frame)

    def add_columns(self, table: str, columns: Mapping[str, np.ndarray]) -> None:
        """Append rows given column by column (the same columns every time) to `table`."""
        parts = self._columns.setdefault(table, [])
        if parts and list(columns) != list(parts[0]):
            raise ValueError(f"{table}: columns {list(columns)} differ from {list(parts[0])}")
        parts.append(columns)
        self._buffered += len(next(iter(columns.values()), ()))

    def end_round(self) -> None:
        """A round is complete: flush if streaming and the buffers are full."""
        if self.folder is not None and self._buffered >= self.max_rows:
            self.flush()

    def _buffered_frames(self) -> dict[str, pd.DataFrame]:
        frames = {name: pd.DataFrame(rows) for name, rows in self._rows.items()}
        frames.update({name: pd.concat(parts, ignore_index=True)
                       for name, parts in self._frames.items()})
        frames.update({name: pd.DataFrame({column: np.concatenate([p[column] for p in parts])
                                           for column in parts[0]})
                       for name, parts in self._columns.items()})
        return frames

    def flush(self) -> None:
        """Write the buffered rows of every table as one part file each."""
        if self.folder is None:
            return
        parts = self.folder / PARTS
        parts.mkdir(parents=True, exist_ok=True)
        for name, frame in self._buffered_frames().items():
            paths = self._parts.setdefault(name, [])
            path = parts / f"{name}-{len(paths):06d}.parquet"
            pq.write_table(_arrow(tagged(frame, self.tags)), path)
            paths.append(path)
        self._rows, self._frames, self._columns, self._buffered = {}, {}, {}, 0

    def _schema(self, name: str) -> pa.Schema:
        return pa.unify_schemas([pq.read_schema(p) for p in self._parts[name]],
                                promote_options="permissive")

    def frames(self) -> dict[str, pd.DataFrame]:
        """Every table that received rows, whole (read back from disk when streaming).

        The records only: the run's tags, constant columns of its files, are left out.
        """
        if self.folder is None:
            return self._buffered_frames()
        self.flush()
        out = {name: pd.read_parquet(path) for name, path in self._written.items()}
        for name, paths in self._parts.items():
            schema = self._schema(name)
            out[name] = pa.concat_tables(
                [_conform(pq.read_table(p), schema) for p in paths]).to_pandas()
        return {name: frame.drop(columns=list(self.tags)) for name, frame in out.items()}

    def close(self) -> dict[str, Path]:
        """Merge each table's parts into `<folder>/<table>.parquet`; returns the files.

        The end of the run: rows added afterwards would replace a table's file.
        """
        if self.folder is None:
            raise ValueError("records kept in memory have no files: give the sink a folder")
        self.flush()
        for name, paths in self._parts.items():
            schema = self._schema(name)
            target = self.folder / f"{name}.parquet"
            with atomic_file(target) as tmp, pq.ParquetWriter(tmp, schema) as writer:
                for path in paths:  # one part in memory at a time
                    writer.write_table(_conform(pq.read_table(path), schema))
            self._written[name] = target
        shutil.rmtree(self.folder / PARTS, ignore_errors=True)
        self._parts = {}
        return dict(self._written)


def write_frames(folder: Path, frames: Mapping[str, pd.DataFrame],
                 tags: Mapping[str, object] | None = None) -> dict[str, Path]:
    """Write whole tables into `folder` as `<name>.parquet` (with `tags` as columns)."""
    written = {}
    for name, frame in frames.items():
        with atomic_file(folder / f"{name}.parquet") as tmp:
            tagged(frame, tags or {}).to_parquet(tmp, index=False)
        written[name] = folder / f"{name}.parquet"
    return written
