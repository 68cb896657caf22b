"""The speed-target measurements: what they run and report (not how fast: see bench)."""

from __future__ import annotations

import tomllib

from lfm_abm.speed_targets import (
    LONG_STUDY,
    horizon_run,
    long_run_ac_every,
    rss_mb,
    sequential_designs,
)


def test_the_sequential_targets_are_the_main_studys_sequential_designs():
    assert sequential_designs() == ["CM_P>VC_Q"]


def test_the_long_run_target_is_timed_at_the_long_run_studys_validation_rate():
    assert long_run_ac_every() == tomllib.loads(LONG_STUDY.read_text())["study"]["ac_every"]
    assert long_run_ac_every() > 1  # the study validates a sample of its 100,000 rounds


def test_a_horizon_run_reports_rate_and_memory_at_each_checkpoint():
    lines = []
    run = horizon_run("cigre-mv", "q-learning", 12, ac_every=5, checkpoints=3,
                      report=lines.append)
    assert list(run["rounds"]) == [4, 8, 12] and len(lines) == 3
    assert (run.seconds.diff().dropna() > 0).all() and (run.rounds_per_s > 0).all()
    assert (run.rss_mb > 50).all()  # resident memory of a process holding pandapower
    assert rss_mb() > 0
