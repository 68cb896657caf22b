"""The speed targets of long learning studies, each measured against a baseline.

`targets` prints one row per target: the engine's figure, the baseline's (the naive
engine on the same rounds, or, for start-up, the first run in a fresh process), their
ratio and whether the goal is met. `horizon_run` follows one long run: rounds/s and
resident memory at checkpoints, with its records streamed to disk as a study's run does.
"""

from __future__ import annotations

import functools
import resource
import tempfile
import time
import tomllib
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from lfm_abm.agents.defaults import ROOT, population_for
from lfm_abm.bench import Measured, engine_and_naive, naive_settings, timed_run
from lfm_abm.day import forget_days
from lfm_abm.model import LFMModel, ModelSettings

MAIN_STUDY = ROOT / "studies" / "designs.toml"
LONG_STUDY = ROOT / "studies" / "long_run.toml"
#: Rounds of one long learning run the target speaks of (Calvano et al. run 10^5-10^6).
LONG_RUN = 100_000


def rss_mb() -> float:
    """Resident memory of this process now (not its peak), MB."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except OSError:  # not Linux: the peak is the best there is
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return pages * resource.getpagesize() / 2**20


def horizon_run(grid: str, learner: str, rounds: int, ac_every: int, design: str = "CMVC_PQ",
                checkpoints: int = 10, seed: int = 0,
                report: Callable[[str], None] | None = None) -> pd.DataFrame:
    """`rounds` rounds of one run, records streamed to a temporary folder.

    Reports (and returns) at each checkpoint the rounds done, seconds so far, rounds/s
    since the last checkpoint and resident memory: a run whose memory grows with its
    length shows it here.
    """
    report = report or functools.partial(print, flush=True)  # progress, also when piped
    settings = ModelSettings(grid=grid, population=population_for(grid), design=design,
                             ac_every=ac_every, learner={"kind": learner})
    every = max(1, rounds // checkpoints)
    rows = []
    with tempfile.TemporaryDirectory(prefix="lfm-horizon-") as folder:
        model = LFMModel(settings, seed, spool=folder)
        start = last = time.perf_counter()
        for done in range(1, rounds + 1):
            model.step()
            if done % every == 0 or done == rounds:
                now = time.perf_counter()
                rows.append({"rounds": done, "seconds": now - start,
                             "rounds_per_s": (done - (rows[-1]["rounds"] if rows else 0))
                             / (now - last), "rss_mb": rss_mb()})
                report(f"  {done:>8d} rounds  {now - start:8.1f} s  "
                       f"{rows[-1]['rounds_per_s']:7.1f} rounds/s  {rows[-1]['rss_mb']:7.1f} MB")
                last = now
        model.save_records()
    return pd.DataFrame(rows)


def sequential_designs() -> list[str]:
    """The main study's sequential designs (stages separated by '>')."""
    designs = tomllib.loads(MAIN_STUDY.read_text())["study"]["designs"] \
        if MAIN_STUDY.is_file() else ["CM_P>VC_Q"]
    return [design for design in designs if ">" in design]


def long_run_ac_every() -> int:
    """How often the long-run study (`studies/long_run.toml`) AC-validates: its target's rate."""
    study = tomllib.loads(LONG_STUDY.read_text())["study"] if LONG_STUDY.is_file() else {}
    return int(study.get("ac_every", 1))


def start_up(grid: str, design: str = "CMVC_PQ") -> tuple[float, float]:
    """Seconds to a run's first cleared round: first run in the process, and the next.

    The caches of market days are emptied first, so the first run builds the grid's
    day, its offer book, pivotal test and AC batch as a fresh worker process would.
    """
    forget_days()
    population = population_for(grid)
    seconds = []
    for seed in (0, 1):
        start = time.perf_counter()
        model = LFMModel(ModelSettings(grid=grid, population=population, design=design), seed)
        model.step()
        seconds.append(time.perf_counter() - start)
    return seconds[0], seconds[1]


def targets(rounds: int, ac_every: int, horizon: int,
            report: Callable[[str], None] | None = None,
            semiurb_joint: tuple[Measured, Measured] | None = None) -> pd.DataFrame:
    """Every speed target with the engine's figure, the baseline's and the verdict.

    semiurb_joint: engine and naive runs of semiurb CMVC_PQ over `rounds` already timed
    (`bench.compare`), so they are not run a second time.
    """
    report = report or functools.partial(print, flush=True)
    rows = []

    def add(target: str, goal: str, engine: float, baseline: float, met: bool,
            lower_is_better: bool = False) -> None:
        """One row; ratio is how many times better the engine is than the baseline."""
        rows.append({"target": target, "goal": goal, "engine": engine, "baseline": baseline,
                     "ratio": baseline / engine if lower_is_better else engine / baseline,
                     "met": met})
        report(f"  {target}: {engine:.3g} (baseline {baseline:.3g})")

    grid = "simbench-semiurb"
    engine, naive = semiurb_joint or engine_and_naive(grid, "CMVC_PQ", rounds, ac_every)
    speedup = engine.rounds_per_second / naive.rounds_per_second
    add(f"{grid} CMVC_PQ, rounds/s", ">= 100, ratio >= 40", engine.rounds_per_second,
        naive.rounds_per_second, engine.rounds_per_second >= 100 and speedup >= 40)
    for design in sequential_designs():
        engine, naive = engine_and_naive(grid, design, rounds, ac_every,
                                         naive_rounds=max(3, rounds // 10))
        add(f"{grid} {design}, rounds/s", ">= 50", engine.rounds_per_second,
            naive.rounds_per_second, engine.rounds_per_second >= 50)
    cold, warm = start_up(grid)
    add(f"{grid} start-up of a later run, s (baseline: first run)", "<= 2", warm, cold,
        warm <= 2, lower_is_better=True)
    big = population_for(grid, fsps=1000)
    engine, naive = engine_and_naive(grid, "CMVC_PQ", max(5, rounds // 10), ac_every, big,
                                     naive_rounds=2)
    add(f"{grid} {len(big)} FSPs CMVC_PQ, rounds/s", ">= 10", engine.rounds_per_second,
        naive.rounds_per_second, engine.rounds_per_second >= 10)
    naive = timed_run(naive_settings(ModelSettings(
        grid="cigre-mv", population=population_for("cigre-mv"), design="CMVC_PQ",
        learner={"kind": "q-learning"})), max(20, rounds // 2))
    for every in sorted({long_run_ac_every(), ac_every}, reverse=True):
        run = horizon_run("cigre-mv", "q-learning", horizon, every, report=report)
        minutes = LONG_RUN / (horizon / run.seconds.iloc[-1]) / 60
        add(f"cigre-mv CMVC_PQ q-learning, AC every {every}, minutes per {LONG_RUN:,} "
            f"rounds (at the rate of {horizon:,})", "<= 10", minutes,
            LONG_RUN / naive.rounds_per_second / 60, minutes <= 10, lower_is_better=True)
    return pd.DataFrame(rows)
