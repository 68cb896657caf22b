"""Grid loading: built-in names, JSON files and clear errors for bad input."""

from __future__ import annotations

import pandapower as pp
import pytest

from lfm_abm.errors import InputError
from lfm_abm.network.grids import BUILT_IN, default_scenario, load_grid


def test_cigre_is_fresh_each_time():
    first = load_grid("cigre-mv")
    first.load.p_mw *= 2
    second = load_grid("cigre-mv")
    assert second.load.p_mw.sum() == pytest.approx(first.load.p_mw.sum() / 2)
    assert second.lfm_grid == "cigre-mv"


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(InputError) as err:
        load_grid("cigre-hv")
    message = str(err.value)
    assert "unknown grid 'cigre-hv'" in message
    for name in BUILT_IN:
        assert name in message


def test_json_round_trip(tmp_path, cigre):
    path = tmp_path / "grid.json"
    pp.to_json(cigre, str(path))
    net = load_grid(path)
    assert len(net.bus) == len(cigre.bus)
    assert net.lfm_grid == str(path)
    assert default_scenario(net).days == ()  # JSON grids use the synthetic day


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("{not json", "not a readable JSON file"),
        ('{"a": 1}', "not a pandapower network"),
    ],
)
def test_bad_json_files_name_the_file(tmp_path, content, expected):
    path = tmp_path / "broken.json"
    path.write_text(content)
    with pytest.raises(InputError) as err:
        load_grid(path)
    assert str(path) in str(err.value) and expected in str(err.value)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(InputError, match="file not found"):
        load_grid(tmp_path / "absent.json")


def test_net_without_slack_is_rejected(tmp_path):
    net = pp.create_empty_network()
    pp.create_bus(net, vn_kv=20.0)
    path = tmp_path / "noslack.json"
    pp.to_json(net, str(path))
    with pytest.raises(InputError, match="ext_grid"):
        load_grid(path)
