"""The command line: real output on built-in grids and one-line errors with exit code 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from lfm_abm.cli import main


def test_needs_on_cigre_prints_both_kinds(capsys, tmp_path):
    out_csv = tmp_path / "needs.csv"
    assert main(["needs", "--grid", "cigre-mv", "--out", str(out_csv)]) == 0
    out = capsys.readouterr().out
    assert "line 1" in out and "bus 11" in out
    assert "congestion needs" in out and out_csv.exists()


def test_unknown_grid_exits_2_with_one_line(capsys):
    assert main(["needs", "--grid", "nope"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "cigre-mv" in err


def test_bad_day_exits_2(capsys):
    assert main(["needs", "--grid", "cigre-mv", "--day", "July"]) == 2
    assert "days" in capsys.readouterr().err


@pytest.mark.slow
def test_console_script_runs():
    result = subprocess.run([sys.executable, "-m", "lfm_abm.cli", "--help"],
                            capture_output=True, text=True, check=True)
    assert "needs" in result.stdout


def test_clear_writes_awards_with_payments(tmp_path, capsys, cigre_case):
    from conftest import ample_bids

    bids_path = tmp_path / "bids.csv"
    ample_bids(cigre_case).to_csv(bids_path, index=False)
    out = tmp_path / "awards.parquet"
    code = main(["clear", "--grid", "cigre-mv", "--design", "CMVC_PQ", "--bids", str(bids_path),
                 "--pricing", "locational", "--relinearise", "2", "--out", str(out)])
    assert code == 0
    text = capsys.readouterr().out
    assert "procurement cost" in text and "unmet need after AC validation: 0.0000" in text
    import pandas as pd

    from lfm_abm.market.bids import BID_COLUMNS
    from lfm_abm.market.clearing import AWARD_COLUMNS

    awards = pd.read_parquet(out)
    assert list(awards.columns) == [*BID_COLUMNS, *AWARD_COLUMNS, "why"]
    assert "bids that won nothing, by reason" in text
    assert awards.payment.sum() > 0
    results = (Path(__file__).resolve().parents[1] / "docs" / "results.md").read_text()
    awards_doc = results[results.index("## awards.parquet"):results.index("## offers.parquet")]
    assert all(f"`{column}`" in awards_doc for column in awards.columns)


def test_every_losing_bid_says_why_and_the_reason_matches_its_prices(cigre_case):
    from conftest import ample_bids

    from lfm_abm.market.clearing import Market
    from lfm_abm.market.explain import KINDS, VALUE_TOLERANCE, loss_reasons

    bids = ample_bids(cigre_case)
    bids.loc[0, "price"] = 5_000.0  # above the reservation price (VOLL 1,000)
    result = Market(cigre_case, "CM_P").clear(bids, ac_validate=False)
    lost = loss_reasons(result, frozenset({"P"}), cigre_case.params.max_bid_price)
    a = result.awards.join(lost)
    assert (a.kind[a.awarded > 0] == "").all() and (a.kind[a.awarded == 0] != "").all()
    assert set(a.kind) - {""} <= set(KINDS)
    assert a.kind[0] == "above reservation"
    value, price = a.locational_price, a.price
    assert (a["product"][a.kind == "not bought"].str[0] == "Q").all()
    assert (a["product"][a.kind != "not bought"].str[0] == "P").all()
    assert (value[a.kind == "dearer"] > VALUE_TOLERANCE).all()
    assert (value[a.kind == "dearer"] < price[a.kind == "dearer"]).all()
    assert (value[a.kind == "not needed"].abs() <= VALUE_TOLERANCE).all()
    harmful = a[a.kind == "harmful"]
    assert len(harmful) and (harmful.locational_price < 0).all()
    limits = {f"the {r.service} limit of {r.element} {r.element_id} in period {r.period}"
              for r in result.stages[0][1].lp.rows.itertuples()}
    assert all(any(limit in why for limit in limits) for why in harmful.why)
    assert {"dearer", "not needed", "not bought"} <= set(a.kind)


def test_clear_reports_pivotal_suppliers_of_the_bids_it_is_given(tmp_path, capsys,
                                                                 cigre_case):
    """Only one provider offers anything: it is pivotal, the table says so."""
    import pandas as pd
    from conftest import ample_bids

    bids = ample_bids(cigre_case)
    alone = bids.provider_id.iloc[0]
    bids_path = tmp_path / "bids.csv"
    bids[bids.provider_id == alone].to_csv(bids_path, index=False)
    out = tmp_path / "pivotal.csv"
    code = main(["clear", "--grid", "cigre-mv", "--design", "CMVC_PQ", "--bids", str(bids_path),
                 "--pivotal", str(out)])
    assert code == 0
    assert "pivotal suppliers:" in capsys.readouterr().out
    table = pd.read_csv(out)
    assert set(table.provider_id) == {alone}
    assert {"period", "unmet_increase_mwh", "cost_increase", "pivotal"} <= set(table.columns)


def test_clear_with_a_broken_bid_file_exits_2(tmp_path, capsys):
    path = tmp_path / "bids.csv"
    path.write_text("bid_id,provider_id,bus,period,product,quantity,price\n"
                    "x,f,3,0,P_up,-1,50\n")
    assert main(["clear", "--grid", "cigre-mv", "--design", "CM_P", "--bids", str(path)]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and "quantity" in err and len(err.strip().splitlines()) == 1


def test_clear_prices_emergency_action_by_kind_and_names_a_bad_priority(tmp_path, capsys):
    """One bid above the reservation price: every need goes to emergency action, reported
    split into curtailment and shedding and priced by kind."""
    path = tmp_path / "bids.csv"
    path.write_text("bid_id,provider_id,bus,period,product,quantity,price\n"
                    "a,f,11,13,P_down,1,5000\n")
    args = ["clear", "--grid", "cigre-mv", "--design", "CM_P", "--bids", str(path)]
    assert main([*args, "--emergency-priority", "cheapest"]) == 2
    err = capsys.readouterr().err
    assert "--emergency-priority" in err and "least-cost" in err and "market-first" in err
    for price in (100.0, 300.0):
        assert main([*args, "--curtailment-price", str(price)]) == 0
        line = next(row for row in capsys.readouterr().out.splitlines()
                    if row.startswith("unmet need after AC"))
        curtailed = float(line.split("curtailed ")[1].split(",")[0])
        shed = float(line.split("shed ")[1].split(";")[0])
        cost = float(line.split("costing ")[1].split(" EUR")[0])
        assert curtailed + shed > 0
        assert cost == pytest.approx(price * curtailed + 1000.0 * shed, abs=0.1)


def test_clear_refuses_device_bids_without_a_device_table(tmp_path, capsys):
    path = tmp_path / "bids.csv"
    path.write_text("bid_id,provider_id,bus,period,product,quantity,price,device_id\n"
                    "a,f,11,13,P_down,1,50,pv1\n")
    assert main(["clear", "--grid", "cigre-mv", "--design", "CM_P", "--bids", str(path)]) == 2
    assert "device table" in capsys.readouterr().err


def test_clear_respects_a_battery_energy_file(tmp_path, capsys):
    """A 1 MWh battery half full charges at most 0.5 MWh / 0.9 at the midday overload,
    however much the bid offers; a broken energy file names itself and the field."""
    import numpy as np
    import pandas as pd

    from lfm_abm.market.energy import storage_account

    bids = tmp_path / "bids.csv"
    bids.write_text("bid_id,provider_id,bus,period,product,quantity,price,device_id\n"
                    "a,f,11,13,P_down,2,10,bat\n")
    energy = tmp_path / "energy.csv"
    storage_account("bat", np.arange(24), 1.0, 0.5, 0.0, 0.81).to_csv(energy, index=False)
    out = tmp_path / "awards.csv"
    assert main(["clear", "--grid", "cigre-mv", "--design", "CM_P", "--bids", str(bids),
                 "--energy", str(energy), "--out", str(out)]) == 0
    awards = pd.read_csv(out)
    assert awards.awarded.iloc[0] == pytest.approx(0.5 / 0.9)
    assert awards.soc_mwh.iloc[0] == pytest.approx(1.0)
    broken = pd.read_csv(energy).assign(charge_efficiency=1.5)
    broken.to_csv(energy, index=False)
    capsys.readouterr()
    assert main(["clear", "--grid", "cigre-mv", "--design", "CM_P", "--bids", str(bids),
                 "--energy", str(energy)]) == 2
    err = capsys.readouterr().err
    assert str(energy) in err and "charge_efficiency" in err and len(err.strip().splitlines()) == 1
