"""Broken grids, negative prices, output targets and long bid files (issue 14, part 4).

Broken but loadable pandapower nets, a negative bid price and an output file that cannot
be written each give exit code 2 and one line naming the file and what is wrong, before
any work; outputs are whole or absent. The faster clearing path for long bid files gives
the same numbers as the plain one.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandapower as pp
import pandas as pd
import pytest

from lfm_abm.cli import main
from lfm_abm.files import TMP_PREFIX

BID_HEADER = "bid_id,provider_id,bus,period,product,quantity,price\n"


@pytest.fixture(scope="module")
def raw_cigre() -> pp.pandapowerNet:
    """The plain pandapower CIGRE MV net (as a user would save it)."""
    import pandapower.networks as pn

    return pn.create_cigre_network_mv(with_der="pv_wind")


def _run(capsys, *args: str, code: int = 2) -> str:
    """Run the CLI in-process; the exit code must be `code` and stderr one line."""
    assert main(list(args)) == code
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert "Traceback" not in err
    return err


def _set(table: str, column: str, value: object, row: int = 0) -> Callable:
    def spoil(net: pp.pandapowerNet) -> None:
        frame = net[table]
        if isinstance(value, str) and frame[column].dtype != object:
            frame[column] = frame[column].astype(object)
        frame.loc[frame.index[row], column] = value
    return spoil


def _everywhere(table: str, column: str, value: object) -> Callable:
    def spoil(net: pp.pandapowerNet) -> None:
        net[table][column] = value
    return spoil


def _slack_bus_off(net: pp.pandapowerNet) -> None:
    net.bus.loc[net.ext_grid.bus.iloc[0], "in_service"] = False


def _no_ext_grid(net: pp.pandapowerNet) -> None:
    net.ext_grid.drop(net.ext_grid.index, inplace=True)


def _no_lines(net: pp.pandapowerNet) -> None:
    net.line.drop(net.line.index, inplace=True)  # the line switches now name nothing


#: (name, how the net is spoilt, words the error must contain)
NET_CASES = [
    ("ext_grid out of service", _everywhere("ext_grid", "in_service", False),
     ["ext_grid", "no slack in service", "out of service"]),
    ("no ext_grid", _no_ext_grid, ["ext_grid", "no slack"]),
    ("slack bus out of service", _slack_bus_off, ["ext_grid", "bus 0", "out of service"]),
    ("all buses out of service", _everywhere("bus", "in_service", False),
     ["bus.in_service", "every bus is out of service"]),
    ("line to a missing bus", _set("line", "to_bus", 999, row=3),
     ["line.to_bus", "line 3", "999"]),
    ("trafo to a missing bus", _set("trafo", "lv_bus", 777), ["trafo.lv_bus", "777"]),
    ("load at a missing bus", _set("load", "bus", 555, row=2), ["load.bus", "load 2", "555"]),
    ("sgen at a missing bus", _set("sgen", "bus", 556, row=2), ["sgen.bus", "556"]),
    ("ext_grid at a missing bus", _set("ext_grid", "bus", 444), ["ext_grid.bus", "444"]),
    ("switch to a missing line", _no_lines, ["switch.element", "not in the line table"]),
    ("vn_kv as text", _set("bus", "vn_kv", "twenty", row=4),
     ["bus.vn_kv", "bus 4", "'twenty'"]),
    ("vn_kv NaN", _set("bus", "vn_kv", np.nan, row=4), ["bus.vn_kv", "missing (NaN)"]),
    ("line resistance NaN", _set("line", "r_ohm_per_km", np.nan, row=1),
     ["line.r_ohm_per_km", "line 1"]),
    ("line rating NaN", _set("line", "max_i_ka", np.nan, row=1), ["line.max_i_ka"]),
    ("zero line length", _set("line", "length_km", 0.0, row=1), ["line.length_km", "> 0"]),
    ("load NaN", _set("load", "p_mw", np.nan, row=1), ["load.p_mw", "load 1"]),
    ("in_service as text", _everywhere("bus", "in_service", "yes"),
     ["bus.in_service", "true or false", "'yes'"]),
]


@pytest.mark.parametrize(("name", "spoil", "words"), NET_CASES, ids=[c[0] for c in NET_CASES])
def test_broken_grid_gives_one_line_naming_file_and_problem(tmp_path, capsys, raw_cigre,
                                                            name, spoil, words):
    net = copy.deepcopy(raw_cigre)
    spoil(net)
    path = tmp_path / "broken.json"
    pp.to_json(net, str(path))
    err = _run(capsys, "needs", "--grid", str(path))
    assert str(path) in err
    for word in words:
        assert word in err, (word, err)


def _edit_json(path: Path, edit: Callable[[dict], None]) -> None:
    data = json.loads(path.read_text())
    edit(data["_object"])
    path.write_text(json.dumps(data))


def _drop_line_column(tables: dict) -> None:
    table = json.loads(tables["line"]["_object"])
    at = table["columns"].index("from_bus")
    table["columns"].pop(at)
    for row in table["data"]:
        row.pop(at)
    tables["line"]["_object"] = json.dumps(table)
    tables["line"]["dtype"].pop("from_bus")


JSON_CASES = [
    ("bus table is text", lambda t: t.__setitem__("bus", "garbage"),
     ["bus", "not a table (got str)"]),
    ("bus table is a list", lambda t: t.__setitem__("bus", [1, 2, 3]), ["not a table"]),
    ("ext_grid table is null", lambda t: t.__setitem__("ext_grid", None), ["ext_grid"]),
    ("line without from_bus", _drop_line_column, ["line.from_bus", "no column"]),
]


@pytest.mark.parametrize(("name", "edit", "words"), JSON_CASES, ids=[c[0] for c in JSON_CASES])
def test_garbage_tables_in_the_json_give_one_line(tmp_path, capsys, raw_cigre, name, edit,
                                                  words):
    path = tmp_path / "garbage.json"
    pp.to_json(raw_cigre, str(path))
    _edit_json(path, edit)
    err = _run(capsys, "needs", "--grid", str(path))
    assert str(path) in err
    for word in words:
        assert word in err, (word, err)


def test_clear_on_a_broken_grid_names_it_too(tmp_path, capsys, raw_cigre):
    net = copy.deepcopy(raw_cigre)
    net.line.loc[net.line.index[3], "from_bus"] = 99
    grid = tmp_path / "grid.json"
    pp.to_json(net, str(grid))
    bids = tmp_path / "bids.csv"
    bids.write_text(BID_HEADER + "a,f,11,13,P_down,1,50\n")
    err = _run(capsys, "clear", "--grid", str(grid), "--design", "CMVC_PQ", "--bids", str(bids))
    assert str(grid) in err and "line.from_bus" in err and "99" in err


def test_a_grid_that_does_not_converge_names_file_and_period(tmp_path, capsys, raw_cigre):
    net = copy.deepcopy(raw_cigre)
    net.load["p_mw"] *= 200  # structurally sound, physically impossible
    path = tmp_path / "heavy.json"
    pp.to_json(net, str(path))
    err = _run(capsys, "needs", "--grid", str(path), code=3)
    assert str(path) in err and "did not converge in period h00" in err


def test_sound_grids_pass_the_checks(cigre, semiurb, raw_cigre):
    """No false alarms on the built-in grids and pandapower's own examples."""
    import pandapower.networks as pn

    from lfm_abm.network.grid_checks import grid_problem

    for net in (cigre, semiurb, raw_cigre, pn.mv_oberrhein(), pn.example_multivoltage()):
        assert grid_problem(net) is None


def test_a_sound_json_grid_still_clears_quietly(tmp_path, capsys, raw_cigre, cigre_case):
    """No progress lines for a short bid file either."""
    path = tmp_path / "grid.json"
    pp.to_json(raw_cigre, str(path))
    bids = tmp_path / "bids.csv"
    random_bids(cigre_case, 2000).to_csv(bids, index=False)
    assert main(["clear", "--grid", str(path), "--design", "CMVC_PQ", "--bids", str(bids)]) == 0
    captured = capsys.readouterr()
    assert captured.err == "" and "procurement cost" in captured.out


# --- bid prices ---------------------------------------------------------------------------


def test_negative_price_is_refused_naming_file_row_and_field(tmp_path, capsys):
    bids = tmp_path / "bids.csv"
    bids.write_text(BID_HEADER + "a,f,11,13,P_down,1,50\nb,f,11,3,P_up,0.5,-50\n")
    err = _run(capsys, "clear", "--grid", "cigre-mv", "--design", "CMVC_PQ",
               "--bids", str(bids))
    assert str(bids) in err and "price" in err and "row 2 (bid_id b)" in err
    assert "-50" in err and ">= 0 EUR/MWh" in err


def test_zero_price_is_fine_and_validation_refuses_negative_anywhere():
    from lfm_abm.errors import InputError
    from lfm_abm.market.bids import validate_bids

    bids = pd.DataFrame({"bid_id": ["a", "b"], "provider_id": "f", "bus": 11, "period": 3,
                         "product": ["P_up", "Q_down"], "quantity": 1.0, "price": [0.0, 5.0]})
    assert validate_bids(bids).price.tolist() == [0.0, 5.0]
    with pytest.raises(InputError, match="negative price") as err:
        validate_bids(bids.assign(price=[0.0, -1e-9]), source="x.parquet")
    assert err.value.source == "x.parquet" and err.value.field == "price"


# --- output targets -------------------------------------------------------------------------


@pytest.fixture
def no_work(monkeypatch):
    """Fail the test if a command starts its work (loads the grid)."""
    import importlib

    def refuse(*args, **kwargs):
        raise AssertionError("the work started before the output target was checked")

    monkeypatch.setattr(importlib.import_module("lfm_abm.network.grids"), "load_grid", refuse)


@pytest.mark.parametrize(("args", "words"), [
    (["needs", "--grid", "cigre-mv", "--out", "/nodir/x.csv"],
     ["--out", "'/nodir' does not exist"]),
    (["needs", "--grid", "cigre-mv", "--out", "/proc/x.csv"], ["--out", "not writable"]),
    (["clear", "--grid", "cigre-mv", "--design", "CM_P", "--bids", "{bids}", "--out",
      "/proc/x.csv"], ["--out", "not writable"]),
    (["clear", "--grid", "cigre-mv", "--design", "CM_P", "--bids", "{bids}", "--out",
      "/nodir/x.parquet"], ["--out", "does not exist"]),
    (["clear", "--grid", "cigre-mv", "--design", "CM_P", "--bids", "{bids}", "--out",
      "{tmp}/awards.txt"], ["--out", "unknown file type '.txt'", ".parquet"]),
    (["clear", "--grid", "cigre-mv", "--design", "CM_P", "--bids", "{bids}", "--pivotal",
      "/proc/p.csv"], ["--pivotal", "not writable"]),
    (["clear", "--grid", "cigre-mv", "--design", "CM_P", "--bids", "{bids}", "--out",
      "{tmp}"], ["--out", "unknown file type"]),
    (["population", "--grid", "cigre-mv", "--out", "/proc/p.toml"], ["--out", "not writable"]),
    (["population", "--grid", "cigre-mv", "--out", "/nodir/p.toml"], ["--out", "/nodir"]),
], ids=["needs-nodir", "needs-proc", "clear-proc", "clear-nodir", "clear-suffix",
        "pivotal-proc", "clear-folder", "population-proc", "population-nodir"])
def test_output_targets_are_checked_before_the_work(tmp_path, capsys, no_work, args, words):
    bids = tmp_path / "bids.csv"
    bids.write_text(BID_HEADER + "a,f,11,13,P_down,1,50\n")
    args = [a.format(bids=bids, tmp=tmp_path) for a in args]
    err = _run(capsys, *args)
    for word in words:
        assert word in err, (word, err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bids.csv"]


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    from lfm_abm.files import WriteError
    from lfm_abm.market.bids import write_table

    path = tmp_path / "awards.csv"
    path.write_text("old, complete\n")
    frame = pd.DataFrame({"a": range(1000)})

    def half_then_full_disk(self, target, **kwargs):
        Path(target).write_text("a\n0\n1\n")  # half written ...
        raise OSError(28, "No space left on device")  # ... then the disk is full

    monkeypatch.setattr(pd.DataFrame, "to_csv", half_then_full_disk)
    with pytest.raises(WriteError, match=r"awards\.csv"):
        write_table(frame, path)
    assert path.read_text() == "old, complete\n"
    assert [p.name for p in tmp_path.iterdir()] == ["awards.csv"]
    monkeypatch.undo()
    write_table(frame, path)
    assert pd.read_csv(path).a.tolist() == list(range(1000))
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(TMP_PREFIX)]


def test_population_writes_a_whole_file(tmp_path, capsys):
    population = tmp_path / "pop.toml"
    assert main(["population", "--grid", "cigre-mv", "--out", str(population)]) == 0
    assert "[[fsp]]" in population.read_text()
    assert [p.name for p in tmp_path.iterdir()] == ["pop.toml"]


# --- long bid files: the fast path gives the plain path's numbers ----------------------------


def random_bids(case, n: int, seed: int = 1) -> pd.DataFrame:
    """`n` valid bids at random slots of the case (several per slot, random prices)."""
    rng = np.random.default_rng(seed)
    product = rng.choice(["P_up", "P_down", "Q_up", "Q_down"], n)
    is_p = np.char.startswith(product.astype(str), "P")
    return pd.DataFrame({
        "bid_id": [f"b{i}" for i in range(n)],
        "provider_id": [f"fsp{i}" for i in rng.integers(0, n // 10 + 1, n)],
        "bus": rng.choice(np.asarray(case.buses), n),
        "period": rng.integers(0, case.n_periods, n),
        "product": product,
        "quantity": rng.uniform(0.0, 0.05, n).round(5),
        "price": np.where(is_p, rng.uniform(20, 80, n), rng.uniform(2, 16, n)).round(3),
    })


def _old_validate(bids: pd.DataFrame) -> pd.DataFrame:
    """Normalisation as it was before it stopped copying the table (valid input only)."""
    from lfm_abm.market.bids import BID_COLUMNS

    out = bids.copy()
    if "device_id" not in out:
        out["device_id"] = ""
    out = out[BID_COLUMNS].reset_index(drop=True)
    out["device_id"] = out["device_id"].fillna("").astype(str)
    out["bid_id"] = out["bid_id"].astype(str)
    out["provider_id"] = out["provider_id"].fillna("").astype(str)
    for column in ("bus", "period"):
        out[column] = pd.to_numeric(out[column]).astype(int)
    for column in ("quantity", "price"):
        out[column] = pd.to_numeric(out[column]).astype(float)
    return out


def test_validation_without_copies_normalises_as_before(cigre_case):
    from lfm_abm.market.bids import validate_bids

    bids = random_bids(cigre_case, 3000)
    messy = bids.assign(bid_id=np.arange(3000), provider_id=bids.provider_id.where(
        bids.index % 7 > 0), bus=bids.bus.astype(float)).set_axis(np.arange(3000)[::-1] * 3)
    for frame in (bids, messy, messy.assign(device_id=np.where(messy.bus > 5, "d1", None))):
        new = validate_bids(frame, buses=cigre_case.buses, n_periods=cigre_case.n_periods)
        pd.testing.assert_frame_equal(new, _old_validate(frame), check_exact=True)


def test_fast_clearing_path_gives_the_plain_paths_numbers(cigre_case):
    """A few thousand bids: the path without table copies and with the solver freed
    (`warm=False`) equals the path through a re-indexed copy with the solver kept, and the
    LP passed to HiGHS through its arrays solves exactly as through a HighsLp."""
    from lfm_abm.market.bids import validate_bids
    from lfm_abm.market.clearing import Market

    bids = validate_bids(random_bids(cigre_case, 4000), buses=cigre_case.buses,
                         n_periods=cigre_case.n_periods)
    shuffled = bids.set_axis(np.arange(len(bids)) * 2 + 1)  # forces the copying path
    for design, pricing in (("CMVC_PQ", "locational"), ("CM_P>VC_Q", "pay-as-bid")):
        fast = Market(cigre_case, design, pricing, warm=False).clear(bids, trusted=True)
        plain = Market(cigre_case, design, pricing).clear(shuffled, trusted=True)
        pd.testing.assert_frame_equal(fast.awards, plain.awards, check_exact=True)
        pd.testing.assert_frame_equal(fast.prices, plain.prices, check_exact=True)
        params = cigre_case.params
        assert fast.summary(params) == pytest.approx(plain.summary(params), nan_ok=True,
                                                     rel=0, abs=0)
        lp = fast.stages[0][1].lp
        y = fast.stages[0][1].solution.row_dual
        old_values = np.asarray(lp.matrix[:, : lp.n_bids].T.tocsr() @ y).ravel()
        np.testing.assert_array_equal(lp.bid_values(y), old_values)
        _same_solution_through_highs_lp(lp)


def _same_solution_through_highs_lp(lp) -> None:
    import highspy

    from lfm_abm.market.engines import HighsEngine

    class HighsLpEngine(HighsEngine):
        def _pass_model(self, lp):  # the way the LP was passed before (field by field)
            model = highspy.HighsLp()
            model.num_col_, model.num_row_ = lp.n_cols, lp.matrix.shape[0]
            model.col_cost_, model.col_lower_ = lp.cost, np.zeros(lp.n_cols)
            model.col_upper_ = lp.col_upper
            model.row_lower_, model.row_upper_ = lp.row_lower, lp.row_upper
            model.a_matrix_.format_ = highspy.MatrixFormat.kColwise
            model.a_matrix_.start_ = lp.matrix.indptr
            model.a_matrix_.index_ = lp.matrix.indices
            model.a_matrix_.value_ = lp.matrix.data
            self._highs.clearModel()
            self._highs.passModel(model)

    solutions = []
    for engine in (HighsEngine(), HighsLpEngine()):
        engine.load(lp)
        solutions.append(engine.solve())
    new, old = solutions
    np.testing.assert_array_equal(new.x, old.x)
    np.testing.assert_array_equal(new.row_dual, old.row_dual)
    assert (new.objective, new.iterations) == (old.objective, old.iterations)


def test_long_bid_files_report_progress(tmp_path, capsys, cigre_case):
    long = tmp_path / "long.parquet"
    random_bids(cigre_case, 100_000).to_parquet(long, index=False)
    out = tmp_path / "awards.parquet"
    assert main(["clear", "--grid", "cigre-mv", "--design", "CMVC_PQ", "--bids", str(long),
                 "--out", str(out)]) == 0
    phases = capsys.readouterr().err.splitlines()
    assert [line.split()[0] for line in phases] == ["read", "built", "AC-validated", "wrote"]
    assert "100,000 bids" in phases[0] and "columns" in phases[1]
    assert len(pd.read_parquet(out)) == 100_000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["awards.parquet", "long.parquet"]
