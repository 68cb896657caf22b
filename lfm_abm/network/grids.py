"""Built-in grids and pandapower JSON files, behind one `load_grid` call.

Each built-in grid is a pandapower net whose element values are *reference* values
(peak load, rated PV); a scenario (see `scenarios.py`) turns them into per-period
injections. The grid name is stored on the net (`net.lfm_grid`) so that the
default scenario can be found from the net alone.
"""

from __future__ import annotations

import copy
import functools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandapower as pp

from lfm_abm.errors import InputError
from lfm_abm.network.grid_checks import check_grid
from lfm_abm.network.scenarios import Scenario, store_reference
from lfm_abm.network.simbench_data import simbench_net

#: Multiplier on the CIGRE MV PV units (10-40 kW each in the original) so that a sunny
#: midday with light load overloads Line 1-2 by reverse flow and lifts feeder-end
#: voltages above 1.05 p.u.; the evening peak keeps the original's undervoltage.
CIGRE_PV_MULTIPLIER = 45.0


@dataclass(frozen=True)
class GridInfo:
    """A built-in grid: how to build it and what it is good for."""

    name: str
    description: str
    build: Callable[[], pp.pandapowerNet]
    default_scenario: Scenario = field(default_factory=Scenario)


def _cigre_mv() -> pp.pandapowerNet:
    import pandapower.networks as pn

    net = pn.create_cigre_network_mv(with_der="pv_wind")
    pv = net.sgen["type"] == "PV"
    net.sgen.loc[pv, ["p_mw", "sn_mva"]] *= CIGRE_PV_MULTIPLIER
    net.sgen["max_p_mw"] = net.sgen["p_mw"]
    net.name = "CIGRE MV with PV/wind, PV x45"
    return net


def _simbench(code: str) -> Callable[[], pp.pandapowerNet]:
    def build() -> pp.pandapowerNet:
        net = copy.deepcopy(simbench_net(code))
        net.simbench_code = code
        return net

    return build


BUILT_IN: dict[str, GridInfo] = {
    info.name: info
    for info in (
        GridInfo(
            "cigre-mv",
            "CIGRE MV benchmark (15 buses) with PV x45 and wind; synthetic daily shapes",
            _cigre_mv,
            # Evening EV charging adds an overload and deepens the undervoltage at 19-21 h.
            Scenario(ev_peak_mw=1.5, source="cigre-mv default scenario"),
        ),
        GridInfo(
            "simbench-semiurb",
            "SimBench 1-MV-semiurb--2-sw (122 buses) with its real yearly profiles",
            _simbench("1-MV-semiurb--2-sw"),
            # 2030-style growth: PV x1.5 (incl. PV home storage), 10 MW evening EV peak.
            # 2016-07-25 is the day with the largest overload in a scan of every 2nd day
            # at 11-14 h and 18-20 h under this growth (line 109 %, 1.075 p.u.).
            Scenario(days=("2016-07-25",), pv_scale=1.5, ev_peak_mw=10.0,
                     source="simbench-semiurb default scenario"),
        ),
        GridInfo(
            "simbench-rural",
            "SimBench 1-MV-rural--2-sw (99 buses) with its real yearly profiles",
            _simbench("1-MV-rural--2-sw"),
            # The rural grid is weaker: PV x1.3 already gives overloads and overvoltage.
            Scenario(days=("2016-07-25",), pv_scale=1.3, ev_peak_mw=6.0,
                     source="simbench-rural default scenario"),
        ),
        GridInfo(
            "simbench-urban",
            "SimBench 1-MV-urban--2-sw (larger urban MV grid) with its real yearly profiles",
            _simbench("1-MV-urban--2-sw"),
            # Strong urban cables: only heavy growth (PV x3, 20 MW EV) overloads lines,
            # and voltages stay in band, so this grid has congestion needs only.
            Scenario(days=("2016-07-25",), pv_scale=3.0, ev_peak_mw=20.0,
                     source="simbench-urban default scenario"),
        ),
    )
}


@functools.lru_cache(maxsize=8)
def pristine_grid(name: str) -> pp.pandapowerNet:
    """The built-in grid as built, shared within the process: never modify it."""
    net = BUILT_IN[name].build()
    net.lfm_grid = name
    store_reference(net)
    return net


def load_grid(name_or_path: str | Path) -> pp.pandapowerNet:
    """Return a fresh pandapower net for a built-in grid name or a pandapower JSON file.

    Built-in nets are built once per process and deep-copied, so callers may modify
    the result freely. Unknown names and unreadable files raise `InputError`.
    """
    name = str(name_or_path)
    if name in BUILT_IN:
        return copy.deepcopy(pristine_grid(name))
    path = Path(name)
    if path.suffix.lower() == ".json" or path.exists():
        return _load_json(path)
    raise InputError(
        f"unknown grid {name!r}; give a built-in name or a pandapower JSON file",
        field="grid",
        allowed=sorted(BUILT_IN),
    )


def _load_json(path: Path) -> pp.pandapowerNet:
    if not path.is_file():
        raise InputError("file not found", source=str(path), field="grid")
    try:
        text = path.read_text()
        data = json.loads(text)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"not a readable JSON file ({exc})", source=str(path),
                         field="grid") from exc
    if not isinstance(data, dict) or data.get("_class") != "pandapowerNet":
        raise InputError("not a pandapower network (save one with pandapower.to_json)",
                         source=str(path), field="grid")
    try:
        net = pp.from_json_string(text)
    except Exception as exc:  # pandapower raises many types for a malformed net
        raise InputError(
            f"not a pandapower network ({type(exc).__name__}: {exc})", source=str(path),
            field="grid",
        ) from exc
    if not isinstance(net, pp.pandapowerNet):
        raise InputError("not a pandapower network (save one with pandapower.to_json)",
                         source=str(path), field="grid")
    check_grid(net, str(path))  # no slack, dangling branch, missing bus, NaN, ...
    net.lfm_grid = str(path)
    store_reference(net)
    return net


def default_scenario(net: pp.pandapowerNet) -> Scenario:
    """The documented default scenario of a built-in grid; synthetic shapes otherwise."""
    info = BUILT_IN.get(str(net.get("lfm_grid", "")))
    return info.default_scenario if info else Scenario(source="synthetic default scenario")
