"""Populations of flexibility service providers, read from TOML.

A population file lists FSPs under `[[fsp]]`. Every FSP has an `id`, a `type` and a
`learner` (or takes `[defaults].learner`); its assets depend on the type:

    [[fsp]]                      # a PV inverter: the share of the PV at one bus
    id = "pv_11"
    type = "pv_inverter"
    bus = 11
    share = 0.8                  # of the PV connected at the bus (default 1.0)
    oversize = 1.1               # inverter S / rated PV (default 1.1)
    cost = { P_down = 60.0, Q_up = 4.0, Q_down = 4.0 }   # EUR/MWh, EUR/MVArh

    [[fsp]]                      # an EV fleet: a share of the EV charging at one bus
    id = "ev_8"
    type = "ev_fleet"
    bus = 8
    charger_mw = 1.0
    window = [17, 7]
    v2g_share = 0.3
    cost = { P_up = 90.0, P_down = 30.0, Q_up = 6.0, Q_down = 6.0 }

    [[fsp]]                      # an aggregator: a portfolio over several buses
    id = "agg_north"
    type = "der_aggregator"
    cost = { P_up = 70.0, P_down = 40.0 }          # defaults for its assets
    assets = [
      { kind = "flexible_load", bus = 5, share = 0.3, shift = true },
      { kind = "storage", bus = 9, power_mw = 0.5, energy_mwh = 1.0, soc_initial = 0.5,
        efficiency = 0.9, cost = { P_up = 50.0, P_down = 50.0, Q_up = 3.0, Q_down = 3.0 } },
      { kind = "generator", bus = 7, share = 0.5 },
    ]

Asset kinds and their parameters are listed in `lfm_abm.agents.assets.ASSET_KINDS`.
Errors name the file, the FSP (and asset) and the field: the values are checked by the
settings classes of `lfm_abm.agents.assets` (`lfm_abm.schema`), the structure here.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Annotated

from lfm_abm.agents.assets import ASSET_KINDS, AssetSpec, true_costs
from lfm_abm.agents.inventory import GridInventory
from lfm_abm.errors import InputError
from lfm_abm.schema import Field, Float, build, settings

FSP_TYPES = {
    "pv_inverter": "pv",
    "ev_fleet": "ev",
    "der_aggregator": None,  # assets listed explicitly
}
AGGREGATOR_KINDS = ("flexible_load", "storage", "generator", "pv", "ev")
_COMMON = {"id", "type", "learner", "cost"}
#: Fields of an asset's table that are not parameters of its kind.
_PLACE = ("kind", "bus", "share", "cost")


@dataclass(frozen=True)
class FSPSpec:
    """One FSP as declared: who, which assets, which learner."""

    id: str
    type: str
    assets: tuple[AssetSpec, ...]
    learner: Mapping[str, object] = field(default_factory=dict)

    @property
    def families(self) -> tuple[str, ...]:
        """Product families (P, Q) any of its assets offers: one learner each."""
        found = {product[0] for asset in self.assets for product in asset.cost}
        return tuple(f for f in ("P", "Q") if f in found)


@dataclass(frozen=True)
class Population:
    """All FSPs of a study, with where they came from (for error messages)."""

    fsps: tuple[FSPSpec, ...]
    source: str = "population"

    def __len__(self) -> int:
        return len(self.fsps)


def load_population(path: str | Path) -> Population:
    """Read and validate a population TOML file (structure only; see `check_against`)."""
    path = Path(path)
    if not path.is_file():
        raise InputError("file not found", source=str(path), field="population")
    try:
        data = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"not valid TOML ({exc})", source=str(path), field="population") from exc
    return population_from_dict(data, str(path))


def population_from_dict(data: Mapping[str, object], source: str = "population") -> Population:
    """Build a Population from parsed TOML, validating every FSP and field."""
    unknown = set(data) - {"fsp", "defaults"}
    if unknown:
        raise InputError(f"unknown table {sorted(unknown)[0]!r}", source=source,
                         field=sorted(unknown)[0], allowed=["fsp", "defaults"])
    defaults = data.get("defaults", {})
    if not isinstance(defaults, dict) or set(defaults) - {"learner"}:
        raise InputError("[defaults] may only hold 'learner'", source=source, field="defaults")
    entries = data.get("fsp", [])
    if not isinstance(entries, list) or not entries:
        raise InputError("the population has no FSPs (add [[fsp]] tables)", source=source,
                         field="fsp")
    fsps, seen = [], set()
    for position, entry in enumerate(entries, start=1):
        spec = _fsp(entry, position, defaults.get("learner", {"kind": "roth-erev"}), source)
        if spec.id in seen:
            raise InputError(f"FSP id {spec.id!r} appears twice", source=source,
                             field=f"fsp {spec.id}: id")
        seen.add(spec.id)
        fsps.append(spec)
    return Population(tuple(fsps), source)


def _fsp(entry: object, position: int, default_learner: Mapping, source: str) -> FSPSpec:
    if not isinstance(entry, dict):
        raise InputError("must be a table", source=source, field=f"fsp #{position}")
    fsp_id = entry.get("id")
    if not isinstance(fsp_id, str) or not fsp_id:
        raise InputError("missing or empty 'id'", source=source, field=f"fsp #{position}: id")
    where = f"fsp {fsp_id}"
    kind = entry.get("type")
    if kind not in FSP_TYPES:
        raise InputError(f"unknown type {kind!r}", source=source, field=f"{where}: type",
                         allowed=FSP_TYPES)
    learner = entry.get("learner", default_learner)
    if not isinstance(learner, dict):
        raise InputError("must be a table such as { kind = \"ucb1\" }", source=source,
                         field=f"{where}: learner")
    default_cost = _cost(entry.get("cost", {}), source, where)
    if kind == "der_aggregator":
        extra = set(entry) - _COMMON - {"assets"}
        if extra:
            raise InputError(f"unknown field {sorted(extra)[0]!r}", source=source,
                             field=f"{where}: {sorted(extra)[0]}",
                             allowed=sorted(_COMMON | {"assets"}))
        raw_assets = entry.get("assets")
        if not isinstance(raw_assets, list) or not raw_assets:
            raise InputError("an aggregator needs a non-empty 'assets' list", source=source,
                             field=f"{where}: assets")
        assets = tuple(_asset(a, a.get("kind") if isinstance(a, dict) else None, default_cost,
                              source, f"{where}: assets[{i}]", AGGREGATOR_KINDS)
                       for i, a in enumerate(raw_assets))
    else:
        body = {k: v for k, v in entry.items() if k not in ("id", "type", "learner")}
        assets = (_asset(body, FSP_TYPES[kind], {}, source, where, (FSP_TYPES[kind],)),)
    return FSPSpec(fsp_id, kind, assets, dict(learner))


@contextmanager
def _at(source: str, where: str) -> Iterator[None]:
    """Name the file and the FSP (and asset) in the input errors of the values checked."""
    try:
        yield
    except InputError as exc:
        raise exc.located(source, f"{where}: {exc.field}") from None


def _cost(raw: object, source: str, where: str) -> dict[str, float]:
    if not isinstance(raw, dict):
        raise InputError("must be a table of product = EUR/MWh", source=source,
                         field=f"{where}: cost")
    with _at(source, where):
        return true_costs(raw)


def _asset(raw: object, kind: object, default_cost: Mapping[str, float], source: str,
           where: str, allowed_kinds: tuple[str, ...]) -> AssetSpec:
    if not isinstance(raw, dict):
        raise InputError("must be a table", source=source, field=where)
    if kind not in allowed_kinds:
        raise InputError(f"unknown asset kind {kind!r}", source=source, field=f"{where}: kind",
                         allowed=allowed_kinds)
    info = ASSET_KINDS[kind]
    allowed = {*_PLACE, *(f.name for f in fields(info["params"]))}
    extra = set(raw) - allowed
    if extra:
        raise InputError(f"unknown field {sorted(extra)[0]!r}", source=source,
                         field=f"{where}: {sorted(extra)[0]}", allowed=sorted(allowed))
    own = _cost(raw.get("cost", {}), source, where)
    for product in own:
        if product not in info["products"]:
            raise InputError(f"a {kind} asset cannot offer {product}", source=source,
                             field=f"{where}: cost.{product}", allowed=info["products"])
    # The aggregator's default costs apply to whichever products each asset can offer.
    cost = {p: c for p, c in default_cost.items() if p in info["products"]} | own
    if not cost:
        raise InputError("no true cost for any product it can offer", source=source,
                         field=f"{where}: cost", allowed=info["products"])
    params = {name: value for name, value in raw.items() if name not in _PLACE}
    place = {name: raw[name] for name in ("bus", "share") if name in raw}
    with _at(source, where):
        return AssetSpec(kind=kind, cost=cost, params=params, **place)


def check_costs_below_reservation(population: Population, reservation_price: float) -> None:
    """True costs must stay below the DSO's reservation price.

    The DSO admits no bid above it, so an asset dearer than that could never sell
    without a loss; such a population is a mistake in the input, not a market outcome.
    """
    for fsp in population.fsps:
        for i, asset in enumerate(fsp.assets):
            for product, cost in asset.cost.items():
                if cost >= reservation_price:
                    where = f"fsp {fsp.id}: " + (f"assets[{i}]: " if fsp.type ==
                                                 "der_aggregator" else "")
                    raise InputError(f"true cost {cost} is not below the DSO's reservation "
                                     f"price {reservation_price}", source=population.source,
                                     field=f"{where}cost.{product}")


def check_against(population: Population, inventory: GridInventory, buses: list[int]) -> None:
    """Check every asset against the grid: its bus can be bid at and has what it claims.

    Shares of the same kind at the same bus may not add up to more than the whole: two
    FSPs cannot both sell the same PV.
    """
    allowed = sorted(int(b) for b in buses)
    claimed: dict[tuple[str, int], float] = {}
    for fsp in population.fsps:
        for i, asset in enumerate(fsp.assets):
            where = f"fsp {fsp.id}: " + (f"assets[{i}]: " if fsp.type == "der_aggregator" else "")
            if asset.bus not in allowed:
                raise InputError(f"bus {asset.bus} is not a bus where injections can be bid",
                                 source=population.source, field=f"{where}bus", allowed=allowed)
            needs = ASSET_KINDS[asset.kind]["needs"]
            if needs and asset.bus not in inventory.buses_with(needs):
                raise InputError(f"there is no {needs} at bus {asset.bus} in this grid and "
                                 "scenario", source=population.source, field=f"{where}bus",
                                 allowed=inventory.buses_with(needs))
            if needs:
                key = (needs, asset.bus)
                claimed[key] = claimed.get(key, 0.0) + asset.share
                if claimed[key] > 1.0 + 1e-9:
                    raise InputError(f"FSPs claim {claimed[key]:.3f} of the {needs} at bus "
                                     f"{asset.bus}, more than all of it",
                                     source=population.source, field=f"{where}share")


@settings("fsp_costs")
class CostScales:
    """Factors on every FSP's true costs by product family (a study's `[fsp_costs]`).

    The ranking of designs rests on what Q costs against P; a study sweeps these factors
    (`"fsp_costs.Q_scale" = [0.5, 1, 2, 4]`) instead of trusting one cost assumption.
    A factor is > 0: a zero cost would be no price at all.
    """

    P_scale: Annotated[Float, Field(gt=0)] = 1.0
    Q_scale: Annotated[Float, Field(gt=0)] = 1.0

    @classmethod
    def from_dict(cls, raw: Mapping[str, object], source: str) -> CostScales:
        """Build from a TOML table; unknown keys name the allowed ones."""
        return build(cls, raw, source)

    def apply(self, population: Population) -> Population:
        """The population with every true cost multiplied by its family's factor."""
        if (self.P_scale, self.Q_scale) == (1.0, 1.0):
            return population
        factor = {"P": self.P_scale, "Q": self.Q_scale}
        return replace(population, fsps=tuple(
            replace(fsp, assets=tuple(
                replace(asset, cost={p: c * factor[p[0]] for p, c in asset.cost.items()})
                for asset in fsp.assets))
            for fsp in population.fsps))
