"""A population for any built-in grid: the shipped file where there is one, else generated.

The shipped populations (`agents/*.toml` in the repository) are hand-placed for their
grid's needs; other grids get one from the generator, sized by their PV buses.
"""

from __future__ import annotations

from pathlib import Path

from lfm_abm.agents.generator import GeneratorSettings, generate_population
from lfm_abm.agents.inventory import grid_inventory
from lfm_abm.agents.population import Population, load_population
from lfm_abm.day import shared_case
from lfm_abm.market.params import MarketParams
from lfm_abm.network.grids import default_scenario, load_grid
from lfm_abm.network.needs import NeedLimits

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = {"cigre-mv": ROOT / "agents" / "cigre_mv.toml",
           "simbench-semiurb": ROOT / "agents" / "simbench_semiurb.toml"}


def generated_population(grid: str, fsps: int | None = None, seed: int = 0) -> Population:
    """A population generated for the grid's default day: about `fsps` FSPs (or PV buses / 2)."""
    case = shared_case(grid, default_scenario(load_grid(grid)), None, NeedLimits(),
                       MarketParams())
    inventory = grid_inventory(case)
    pv_buses = len(inventory.buses_with("pv"))
    target = fsps or max(10, pv_buses // 2)
    per_bus = max(1, -(-target // max(pv_buses, 1)))
    settings = GeneratorSettings(pv_density=min(1.0, target / max(pv_buses * per_bus, 1)),
                                 pv_per_bus=per_bus, ev_fleets=max(1, target // 25),
                                 aggregators=max(1, target // 40))
    return generate_population(case, inventory, settings, seed, source=f"generated for {grid}")


def population_for(grid: str, fsps: int | None = None, seed: int = 0) -> Population:
    """The grid's shipped population, or one generated with about `fsps` FSPs."""
    if fsps is None and grid in SHIPPED and SHIPPED[grid].is_file():
        return load_population(SHIPPED[grid])
    return generated_population(grid, fsps, seed)
