"""Every user-facing file, broken: one clear line naming file and field, exit code 2,
and no result folder left behind."""

from __future__ import annotations

from pathlib import Path

import pytest

from lfm_abm.cli import main

ROOT = Path(__file__).resolve().parents[1]
PV = 'id = "pv_11"\ntype = "pv_inverter"\nbus = 11\ncost = { P_down = 60.0 }\n'


def study(tmp_path: Path, population: str, extra: str = "", design: str = "CMVC_PQ") -> Path:
    (tmp_path / "pop.toml").write_text(population)
    path = tmp_path / "study.toml"
    path.write_text(f'[study]\ngrid = "cigre-mv"\npopulation = "pop.toml"\n'
                    f'designs = ["{design}"]\nrounds = 2\nout = "{tmp_path / "out"}"\n{extra}')
    return path


def run_cli(capsys, *args: str) -> str:
    code = main(list(args))
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1, err
    return err


CASES = [
    ("missing fields", "[[fsp]]\nid = \"pv\"\n", "", "fsp pv: type"),
    ("wrong type", PV.replace("bus = 11", 'bus = "eleven"'), "", "fsp pv_11: bus"),
    ("unknown bus", PV.replace("bus = 11", "bus = 99"), "", "fsp pv_11: bus"),
    ("bus without PV", PV.replace("bus = 11", "bus = 13"), "", "fsp pv_11: bus"),
    ("negative capacity", '[[fsp]]\nid = "agg"\ntype = "der_aggregator"\nassets = [{ kind = '
     '"storage", bus = 8, power_mw = -1.0, cost = { P_up = 50.0 } }]\n', "",
     "fsp agg: assets[0]: power_mw"),
    ("NaN cost", PV.replace("60.0", "nan"), "", "fsp pv_11: cost.P_down"),
    ("inf cost", PV.replace("60.0", "inf"), "", "fsp pv_11: cost.P_down"),
    ("empty population", "[defaults]\n", "", "fsp"),
    ("hours out of range", PV, "[scenario]\nhours = [12, 25]\n", "hours"),
    ("learner typo", PV.replace("cost", 'learner = { kind = "roth-erve" }\ncost'), "",
     "learner.kind"),
]


@pytest.mark.parametrize(("name", "population", "extra", "field"), CASES,
                         ids=[c[0] for c in CASES])
def test_broken_population_or_study(tmp_path, capsys, name, population, extra, field):
    path = study(tmp_path, "[[fsp]]\n" + population if not population.startswith(
        ("[[fsp]]", "[defaults]")) else population, extra)
    err = run_cli(capsys, "run", str(path), "--workers", "1", "--quiet")
    assert field in err and ("pop.toml" in err or "study.toml" in err), err
    assert not (tmp_path / "out").exists()


def test_design_typo(tmp_path, capsys):
    path = study(tmp_path, "[[fsp]]\n" + PV, design="CMCV_PQ")
    err = run_cli(capsys, "run", str(path))
    assert "CMCV_PQ" in err and "CMVC_PQ" in err and "study.toml" in err


def test_bids_with_period_out_of_range(tmp_path, capsys):
    bids = tmp_path / "bids.csv"
    bids.write_text("bid_id,provider_id,bus,period,product,quantity,price\n"
                    "a,f,11,99,P_down,1,50\n")
    err = run_cli(capsys, "clear", "--grid", "cigre-mv", "--design", "CM_P", "--bids", str(bids))
    assert str(bids) in err and "period" in err and "99" in err


def test_bids_with_inf_price(tmp_path, capsys):
    bids = tmp_path / "bids.csv"
    bids.write_text("bid_id,provider_id,bus,period,product,quantity,price\n"
                    "a,f,11,1,P_down,1,inf\n")
    err = run_cli(capsys, "clear", "--grid", "cigre-mv", "--design", "CM_P", "--bids", str(bids))
    assert "price" in err and "finite" in err


def test_broken_grid_json(tmp_path, capsys):
    grid = tmp_path / "grid.json"
    grid.write_text('{"_class": "pandapowerNet", "_module": "pandapower.auxiliary", "x": ')
    err = run_cli(capsys, "needs", "--grid", str(grid))
    assert str(grid) in err


def test_missing_devices_file(tmp_path, capsys):
    bids = tmp_path / "bids.csv"
    bids.write_text("bid_id,provider_id,bus,period,product,quantity,price,device_id\n"
                    "a,f,11,13,P_down,1,50,pv\n")
    err = run_cli(capsys, "clear", "--grid", "cigre-mv", "--design", "CM_P", "--bids",
                  str(bids), "--devices", str(tmp_path / "nope.csv"))
    assert "nope.csv" in err
