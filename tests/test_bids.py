"""Bid files: round trip and one clear error per broken field."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from toy import bids_frame

from lfm_abm.errors import InputError
from lfm_abm.market.bids import read_bids, validate_bids, write_table

GOOD = [("a", 1, 0, "P_up", 1.0, 50.0), ("b", 2, 1, "Q_down", 0.5, 5.0, "pv1")]


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_round_trip(tmp_path, suffix):
    bids = validate_bids(bids_frame(GOOD))
    path = tmp_path / f"bids{suffix}"
    write_table(bids, path)
    again = read_bids(path, buses=[1, 2], n_periods=2)
    pd.testing.assert_frame_equal(again, bids)
    assert list(again.device_id) == ["", "pv1"]


@pytest.mark.parametrize(
    ("change", "field", "text"),
    [
        ({"bus": 9}, "bus", "bus 9"),
        ({"quantity": -1.0}, "quantity", ">= 0"),
        ({"price": math.nan}, "price", "must be"),
        ({"price": math.inf}, "price", "finite"),
        ({"product": "P_sideways"}, "product", "P_sideways"),
        ({"period": 7}, "period", "outside 0..1"),
        ({"period": 1.5}, "period", "integer"),
        ({"quantity": "lots"}, "quantity", "number"),
    ],
)
def test_broken_field_is_named_with_its_row(change, field, text):
    bids = bids_frame(GOOD)
    for key, value in change.items():
        bids[key] = bids[key].astype(object)
        bids.loc[1, key] = value
    with pytest.raises(InputError) as err:
        validate_bids(bids, buses=[1, 2], n_periods=2, source="my.csv")
    message = str(err.value)
    assert err.value.field == field
    assert message.startswith("my.csv: ") and "row 2 (bid_id b)" in message and text in message


def test_missing_column_and_duplicate_ids():
    with pytest.raises(InputError, match="missing column 'price'"):
        validate_bids(bids_frame(GOOD).drop(columns="price"))
    with pytest.raises(InputError, match="not unique"):
        validate_bids(bids_frame([GOOD[0], GOOD[0]]))


def test_unreadable_files(tmp_path):
    with pytest.raises(InputError, match="file not found"):
        read_bids(tmp_path / "none.csv")
    odd = tmp_path / "bids.xlsx"
    odd.write_text("x")
    with pytest.raises(InputError, match="unknown file type"):
        read_bids(odd)
    broken = tmp_path / "bids.parquet"
    broken.write_text("not parquet")
    with pytest.raises(InputError, match="cannot read"):
        read_bids(broken)


def test_a_price_above_any_reservation_price_is_valid_input():
    bids = validate_bids(bids_frame([("a", 1, 0, "P_up", 1.0, 5000.0)]))
    assert bids.price.iloc[0] == 5000.0  # not admitted by the market, but not an error
