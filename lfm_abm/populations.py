"""Many populations: a study's FSPs drawn N times from the generator, beside its own file.

One population is one draw of where FSPs sit and what their assets cost; a design that
wins on it may lose on another. A study's `[populations]` table asks for more:

    [populations]
    draws = 4              # populations drawn with seeds first_seed .. first_seed + 3
    first_seed = 0
    shipped = true         # the study's own population file runs too
    generator = { pv_density = 0.55, ev_fleets = 5, aggregators = 3 }   # `lfm-abm population`

Each population is drawn by `agents.generator.generate_population` on the grid's day of
the study's scenario (the day a `[days]` rule chooses from is not known to it) and is a
run dimension: every design, setting and seed runs on each. Results carry a
`population` column ("shipped", "drawn-0", ...); summaries and paired differences take
each population's mean over seeds and their 95 % CI over populations, so the interval
covers both the draw of the population and the seeds (`results.kpis`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

from lfm_abm.agents.population import Population, load_population
from lfm_abm.errors import InputError
from lfm_abm.network.needs import NeedLimits
from lfm_abm.network.scenarios import Scenario
from lfm_abm.schema import MAX_COUNT, Bool, Field, Int, settings

SHIPPED = "shipped"


@settings("populations")
class PopulationDraws:
    """The [populations] table of a study."""

    draws: Annotated[Int, Field(ge=1, le=1000)] = 4
    first_seed: Annotated[Int, Field(ge=0, le=MAX_COUNT)] = 0
    shipped: Bool = True
    generator: Mapping[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.generator_settings()  # a bad generator field fails when the study is read

    def generator_settings(self):  # -> GeneratorSettings (imported late: it needs markets)
        """The generator's settings, errors naming `populations.generator.<field>`."""
        from lfm_abm.agents.generator import GeneratorSettings

        try:
            return GeneratorSettings(**dict(self.generator))
        except InputError as exc:
            name = (exc.field or "").rpartition(".")[2]
            raise exc.located(field=f"populations.generator.{name}") from None
        except TypeError as exc:  # not a table
            raise InputError(f"must be a table of generator settings ({exc})",
                             field="populations.generator") from None


@dataclass(frozen=True)
class StudyPopulation:
    """One population a study runs: its label, the FSPs, and its TOML (the record)."""

    label: str
    population: Population
    text: str


def study_populations(shipped: str | Path, grid: str, scenario: Scenario, limits: NeedLimits,
                      draws: PopulationDraws | None) -> list[StudyPopulation]:
    """The study's own population (unless `draws.shipped` is false) and its drawn ones."""
    path = Path(shipped)
    own = StudyPopulation(SHIPPED, load_population(path), path.read_text())
    if draws is None:
        return [own]
    from lfm_abm.agents.generator import generate_population, population_to_toml
    from lfm_abm.agents.inventory import grid_inventory
    from lfm_abm.day import shared_case
    from lfm_abm.market.params import MarketParams

    day = scenario.days[0] if scenario.days else None
    case = shared_case(grid, scenario, day, limits, MarketParams())
    inventory = grid_inventory(case)
    settings = draws.generator_settings()
    drawn = []
    for seed in range(draws.first_seed, draws.first_seed + draws.draws):
        label = f"drawn-{seed}"
        population = generate_population(case, inventory, settings, seed,
                                         source=f"{path.name}: [populations] {label}")
        header = f"Population {label} for {grid}, drawn with seed {seed} and {settings}"
        drawn.append(StudyPopulation(label, population, population_to_toml(population, header)))
    return ([own] if draws.shipped else []) + drawn
