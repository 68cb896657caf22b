"""A study's run tables queried where they are stored, so summaries run on flat memory.

A thousand runs, or one run of 100,000 rounds, hold far more records than a summary
needs: the KPIs use each run's last rounds, the figures means per round (or per bin of
rounds) and quantiles. `StudyTables` therefore exposes the tables as DuckDB views over
the runs' Parquet files (`on_disk`) and lets the database aggregate them, spilling to
disk beyond `MEMORY_LIMIT`; only results come back as pandas frames. The same views over
frames in memory (`in_memory`) serve tests and notebooks with the same queries.

Each view `<table>` has the table's own columns plus the run's tags from the view
`runs` (one row per run: run_id, design, pricing, learner, variant, seed, the swept
fields, and what a caller adds, e.g. a figure's market label): the tags are joined at
query time from the runs' run.json (the files carry the same tags as columns, for
readers without lfm-abm; older files do not, and here they are not read). Only runs
listed in `runs` are seen, so narrowing `runs` (`set_runs`) narrows every table.
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from lfm_abm.learning.convergence import (
    BLOCK,
    KEYS,
    BlockCounts,
    block_counts,
    check_actions,
)
from lfm_abm.records import TABLES

#: DuckDB's memory for one summary; beyond it, sorts and aggregations spill to disk.
MEMORY_LIMIT = "256MB"
#: Points per curve at most: longer runs are averaged over bins of consecutive rounds.
MAX_POINTS = 2000


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


@dataclass(frozen=True)
class RunRecords:
    """What one run's KPIs are computed from, without its whole tables.

    rounds: the rounds of the KPI window (at least; a whole run's table also does);
    n_rounds: the run's last round; failed_rounds: how many did not clear; agents: the
    rows of the window's rounds with `believed` (the greedy action recorded the round
    before); blocks: the learners' action counts per block (`convergence.BlockCounts`);
    structure, suppliers; regret: the rows of the last round it was measured in.
    """

    rounds: pd.DataFrame
    n_rounds: float
    failed_rounds: float
    agents: pd.DataFrame
    blocks: BlockCounts
    structure: pd.DataFrame
    suppliers: pd.DataFrame
    regret: pd.DataFrame

    @classmethod
    def of_frames(cls, tables: Mapping[str, pd.DataFrame], n_actions: int) -> RunRecords:
        """From one run's whole tables (a short run in memory): agents whole, no `believed`."""
        rounds, agents = tables["rounds"], tables["agents"]
        failed = float((rounds.status != "ok").sum()) if "status" in rounds else 0.0
        return cls(rounds, float(rounds["round"].max()) if len(rounds) else 0.0, failed,
                   agents, block_counts(agents, n_actions),
                   tables["structure"], tables["suppliers"], tables["regret"])


class StudyTables:
    """The per-run tables of a study as DuckDB views, tagged with each run's settings."""

    def __init__(self, sources: Mapping[str, str], columns: Mapping[str, list[str]],
                 connection: duckdb.DuckDBPyConnection, tags: pd.DataFrame,
                 out: Path | None = None) -> None:
        self._sources = dict(sources)  # table -> SQL of its raw rows (with run_id)
        self._columns = dict(columns)  # table -> its own columns
        self._db = connection
        # Closed when this object goes, and at the latest at exit: a connection left to
        # interpreter shutdown can abort the process ("terminate called"), exit code 134.
        weakref.finalize(self, connection.close)
        self._out = out  # where each run's files are (None: frames in memory)
        self.set_runs(tags)

    @staticmethod
    def _connect() -> duckdb.DuckDBPyConnection:
        connection = duckdb.connect()
        connection.execute(f"SET memory_limit = '{MEMORY_LIMIT}'")
        connection.execute("SET preserve_insertion_order = false")
        return connection

    @classmethod
    def on_disk(cls, out: Path, tags: pd.DataFrame) -> StudyTables:
        """Views over `out/runs/<run_id>/<table>.parquet` of the runs in `tags`."""
        connection = cls._connect()
        sources, columns = {}, {}
        for name in TABLES:
            files = [str(out / "runs" / run / f"{name}.parquet") for run in tags.run_id]
            files = [f for f in files if Path(f).is_file()]
            if not files:
                continue
            listed = ", ".join(_literal(f) for f in files)
            scan = (f"read_parquet([{listed}], union_by_name = true, filename = true, "
                    f"file_row_number = true)")
            stored = [row[0] for row in connection.execute(f"DESCRIBE SELECT * FROM {scan}")
                      .fetchall()]
            # Files carry their run's tags as columns (older ones do not): the tags come
            # from the `runs` view either way, the run id from the run's folder.
            dropped = ["filename", *(c for c in stored if c in set(tags.columns) | {"run_id"})]
            sources[name] = (
                f"SELECT * EXCLUDE ({', '.join(map(_quoted, dropped))}), "
                f"regexp_extract(filename, '([^/\\\\]+)[/\\\\][^/\\\\]+$', 1) AS run_id "
                f"FROM {scan}")
            columns[name] = [c for c in stored if c not in {*dropped, "file_row_number"}]
        return cls(sources, columns, connection, tags, out)

    @classmethod
    def in_memory(cls, tables: Mapping[str, pd.DataFrame], tags: pd.DataFrame
                  ) -> StudyTables:
        """The same views over frames, each with a run_id column (a tag it has is kept)."""
        connection = cls._connect()
        sources, columns = {}, {}
        for name, frame in tables.items():
            if frame is None or "run_id" not in frame:
                continue
            connection.register(f"raw_{name}",
                                frame.assign(file_row_number=np.arange(len(frame))))
            sources[name] = f"SELECT * FROM raw_{name}"
            columns[name] = [c for c in frame.columns if c != "run_id"]
        return cls(sources, columns, connection, tags)

    def set_runs(self, tags: pd.DataFrame) -> None:
        """The runs seen (one row per run_id) and their tags; every view follows."""
        self.tags = tags.reset_index(drop=True).assign(run_order=np.arange(len(tags)))
        self._db.register("runs", self.tags)
        for name, source in self._sources.items():
            extra = [c for c in self.tags.columns if c not in self._columns[name]]
            picked = ", ".join(f"t.{_quoted(c)}" for c in [*self._columns[name],
                                                           "file_row_number"])
            tagged = ", ".join(f"r.{_quoted(c)}" for c in extra)
            self._db.execute(f"CREATE OR REPLACE VIEW {name} AS SELECT {picked}, {tagged} "
                             f"FROM ({source}) AS t JOIN runs AS r USING (run_id)")

    def has(self, *names: str) -> bool:
        """True if every named table exists and has rows for the runs seen."""
        return all(name in self._sources and self.query(
            f"SELECT count(*) AS n FROM (SELECT 1 FROM {name} LIMIT 1)").n.iloc[0] > 0
            for name in names)

    def columns(self, name: str) -> list[str]:
        """The table's own columns (tags aside); empty if the study has no such table."""
        return list(self._columns.get(name, []))

    def query(self, sql: str, parameters: Sequence | None = None) -> pd.DataFrame:
        """Run SQL over the views (rounds, agents, ..., runs); the result as a frame."""
        return self._db.execute(sql, parameters or []).df()

    def frame(self, name: str) -> pd.DataFrame:
        """A whole table of every run seen, tagged, in run order: for small studies.

        Tags are the runs' settings (not a figure's added columns); a swept field named
        like one of the table's own columns keeps the column.
        """
        if name not in self._sources:
            return pd.DataFrame()
        tags = [c for c in self.tags.columns if c != "run_order"]
        shown = [*self._columns[name], *(c for c in tags if c not in self._columns[name])]
        return self.query(f"SELECT {', '.join(map(_quoted, shown))} FROM {name} "
                          f"ORDER BY run_order, file_row_number")

    # --- one run's KPI inputs ------------------------------------------------------

    def _of_run(self, name: str, run_id: str) -> str | None:
        """SQL of one run's rows of a table: its own file only, not a scan of all runs."""
        if name not in self._sources:
            return None
        if self._out is None:
            return f"(SELECT * FROM raw_{name} WHERE run_id = {_literal(run_id)})"
        path = self._out / "runs" / run_id / f"{name}.parquet"
        if not path.is_file():
            return None
        scan = f"read_parquet({_literal(str(path))})"
        stored = [row[0] for row in self._db.execute(f"DESCRIBE SELECT * FROM {scan}").fetchall()]
        tags = [c for c in stored if c not in self._columns[name]]  # the file's tag columns
        dropped = f" EXCLUDE ({', '.join(map(_quoted, tags))})" if tags else ""
        return f"(SELECT *{dropped} FROM {scan})"

    def _run_frame(self, name: str, run_id: str, sql: str = "SELECT * FROM t") -> pd.DataFrame:
        """`sql` over one run's rows of a table, named t (more CTEs may follow: ', x AS')."""
        source = self._of_run(name, run_id)
        if source is None:
            return pd.DataFrame()
        frame = self.query(f"WITH t AS {source} {sql}")
        return frame.drop(columns=["run_id", "file_row_number"], errors="ignore")

    def run_records(self, run_id: str, window: int, n_actions: int,
                    block: int = BLOCK) -> RunRecords:
        """One run's KPI inputs, aggregated where stored: memory independent of rounds."""
        ok = "status = 'ok'" if "status" in self.columns("rounds") else "true"
        span = self._run_frame("rounds", run_id, f"""
            SELECT coalesce(max(round), 0) AS last, max(round) FILTER (WHERE {ok}) AS last_ok,
                   count(*) FILTER (WHERE NOT {ok}) AS failed FROM t""")
        last_ok = span.last_ok.iloc[0] if len(span) else None
        first = float(last_ok) - window if pd.notna(last_ok) else 0.0
        rounds = self._run_frame("rounds", run_id,
                                 f"SELECT * FROM t WHERE round > {first} ORDER BY round")
        keys = ", ".join(KEYS)
        # believed: the greedy action of the learner's row before; for its first row in
        # the window, that of its last row before the window (aggregated, not windowed:
        # a window function over a long run's whole table would hold it in memory)
        agents = self._run_frame("agents", run_id, f"""
            , before AS (SELECT {keys}, arg_max(greedy, round) AS last_greedy FROM t
                         WHERE round <= {first} GROUP BY {keys})
            SELECT w.*, coalesce(lag(w.greedy) OVER (PARTITION BY {keys} ORDER BY round),
                                 before.last_greedy) AS believed
            FROM (SELECT * FROM t WHERE round > {first}) AS w LEFT JOIN before USING ({keys})
            ORDER BY round, {keys}""")
        regret = self._run_frame("regret", run_id, """
            SELECT * FROM t WHERE round = (SELECT max(round) FROM t)""")
        return RunRecords(rounds, float(span["last"].iloc[0]) if len(span) else 0.0,
                          float(span.failed.iloc[0]) if len(span) else 0.0, agents,
                          self._block_counts(run_id, n_actions, block),
                          self._run_frame("structure", run_id),
                          self._run_frame("suppliers", run_id), regret)

    def _block_counts(self, run_id: str, n_actions: int, block: int) -> BlockCounts:
        """`convergence.block_counts` of the run's agents table, counted by DuckDB."""
        keys = ", ".join(KEYS)
        counts = self._run_frame("agents", run_id, f"""
            , numbered AS (SELECT round, (row_number() OVER (ORDER BY round) - 1) // {block}
                                  AS block FROM (SELECT DISTINCT round FROM t)),
            learners AS (SELECT {keys}, row_number() OVER (ORDER BY {keys}) - 1 AS learner
                         FROM (SELECT DISTINCT {keys} FROM t))
            SELECT block, learner, action, count(*) AS n, bool_or(profit > 0) AS earns,
                   min(round) AS first_round,
                   (SELECT count(*) FROM numbered) AS n_rounds,
                   (SELECT count(*) FROM learners) AS n_learners
            FROM t JOIN numbered USING (round) JOIN learners USING ({keys})
            GROUP BY block, learner, action""")
        if counts.empty:
            return BlockCounts.empty(n_actions)
        check_actions(int(counts.action.max()), n_actions)
        n_rounds, n_learners = int(counts.n_rounds.iloc[0]), int(counts.n_learners.iloc[0])
        n_blocks = n_rounds // block
        full = counts[counts.block < n_blocks]
        array = np.zeros((n_blocks, n_learners, n_actions))
        array[full.block, full.learner, full.action] = full.n
        earns = np.zeros((n_blocks, n_learners), dtype=bool)
        np.logical_or.at(earns, (full.block.to_numpy(), full.learner.to_numpy()),
                         full.earns.to_numpy(dtype=bool))
        first_rounds = full.groupby("block").first_round.min().sort_index().to_numpy()
        return BlockCounts(first_rounds, array, earns, n_rounds, bool(counts.earns.any()))
