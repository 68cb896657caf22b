"""Fuzz the command line: bad flags and bad files end in one clear line, nothing written.

Each case runs `lfm-abm` in-process with generated bad input: numbers of the wrong type
or out of range, NaN and infinities, missing, unreadable and unwritable paths, empty and
header-only files, duplicate ids, study and population files with one field spoiled.
Every case must exit 2 with at most 3 lines on stderr, no traceback, and leave the
folder it may write to exactly as it was. Cases are drawn from a fixed seed, so CI runs
the same ones every time.
"""

from __future__ import annotations

import io
import json
import math
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lfm_abm.cli import main

ROOT = Path(__file__).resolve().parents[1]
POPULATION = ROOT / "agents" / "cigre_mv.toml"
FUZZ = settings(max_examples=100, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

BAD_COUNTS = ["-3", "0", "1.5", "abc", "nan", "", "1" + "0" * 30]
BAD_ITERATIONS = ["-1", "1.5", "abc", "", "11", "1" + "0" * 30]  # 0 is a valid --relinearise
BAD_FLOATS = ["nan", "inf", "-inf", "-1", "abc", "", "1e999"]
BAD_OUT_FILES = ["/proc/lfm.csv", "/nodir/lfm.csv", "{tmp}/lfm.txt", "{tmp}"]
BAD_IN_FILES = ["{tmp}/missing.csv", "{tmp}", "/proc/self/mem.csv", "{tmp}/empty.csv",
                "{tmp}/header.csv", "{tmp}/garbage.csv", "{tmp}/garbage.json"]
BAD_GRIDS = ["nogrid", "{tmp}/missing.json", "{tmp}/garbage.json", "{tmp}/empty.json",
             "{tmp}/not_a_net.json", "{tmp}"]


def cases(**flags: list[str]) -> st.SearchStrategy[list[tuple[str, str]]]:
    """One to three (flag, bad value) pairs."""
    pairs = [(flag, value) for flag, values in flags.items() for value in values]
    return st.lists(st.sampled_from(pairs), min_size=1, max_size=3,
                    unique_by=lambda pair: pair[0])


COMMANDS = {
    "run": (["run", "{tmp}/study.toml"], cases(
        **{"--rounds": BAD_COUNTS, "--seeds": BAD_COUNTS, "--workers": BAD_COUNTS,
           "--window": BAD_COUNTS, "--out": ["/proc/lfm", "{tmp}/garbage.csv/out"]})),
    "needs": (["needs", "--grid", "cigre-mv"], cases(
        **{"--vmin": [*BAD_FLOATS, "2"], "--vmax": [*BAD_FLOATS, "0.4"],
           "--vc-tolerance": [*BAD_FLOATS, "0.2"], "--cm-margin": [*BAD_FLOATS, "0", "2"],
           "--grid": BAD_GRIDS, "--day": ["x", "2019-01-01", "2016-13-01", ""],
           "--out": BAD_OUT_FILES})),
    "days": (["days", "--grid", "simbench-semiurb"], cases(
        **{"--k": ["0", "-1", "1.5", "x", "400"], "--method": ["ward", ""],
           "--curtailment-price": BAD_FLOATS, "--grid": [*BAD_GRIDS, "cigre-mv"]})),
    "clear": (["clear", "--grid", "cigre-mv", "--design", "CMVC_PQ", "--bids",
               "{tmp}/bids.csv"], cases(
        **{"--relinearise": BAD_ITERATIONS, "--voll": [*BAD_FLOATS, "0"],
           "--reservation-price": [*BAD_FLOATS, "0"], "--design": ["XX", "", "CM_P>>VC_Q"],
           "--pricing": ["vickrey", ""], "--grid": BAD_GRIDS, "--bids": BAD_IN_FILES,
           "--devices": BAD_IN_FILES, "--out": BAD_OUT_FILES, "--pivotal": BAD_OUT_FILES})),
    "population": (["population", "--grid", "cigre-mv", "--out", "{tmp}/pop.toml"], cases(
        **{"--seed": ["-1", "1.5", "x"], "--pv-density": [*BAD_FLOATS, "2"],
           "--ev-fleets": ["-1", "1.5", "x"], "--aggregators": ["-1", "1.5"],
           "--need-bias": BAD_FLOATS, "--grid": BAD_GRIDS,
           "--out": ["/proc/pop.toml", "/nodir/pop.toml", "{tmp}"]})),
    "validate": (["validate", "--grid", "cigre-mv"], cases(
        **{"--relinearise": BAD_ITERATIONS, "--design": ["XX", ""],
           "--grid": BAD_GRIDS, "--day": ["x", "2019-01-01"]})),
    "bench": (["bench"], cases(
        **{"--rounds": BAD_COUNTS, "--ac-every": BAD_COUNTS, "--scale-rounds": BAD_COUNTS,
           "--horizon": BAD_COUNTS, "--target-horizon": BAD_COUNTS, "--learner": ["x", ""],
           "--grid": ["nogrid", "{tmp}/garbage.json"]})),
}


def toml_value(value: object) -> str:
    """A TOML literal (enough for the values the fuzz writes)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + " }"
    return json.dumps(value) if isinstance(value, str) else repr(value)


def study_text(tables: dict[str, dict]) -> str:
    return "\n".join(f"[{name}]\n" + "".join(f"{toml_value(k) if '.' in k else k} = "
                                             f"{toml_value(v)}\n" for k, v in table.items())
                     for name, table in tables.items())


def base_study(tmp: Path) -> dict[str, dict]:
    return {"study": {"grid": "cigre-mv", "population": str(POPULATION),
                      "designs": ["CMVC_PQ"], "rounds": 2, "seeds": 1, "window": 1,
                      "out": str(tmp / "out")}}


NAN, INF = math.nan, math.inf
#: (table, field, bad values): every value is outside what the field allows.
STUDY_SPOILERS = [
    ("study", "rounds", [0, -3, 1.5, "2", True, NAN, 10**12]),
    ("study", "seeds", [0, -1, 1.5, "a", [1, 1], [], [-1], True]),
    ("study", "window", [0, -1, 1.5, 99, "a"]),
    ("study", "ac_every", [0, -1, 1.5, "a"]),
    ("study", "regret", [1, "yes"]),
    ("study", "resample_days", [0, "no"]),
    ("study", "regret_every", [-1, 1.5]),
    ("study", "designs", [[], ["XX"], "CM_P", [1]]),
    ("study", "pricing", [[], ["vickrey"], "pay-as-bid"]),
    ("study", "grid", ["nogrid", 1, "/nonexistent.json"]),
    ("study", "population", ["nobody.toml", 1, "/proc"]),
    ("study", "reference", ["VC_P", 1]),
    ("study", "name", [1, True]),
    ("study", "out", [1, "/proc/lfm"]),
    ("study", "colour", [1]),
    ("days", "rule", ["x", 1]),
    ("days", "k", [0, 1.5, "a"]),
    ("populations", "draws", [0, -1, "a"]),
    ("populations", "generator", [1, {"pv_dens": 1.0}, {"ev_fleets": -1}]),
    ("market", "voll", [0, -1, NAN, INF, "a", True]),
    ("market", "cm_screen", [0, 2]),
    ("market", "vc_screen", [-1, 0.3]),
    ("market", "capability_cuts", [6, 1.5, 0]),
    ("market", "branch_cuts", [4, 0, 1.5]),
    ("market", "relinearise", [11, -1, 1.5]),
    ("market", "no_harm", [1, "x"]),
    ("market", "reservation_price", [0, -1]),
    ("limits", "vmin", [0.4, 2, NAN, "a"]),
    ("limits", "vmax", [2, 0.4]),
    ("limits", "vc_tolerance", [-0.1, 0.2]),
    ("limits", "cm_margin", [0, 2]),
    ("scenario", "hours", [[], [25], [1, 1], [1.5], "a"]),
    ("scenario", "pv_scale", [-1, NAN, "a"]),
    ("scenario", "days", [["x"], ["2019-01-01"]]),
    ("scenario", "period_hours", [0, 25]),
    ("actions", "markups", [[], [-1.0], [1.0], "a", [NAN]]),
    ("actions", "withhold", [[1.0], [-0.1], [0.5]]),
    ("learners", "mine", [{"kind": "q-learning", "alpha": 2}, {"kind": "nope"},
                          {"kind": "roth-erev", "recency": -1}, "ucb1"]),
    ("fsp_costs", "P_scale", [0, -1, NAN]),
    ("sweep", "market.voll", [[-1.0], [], 5]),
    ("sweep", "nope.x", [[1]]),
]

#: Text replacements that spoil the population file.
POPULATION_SPOILERS = [
    ('id = "pv_4"', 'id = "pv_3"'),  # a duplicate FSP id
    ("share = 0.8", "share = 2.0"),
    ("share = 0.8", "share = nan"),
    ("share = 0.8", 'share = "most"'),
    ("bus = 3\n", "bus = 999\n"),
    ("bus = 3\n", "bus = 3.5\n"),
    ("P_down = 70.0", "P_down = -70.0"),
    ("P_down = 70.0", "P_down = inf"),
    ('type = "pv_inverter"', 'type = "wind_farm"'),
    ("recency = 0.1", "recency = 1.5"),
    ("[[fsp]]", "[[fsps]]"),
]


def snapshot(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_size for p in folder.rglob("*")}


def fails_cleanly(argv: list[str], tmp: Path) -> None:
    """Exit 2, one to three lines on stderr, no traceback, nothing written under tmp."""
    before = snapshot(tmp)
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exit_:  # argparse's own errors
            code = exit_.code
    lines = err.getvalue().strip().splitlines()
    assert code == 2, (argv, err.getvalue()[-2000:])
    assert 1 <= len(lines) <= 3 and "Traceback" not in err.getvalue(), (argv, lines)
    assert snapshot(tmp) == before, argv


@pytest.fixture(scope="module")
def tmp(tmp_path_factory) -> Path:
    """A folder with the inputs the cases point at (good and broken)."""
    folder = tmp_path_factory.mktemp("fuzz")
    (folder / "empty.csv").write_text("")
    (folder / "header.csv").write_text("bid_id,provider_id,bus,period,product,quantity,price\n")
    (folder / "garbage.csv").write_bytes(bytes(range(256)) * 4)
    (folder / "garbage.json").write_bytes(b"\x00\xff{" * 100)
    (folder / "empty.json").write_text("")
    (folder / "not_a_net.json").write_text('{"_class": "pandapowerNet", "bus": 5}')
    (folder / "study.toml").write_text(study_text(base_study(folder)))
    pd.DataFrame([{"bid_id": "b1", "provider_id": "f1", "bus": 11, "period": 12,
                   "product": "P_down", "quantity": 0.5, "price": 50.0}]).to_csv(
        folder / "bids.csv", index=False)
    return folder


@pytest.mark.slow
@pytest.mark.parametrize("command", list(COMMANDS))
def test_bad_flags_fail_in_one_line_and_write_nothing(command, tmp):
    base, strategy = COMMANDS[command]

    @FUZZ
    @given(strategy)
    def check(pairs):
        argv = [part.format(tmp=tmp) for part in base]
        for flag, value in pairs:
            argv += [flag, value.format(tmp=tmp)]
        fails_cleanly(argv, tmp)

    check()


@pytest.mark.slow
@FUZZ
@given(st.lists(st.sampled_from([(table, field, value) for table, field, values in STUDY_SPOILERS
                                 for value in values]),
                min_size=1, max_size=2, unique_by=lambda case: case[:2]))
def test_bad_study_files_fail_in_one_line_and_write_nothing(tmp, spoilers):
    tables = base_study(tmp)
    for table, field, value in spoilers:
        tables.setdefault(table, {})[field] = value
    path = tmp / "spoiled.toml"
    path.write_text(study_text(tables))
    fails_cleanly(["run", str(path)], tmp)


@pytest.mark.slow
@FUZZ
@given(st.lists(st.sampled_from(POPULATION_SPOILERS), min_size=1, max_size=2, unique=True))
def test_bad_population_files_fail_in_one_line_and_write_nothing(tmp, spoilers):
    text = POPULATION.read_text()
    for old, new in spoilers:
        text = text.replace(old, new, 1)
    (tmp / "population.toml").write_text(text)
    tables = base_study(tmp)
    tables["study"]["population"] = str(tmp / "population.toml")
    (tmp / "spoiled.toml").write_text(study_text(tables))
    fails_cleanly(["run", str(tmp / "spoiled.toml")], tmp)


BID_SPOILERS = {
    "price": [NAN, INF, -5.0, "abc", ""],
    "quantity": [NAN, INF, -1.0, "abc"],
    "bus": [99999, "abc", 1.5],
    "period": [999, -1, 1.5, "abc"],
    "product": ["X", "", "p_up"],
    "bid_id": ["duplicate"],
}


@pytest.mark.slow
@FUZZ
@given(st.lists(st.sampled_from([(column, value) for column, values in BID_SPOILERS.items()
                                 for value in values]),
                min_size=1, max_size=2, unique_by=lambda case: case[0]),
       st.sampled_from(["csv", "parquet"]))
def test_bad_bid_files_fail_in_one_line_and_write_nothing(tmp, spoilers, kind):
    bids = pd.read_csv(tmp / "bids.csv")
    bids = pd.concat([bids, bids.assign(bid_id="b2", price=60.0)], ignore_index=True)
    bids = bids.astype(object)  # any cell may take any bad value
    for column, value in spoilers:
        bids.loc[1, column] = bids.loc[0, column] if value == "duplicate" else value
    path = tmp / f"spoiled.{kind}"
    if kind == "csv":
        bids.to_csv(path, index=False)
    else:
        bids.astype(str).to_parquet(path)  # a column of mixed values goes in as text
    fails_cleanly(["clear", "--grid", "cigre-mv", "--design", "CMVC_PQ", "--bids", str(path),
                   "--out", str(tmp / "awards.csv")], tmp)
