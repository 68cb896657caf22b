"""One schema for every setting: the same one-line error whatever the source."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import Annotated

import pytest

from lfm_abm.cli import main
from lfm_abm.errors import InputError
from lfm_abm.market.params import MarketParams
from lfm_abm.network.needs import NeedLimits
from lfm_abm.network.scenarios import Scenario
from lfm_abm.schema import Bool, Field, Float, Int, Text, build, describe, settings
from lfm_abm.study import StudyTable

ROOT = Path(__file__).resolve().parents[1]


@settings("toy")
class Toy:
    count: Annotated[Int, Field(ge=4, multiple_of=4)] = 8
    share: Annotated[Float, Field(gt=0, le=1)] = 0.5
    price: Annotated[Float, Field(gt=0)] | None = None
    flag: Bool = False
    hours: Annotated[tuple[Annotated[Int, Field(ge=0, le=23)], ...], Field(min_length=1)] = (1,)
    name: Text = "x"


@pytest.mark.parametrize(("field", "text"), [
    ("count", "an integer >= 4, a multiple of 4"),
    ("share", "a number in (0, 1]"),
    ("price", "a number > 0, or none"),
    ("flag", "true or false"),
    ("hours", "a non-empty list of integers in [0, 23]"),
    ("name", "text"),
])
def test_the_allowed_range_is_written_from_the_declaration(field, text):
    assert describe(Toy, field) == text


@pytest.mark.parametrize(("values", "message"), [
    ({"count": 1.5}, "toy.count: invalid value 1.5 (allowed: an integer >= 4, a multiple of 4)"),
    ({"count": True}, "toy.count: invalid value True"),
    ({"count": "8"}, "toy.count: invalid value '8'"),
    ({"count": 6}, "toy.count: invalid value 6"),
    ({"share": math.nan}, "toy.share: invalid value nan (allowed: a number in (0, 1])"),
    ({"share": math.inf}, "toy.share: invalid value inf"),
    ({"share": 0}, "toy.share: invalid value 0"),
    ({"flag": 1}, "toy.flag: invalid value 1 (allowed: true or false)"),
    ({"hours": [3, 24]}, "toy.hours[1]: invalid value 24"),
    ({"hours": []}, "toy.hours: invalid value []"),
    ({"colour": "red"}, "toy.colour: unknown field 'colour' (allowed: count, share, price"),
])
def test_a_bad_value_is_one_line_naming_field_value_and_range(values, message):
    with pytest.raises(InputError) as error:
        Toy(**values)
    assert str(error.value).startswith(message)
    assert "\n" not in str(error.value)


def test_a_table_from_a_file_names_the_file_and_keeps_defaults():
    assert build(Toy, {"share": 1}, "a.toml") == Toy(share=1.0)
    with pytest.raises(InputError, match=r"^a\.toml: toy\.share: invalid value 2"):
        build(Toy, {"share": 2}, "a.toml")
    with pytest.raises(InputError, match=r"^a\.toml: toy: must be a table"):
        build(Toy, [1, 2], "a.toml")


def test_settings_stay_frozen_hashable_and_revalidated_on_replace():
    params = MarketParams(voll=300)
    assert params.voll == 300.0 and isinstance(params.voll, float)
    assert hash(params) == hash(MarketParams(voll=300.0))
    with pytest.raises(AttributeError):
        params.voll = 5  # type: ignore[misc]
    with pytest.raises(InputError, match=r"market\.voll: invalid value -1"):
        replace(params, voll=-1)


@pytest.mark.parametrize(("build_it", "message"), [
    (lambda: MarketParams(relinearise=1.5), "market.relinearise: invalid value 1.5 (allowed: "
                                            "an integer in [0, 10])"),
    (lambda: MarketParams(capability_cuts=16.0), "market.capability_cuts: invalid value 16.0"),
    (lambda: MarketParams(branch_cuts=4), "market.branch_cuts: invalid value 4: must be odd"),
    (lambda: NeedLimits(vmin=1.06), "limits.vmin: vmin 1.06 is not below vmax 1.05"),
    (lambda: NeedLimits(vc_tolerance=0.06), "limits.vc_tolerance: invalid value 0.06"),
    (lambda: Scenario(hours=(1, 1)), "scenario: scenario.hours: hours repeat"),
    (lambda: Scenario.from_dict({"pv_scale": -1}, "s.toml"),
     "s.toml: scenario.pv_scale: invalid value -1 (allowed: a number >= 0)"),
    (lambda: StudyTable(grid="g", population="p", designs=("CM_P",), rounds=10, window=50),
     "study.window: window 50 is more than the 10 rounds"),
    (lambda: StudyTable(grid="g", population="p", designs=("CM_P",), rounds=10, seeds=(1, 1)),
     "study.seeds: seeds repeat"),
    (lambda: StudyTable(grid="g", population="p", designs=("CM_P",)),
     "study.rounds: required (allowed: an integer in [1, 100000000])"),
])
def test_every_settings_class_speaks_the_same_way(build_it, message):
    with pytest.raises(InputError) as error:
        build_it()
    assert str(error.value).startswith(message)


@pytest.mark.parametrize(("argv", "message"), [
    (["run", "studies/quick.toml", "--rounds", "-3"],
     "--rounds: invalid value -3 (allowed: an integer in [1, 100000000])"),
    (["run", "studies/quick.toml", "--rounds", "0"], "--rounds: invalid value 0"),
    (["run", "studies/quick.toml", "--seeds", "0"], "--seeds: invalid value 0"),
    (["run", "studies/quick.toml", "--workers", "0"], "--workers: invalid value 0"),
    (["run", "studies/quick.toml", "--window", "50"], "study.window: window 50 is more than"),
    (["run", "studies/quick.toml", "--out", "/proc/xx"], "--out: '/proc/xx': cannot create it"),
    (["run", "studies/quick.toml", "--rounds", "1.5"], "argument --rounds: invalid int value"),
    (["bench", "--ac-every", "0"], "--ac-every: invalid value 0"),
    (["needs", "--grid", "cigre-mv", "--vmin", "nan"], "--vmin: invalid value nan"),
    (["clear", "--grid", "cigre-mv", "--design", "CM_P", "--bids", "b.csv", "--voll", "-1"],
     "--voll: invalid value -1.0 (allowed: a number > 0)"),
    (["validate", "--grid", "cigre-mv", "--relinearise", "11"],
     "--relinearise: invalid value 11 (allowed: an integer in [0, 10])"),
    (["population", "--grid", "cigre-mv", "--seed", "-1", "--out", "p.toml"],
     "--seed: invalid value -1 (allowed: an integer >= 0)"),
])
def test_command_line_numbers_go_through_the_schema(argv, message, capsys, monkeypatch):
    root = ROOT
    monkeypatch.chdir(root)
    try:
        code = main(argv)
    except SystemExit as exit_:  # argparse's own type errors
        code = exit_.code
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (root / "p.toml").exists()
