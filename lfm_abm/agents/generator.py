"""Place a population on any grid from a few shares and densities.

Buses are drawn with probability proportional to 1 + need_bias x relevance, where a
bus's relevance is how strongly an injection there moves the day's needs (sum over
needs of |sensitivity| relative to that need's most sensitive bus, scaled to [0, 1]).
need_bias = 0 places FSPs uniformly; larger values crowd them where the grid has needs,
while some still land elsewhere, so competition is local and uneven. True costs are
drawn uniformly from the documented ranges in `COST_RANGES` (EUR/MWh, EUR/MVArh).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import field
from typing import Annotated, TypeVar

import numpy as np

from lfm_abm.agents.assets import AssetSpec, Share
from lfm_abm.agents.inventory import GridInventory
from lfm_abm.agents.population import FSPSpec, Population
from lfm_abm.errors import InputError
from lfm_abm.market.clearing import MarketCase
from lfm_abm.schema import Field, Float, Int, describe, field_name, settings

#: True-cost ranges per asset kind and product (uniform draws), EUR/MWh or EUR/MVArh.
#: PV curtailment loses feed-in revenue; EV shifting costs discomfort; loads shed at a
#: high value of service; batteries pay degradation and losses; generators fuel or lost
#: margin; reactive power costs inverter losses and wear.
COST_RANGES: dict[str, dict[str, tuple[float, float]]] = {
    "pv": {"P_down": (50.0, 110.0), "Q_up": (2.0, 8.0), "Q_down": (2.0, 8.0)},
    "ev": {"P_up": (60.0, 150.0), "P_down": (20.0, 60.0), "Q_up": (4.0, 10.0),
           "Q_down": (4.0, 10.0)},
    "flexible_load": {"P_up": (80.0, 200.0), "P_down": (20.0, 50.0)},
    "storage": {"P_up": (40.0, 80.0), "P_down": (40.0, 80.0), "Q_up": (2.0, 6.0),
                "Q_down": (2.0, 6.0)},
    "generator": {"P_up": (70.0, 120.0), "P_down": (30.0, 60.0), "Q_up": (3.0, 8.0),
                  "Q_down": (3.0, 8.0)},
}


#: The smallest share of a bus's load an aggregator takes as a flexible load.
MIN_LOAD_SHARE = 0.1


T = TypeVar("T")
#: [low, high] of a uniform draw.
Interval = Annotated[tuple[T, ...], Field(min_length=2, max_length=2)]
Count = Annotated[Int, Field(ge=0)]
Positive = Annotated[Float, Field(gt=0)]


@settings("population")
class GeneratorSettings:
    """How many FSPs of each type, how much of the grid they control, where they sit.

    Fields are named as the `population` command's flags (`--pv-density`), which set them.
    """

    pv_density: Share = 0.5  # share of PV buses that get a PV inverter FSP
    pv_share: Interval[Share] = (0.3, 0.9)  # share of the bus's PV it controls
    # PV owners per chosen bus (they split the share): for large tests
    pv_per_bus: Annotated[Int, Field(ge=1)] = 1
    ev_fleets: Count = 4
    ev_share: Interval[Share] = (0.5, 1.0)
    v2g_share: Share = 0.3
    aggregators: Count = 2
    assets_per_aggregator: Annotated[Int, Field(ge=1)] = 4
    storage_mw: Interval[Positive] = (0.2, 1.0)
    storage_hours: Interval[Positive] = (1.0, 2.0)  # energy / power of batteries, h
    shift_share: Share = 0.5  # chance that a flexible load recovers shed energy
    need_bias: Annotated[Float, Field(ge=0)] = 2.0
    learner: Mapping[str, object] = field(default_factory=lambda: {"kind": "roth-erev"})

    def __post_init__(self) -> None:
        for name in ("pv_share", "ev_share", "storage_mw", "storage_hours"):
            low, high = getattr(self, name)
            if low > high:
                raise InputError(f"invalid value {[low, high]}: low above high",
                                 field=field_name(self.SECTION, name),
                                 allowed=[f"{describe(type(self), name)}, low <= high"])


def bus_relevance(case: MarketCase) -> dict[int, float]:
    """How strongly an injection at each bus moves the day's needs, scaled to [0, 1].

    Each need contributes |sensitivity| / its largest |sensitivity| over buses, so needs
    of different units (MVA, p.u.) weigh alike; the sum is scaled to a maximum of 1.
    """
    score = {int(b): 0.0 for b in case.buses}
    for need in case.baseline_needs.itertuples():
        sens = case.points[need.period].sens
        if need.element == "bus":
            row = sens.dv_dp.loc[need.element_id] if need.element_id in sens.dv_dp.index else None
        elif need.element == "line":
            row = sens.di_dp.loc[need.element_id]
        else:
            row = sens.dt_dp.loc[need.element_id]
        if row is None:
            continue
        top = row.abs().max()
        if top > 0:
            for bus, value in (row.abs() / top).items():
                score[int(bus)] += float(value)
    top = max(score.values(), default=0.0)
    return {bus: value / top if top > 0 else 0.0 for bus, value in score.items()}


def _draw(rng: np.random.Generator, candidates: list[int], k: int, relevance: dict[int, float],
          bias: float) -> list[int]:
    if not candidates or k <= 0:
        return []
    weight = np.array([1.0 + bias * relevance.get(b, 0.0) for b in candidates])
    k = min(k, len(candidates))
    picked = rng.choice(len(candidates), size=k, replace=False, p=weight / weight.sum())
    return sorted(candidates[i] for i in picked)


def _costs(rng: np.random.Generator, kind: str) -> dict[str, float]:
    return {p: round(float(rng.uniform(*bounds)), 2) for p, bounds in COST_RANGES[kind].items()}


def generate_population(case: MarketCase, inventory: GridInventory, settings: GeneratorSettings,
                        seed: int, source: str = "generated population") -> Population:
    """A population for `case`'s grid and day; same seed, same population.

    Energy limits (battery hours, shiftable loads) come from a second stream of the
    seed, so they do not move what the first stream places.
    """
    rng = np.random.default_rng(seed)
    energy_rng = np.random.default_rng([seed, 1])
    relevance = bus_relevance(case)
    bids_at = {int(b) for b in case.buses}
    learner = dict(settings.learner)
    fsps: list[FSPSpec] = []
    pv_buses = [b for b in inventory.buses_with("pv") if b in bids_at]
    for bus in _draw(rng, pv_buses, round(settings.pv_density * len(pv_buses)), relevance,
                     settings.need_bias):
        share = round(float(rng.uniform(*settings.pv_share)) / settings.pv_per_bus, 4)
        for owner in range(settings.pv_per_bus):
            asset = AssetSpec("pv", bus, _costs(rng, "pv"), share, {"oversize": 1.1,
                                                                    "q_at_night": False})
            name = f"pv_{bus}" if settings.pv_per_bus == 1 else f"pv_{bus}_{owner + 1}"
            fsps.append(FSPSpec(name, "pv_inverter", (asset,), learner))
    ev_buses = [b for b in inventory.buses_with("ev") if b in bids_at]
    for bus in _draw(rng, ev_buses, settings.ev_fleets, relevance, settings.need_bias):
        share = round(float(rng.uniform(*settings.ev_share)), 3)
        peak = float(inventory.at("ev", bus).max()) * share
        asset = AssetSpec("ev", bus, _costs(rng, "ev"), share, {
            "charger_mw": round(max(1.5 * peak, 0.05), 3), "window": (17, 7),
            "v2g_share": settings.v2g_share})
        fsps.append(FSPSpec(f"ev_{bus}", "ev_fleet", (asset,), learner))
    load_buses = [b for b in inventory.buses_with("load") if b in bids_at]
    gen_buses = [b for b in inventory.buses_with("generator") if b in bids_at]
    generator_left: dict[int, float] = {}  # share of each bus's generation not yet owned
    load_left: dict[int, float] = {}  # share of each bus's load not yet owned
    for index in range(settings.aggregators):
        assets = []
        for bus in _draw(rng, load_buses, settings.assets_per_aggregator, relevance,
                         settings.need_bias):
            kind = str(rng.choice(["flexible_load", "storage"]))
            if kind == "storage" or load_left.get(bus, 1.0) < MIN_LOAD_SHARE:
                power = round(float(rng.uniform(*settings.storage_mw)), 3)
                hours = float(energy_rng.uniform(*settings.storage_hours))
                params = {"power_mw": power, "energy_mwh": round(power * hours, 3),
                          "soc_initial": 0.5, "efficiency": 0.9}
                assets.append(AssetSpec("storage", bus, _costs(rng, "storage"), 1.0, params))
            else:
                # Never more than is left of the bus's load: shares of one resource add up
                # to at most all of it (checked by `check_against`).
                drawn, left = float(rng.uniform(MIN_LOAD_SHARE, 0.3)), load_left.get(bus, 1.0)
                share = round(drawn, 3) if drawn <= left else math.floor(left * 1000) / 1000
                load_left[bus] = load_left.get(bus, 1.0) - share
                shift = bool(energy_rng.random() < settings.shift_share)
                assets.append(AssetSpec("flexible_load", bus, _costs(rng, "flexible_load"),
                                        share, {"increase": 0.2, "shift": shift}))
        free = [b for b in gen_buses if generator_left.get(b, 1.0) >= 0.5]
        if free:
            bus = _draw(rng, free, 1, relevance, settings.need_bias)[0]
            generator_left[bus] = generator_left.get(bus, 1.0) - 0.5
            assets.append(AssetSpec("generator", bus, _costs(rng, "generator"), 0.5, {}))
        if assets:
            fsps.append(FSPSpec(f"agg_{index + 1}", "der_aggregator", tuple(assets), learner))
    if not fsps:
        raise InputError("the settings place no FSP on this grid", field="pv_density")
    return Population(tuple(fsps), source)


def _value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{k} = {_value(v)}" for k, v in value.items()) + " }"
    return repr(value)


def _asset_fields(asset: AssetSpec) -> dict[str, object]:
    # TOML has no null: a parameter left at None (soc_final) is left out, which reads back
    # as the same default.
    params = {name: value for name, value in asset.params.items() if value is not None}
    return {"bus": asset.bus, "share": asset.share, **params, "cost": dict(asset.cost)}


def population_to_toml(population: Population, header: str = "") -> str:
    """TOML text that `load_population` reads back into the same population."""
    lines = [f"# {line}" for line in header.splitlines()]
    for fsp in population.fsps:
        lines += ["", "[[fsp]]", f'id = "{fsp.id}"', f'type = "{fsp.type}"']
        if fsp.type == "der_aggregator":
            lines.append("assets = [")
            for asset in fsp.assets:
                lines.append(f"  {_value({'kind': asset.kind, **_asset_fields(asset)})},")
            lines.append("]")
        else:
            lines += [f"{k} = {_value(v)}" for k, v in _asset_fields(fsp.assets[0]).items()]
        lines.append(f"learner = {_value(dict(fsp.learner))}")
    return "\n".join(lines) + "\n"
