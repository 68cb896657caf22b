"""Studies: a TOML spec expanded into independent runs, executed, resumed, summarised.

A study is the grid of design x pricing x learner setting x seed, each run `rounds`
rounds. Runs execute in local processes (concurrent.futures) or on a Dask cluster
(`scheduler`); each run streams its tables into its own temporary folder, renamed into
place when complete, and is never recomputed unless its settings change or its files
are damaged; a failing run is recorded with its error and the others go on. One study
at a time writes to an output folder (`folder_lock`), and a study that is killed or
interrupted leaves no worker running (`workers`).

Spec. Paths written in the spec (grid file, population, out) are relative to the spec
file; paths on the command line (`--out`) and the default `out/<name>` are relative to
the working directory.

    [study]
    name = "designs"
    grid = "simbench-semiurb"
    population = "../agents/simbench_semiurb.toml"
    designs = ["CM_P", "CMVC_PQ", "CM_P>VC_Q"]
    reference = "CMVC_PQ"             # paired differences are to this design (default: first)
    pricing = ["pay-as-bid"]          # and/or "locational"
    rounds = 150
    seeds = 4                         # seeds 0..3, or an explicit list
    window = 50                       # last rounds the KPIs average over
    ac_every = 10                     # AC-validate every k-th round
    resample_days = false
    regret = true                     # regret of each run's learned profile (re-clears)
    regret_every = 0                  # also every k rounds (0: only at the end)
    regret_rounds = 4                 # window rounds sampled for the played regret
    references = true                 # random and truthful runs on the same seeds
    out = "../out/designs"

    [learners]                        # labelled settings; default: the population's own
    roth-erev = { kind = "roth-erev" }
    truthful = { kind = "truthful" }

    [scenario]  [limits]  [market]  [actions]  [fsp_costs]   # optional overrides
    [dayahead]                        # optional: a day-ahead stage (market.dayahead)

    [days]                            # optional: a year of days instead of scenario.days
    rule = "representative"           # or "needs" (every day with a need); see lfm_abm.days
    k = 6

    [sweep]                           # optional: one run set per value (all combinations)
    "market.voll" = [300.0, 1000.0, 3000.0]   # labelled "voll=300.0", the `variant`
    "fsp_costs.Q_scale" = [0.5, 1.0, 2.0]     # (or [sweep.market] voll = [...])

A result that moves with an assumption (VOLL, a limit, a growth factor) is a sweep over
it, reported per value, not one number.

References. A learning result means something only against play that learns nothing:
every study also runs, per design x pricing x variant x seed, uniform random play over
the action grid (learner label "random") and truthful bids ("truthful"). They play
`window` rounds (their play is the same in every round, so the window is all there is
to average) and skip the regret and learned-offer tests. Learned minus random, on the
same seed, is what learning did (`results.kpis.reference_kpis`).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import platform
import subprocess
import sys
import time
import tomllib
import traceback
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import as_completed
from dataclasses import asdict, dataclass, field, replace
from importlib import metadata
from pathlib import Path
from typing import Annotated

import pandas as pd

from lfm_abm.agents.population import CostScales
from lfm_abm.days import DaysRule, choose_days
from lfm_abm.errors import InputError
from lfm_abm.files import atomic_file, source_hash, write_text_atomic
from lfm_abm.folder_lock import folder_lock
from lfm_abm.learning import ActionGrid, make_learner
from lfm_abm.market.dayahead import DayAheadParams
from lfm_abm.market.designs import canonical_design, parse_design
from lfm_abm.market.params import MarketParams
from lfm_abm.market.pricing import check_pricing
from lfm_abm.network.grids import default_scenario, load_grid
from lfm_abm.network.needs import NeedLimits
from lfm_abm.network.scenarios import Scenario
from lfm_abm.populations import PopulationDraws, StudyPopulation, study_populations
from lfm_abm.progress import RoundsNote, RoundsWatch
from lfm_abm.results.annual import year_variant
from lfm_abm.results.kpis import REFERENCES
from lfm_abm.schema import MAX_COUNT, Bool, Field, Int, Text, build, settings
from lfm_abm.workers import interrupts_raise, process_pool, sigint_blocked, stop_pool

TABLES_ALLOWED = {"study", "learners", "scenario", "limits", "market", "actions", "fsp_costs",
                  "dayahead", "sweep", "days", "populations"}
#: Settings tables a [sweep] may vary.
SWEEPABLE = ("market", "limits", "scenario", "fsp_costs", "dayahead")
POPULATION_LEARNER = "population"


@dataclass(frozen=True)
class Variant:
    """One point of a study's sweep: its label and the settings it runs with."""

    label: str  # "" without a sweep, else e.g. "voll=300.0"
    scenario: Scenario
    limits: NeedLimits
    market: MarketParams
    fsp_costs: CostScales
    values: Mapping[str, object]  # swept field -> value, e.g. {"voll": 300.0}
    dayahead: DayAheadParams = field(default_factory=DayAheadParams)
    #: Days of the year this variant's day stands for ([days]; None: no year is asked for).
    day_weight: float | None = None

    def describe(self) -> dict:
        """JSON-friendly settings of this variant."""
        return {"scenario": {k: v for k, v in asdict(self.scenario).items() if k != "source"},
                "limits": asdict(self.limits), "market": asdict(self.market),
                "fsp_costs": asdict(self.fsp_costs),
                **({"dayahead": asdict(self.dayahead)} if self.dayahead.enabled else {})}


@dataclass(frozen=True)
class StudySpec:
    """A validated study: everything needed to expand and run it."""

    name: str
    source: str
    grid: str
    population: str
    designs: tuple[str, ...]
    reference: str
    pricing: tuple[str, ...]
    learners: Mapping[str, Mapping[str, object] | None]
    rounds: int
    seeds: tuple[int, ...]
    window: int
    ac_every: int
    resample_days: bool
    out: str
    variants: tuple[Variant, ...]
    sweep: Mapping[str, Mapping[str, list]]
    actions: ActionGrid
    regret: bool = True  # measure each run's learned profile against equilibrium
    regret_every: int = 0  # also every k rounds (0: only at the end)
    regret_rounds: int = 4  # window rounds sampled for the regret of the played strategies
    references: bool = True  # random and truthful runs on the same seeds
    days: DaysRule | None = None  # the [days] rule (variants then carry a day each)
    draws: PopulationDraws | None = None  # the [populations] table
    #: The populations every setting runs on (the population file alone without draws).
    populations: tuple[StudyPopulation, ...] = ()

    def chosen_days(self) -> dict[str, dict[str, float]]:
        """The [days] rule's days and weights per year variant (`results.annual`)."""
        chosen: dict[str, dict[str, float]] = {}
        for variant in self.variants:
            if variant.day_weight is not None:
                year = chosen.setdefault(year_variant(variant.label), {})
                year[str(variant.values["chosen_day"])] = variant.day_weight
        return chosen

    def describe(self) -> dict:
        """JSON-friendly description for the manifest and report."""
        return {"name": self.name, "source": self.source, "grid": self.grid,
                "population": self.population, "designs": list(self.designs),
                "reference": self.reference,
                "pricing": list(self.pricing), "learners": {k: dict(v) if v else None
                                                            for k, v in self.learners.items()},
                "rounds": self.rounds, "seeds": list(self.seeds), "window": self.window,
                "ac_every": self.ac_every, "resample_days": self.resample_days,
                "regret": self.regret, "regret_every": self.regret_every,
                "regret_rounds": self.regret_rounds, "references": self.references,
                **self.variants[0].describe(),
                "sweep": {k: dict(v) for k, v in self.sweep.items()},
                "days": None if self.days is None else {**asdict(self.days),
                                                        "chosen": self.chosen_days()},
                "populations": None if self.draws is None else {
                    **asdict(self.draws), "labels": [p.label for p in self.populations]},
                "variants": {v.label: v.describe() for v in self.variants},
                "actions": asdict(self.actions)}


@settings("study")
class StudyTable:
    """The [study] table as written (paths still relative to the spec file)."""

    grid: Text
    population: Text
    designs: Annotated[tuple[Text, ...], Field(min_length=1)]
    rounds: Annotated[Int, Field(ge=1, le=MAX_COUNT)]
    name: Text | None = None
    reference: Text | None = None
    pricing: Annotated[tuple[Text, ...], Field(min_length=1)] = ("pay-as-bid",)
    seeds: Annotated[Int, Field(ge=1, le=MAX_COUNT)] | Annotated[
        tuple[Annotated[Int, Field(ge=0)], ...], Field(min_length=1)] = 1
    window: Annotated[Int, Field(ge=1)] | None = None
    ac_every: Annotated[Int, Field(ge=1, le=MAX_COUNT)] = 1
    resample_days: Bool = False
    regret: Bool = True
    regret_every: Annotated[Int, Field(ge=0)] = 0
    regret_rounds: Annotated[Int, Field(ge=0, le=1000)] = 4
    references: Bool = True
    out: Text | None = None

    def __post_init__(self) -> None:
        designs = self.design_names
        repeated = sorted({design for design in designs if designs.count(design) > 1})
        if repeated:
            raise InputError(f"designs repeat: {repeated} (names ignore case and spaces)",
                             field="study.designs")
        if self.reference is not None and self.reference_name not in designs:
            raise InputError(f"invalid value {self.reference!r}", field="study.reference",
                             allowed=designs)
        for rule in self.pricing:
            check_pricing(rule)
        if isinstance(self.seeds, tuple) and len(set(self.seeds)) != len(self.seeds):
            raise InputError(f"seeds repeat: {list(self.seeds)}", field="study.seeds")
        if self.window is not None and self.window > self.rounds:
            raise InputError(f"window {self.window} is more than the {self.rounds} rounds: the "
                             "KPIs would average rounds that do not exist", field="study.window",
                             allowed=[f"an integer in [1, {self.rounds}]"])

    @property
    def design_names(self) -> tuple[str, ...]:
        """The designs in their canonical spelling (`cm_p>vc_q` is `CM_P>VC_Q`)."""
        return tuple(canonical_design(design, f"study.designs[{i}]")
                     for i, design in enumerate(self.designs))

    @property
    def reference_name(self) -> str:
        """The reference design, canonical; the first design if none is given."""
        if self.reference is None:
            return self.design_names[0]
        return canonical_design(self.reference, "study.reference")

    @property
    def seed_list(self) -> tuple[int, ...]:
        """The seeds: 0..K-1 for a count K, else the listed ones."""
        return tuple(range(self.seeds)) if isinstance(self.seeds, int) else self.seeds


def load_study(path: str | Path, rounds: int | None = None, seeds: int | None = None,
               out: str | None = None, window: int | None = None) -> StudySpec:
    """Read and validate a study TOML; command-line overrides win over the file."""
    path = Path(path)
    source = str(path)
    if not path.is_file():
        raise InputError("file not found", source=source, field="study")
    try:
        data = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"not valid TOML ({exc})", source=source, field="study") from exc
    unknown = set(data) - TABLES_ALLOWED
    if unknown:
        raise InputError(f"unknown table [{sorted(unknown)[0]}]", source=source,
                         field=sorted(unknown)[0], allowed=sorted(TABLES_ALLOWED))
    if not isinstance(data.get("study"), dict):
        raise InputError("missing [study] table", source=source, field="study")
    study = build(StudyTable, data["study"], source)
    if rounds is not None and window is None and study.window and study.window > rounds:
        window = rounds  # a run shortened on the command line averages all its rounds
    overrides = {key: value for key, value in (("rounds", rounds), ("seeds", seeds),
                                               ("window", window)) if value is not None}
    try:
        study = replace(study, **overrides)
    except InputError as exc:
        raise exc.located(f"{source} with {overrides}") from None
    base = path.parent
    grid = str((base / study.grid).resolve()) if study.grid.endswith(".json") else study.grid
    base_scenario = default_scenario(load_grid(grid))  # fails early, naming known grids
    population_path = (base / study.population).resolve()
    if not population_path.is_file():
        raise InputError(f"population file {study.population!r} not found (paths are relative "
                         "to the study file)", source=source, field="study.population")
    name = study.name or path.stem
    out_dir = out or (os.path.normpath(base / study.out) if study.out else f"out/{name}")
    actions = ActionGrid.from_dict(data.get("actions", {}), source)
    learners = _learners(data.get("learners"), actions, source)
    sweep = _sweep(data.get("sweep"), source)
    variants = tuple(_variant(data, label, overrides, base_scenario, source)
                     for label, overrides in _combinations(sweep))
    draws = (build(PopulationDraws, data["populations"], source) if "populations" in data
             else None)
    populations = study_populations(population_path, grid, variants[0].scenario,
                                    variants[0].limits, draws)
    days = None
    if "days" in data:
        days = build(DaysRule, data["days"], source)
        _check_days_rule(data, sweep, study.resample_days, source)
        try:
            variants = tuple(day for variant in variants
                             for day in _day_variants(variant, grid, days, progress=True))
        except InputError as exc:
            raise exc.located(source) from None
    return StudySpec(
        name=name, source=source, grid=grid, population=str(population_path),
        designs=study.design_names, reference=study.reference_name,
        pricing=study.pricing, learners=learners, rounds=study.rounds,
        seeds=study.seed_list, window=study.window or max(1, study.rounds // 4),
        ac_every=study.ac_every, resample_days=study.resample_days, out=out_dir,
        variants=variants, sweep=sweep, actions=actions, regret=study.regret,
        regret_every=study.regret_every, regret_rounds=study.regret_rounds,
        references=study.references, days=days, draws=draws, populations=tuple(populations))


def _check_days_rule(data: Mapping, sweep: Mapping, resample_days: bool, source: str) -> None:
    """[days] chooses the days: a study may not also name them or resample them."""
    if "days" in data.get("scenario", {}) or "days" in sweep.get("scenario", {}):
        raise InputError("[days] chooses the days: remove scenario.days", source=source,
                         field="scenario.days")
    if resample_days:
        raise InputError("[days] learns each day on its own; resample_days learns one strategy "
                         "across days: choose one", source=source, field="study.resample_days")


def _day_variants(variant: Variant, grid: str, rule: DaysRule,
                  progress: bool = False) -> list[Variant]:
    """One variant per day `rule` chooses for this variant's grid, scenario and limits.

    Labels read "day=2016-07-25" (then the sweep's label); `chosen_day` becomes a swept
    value, so every run's files and the runs table carry it. The weights stay the
    study's (`StudySpec.chosen_days`, in the manifest), not the runs'.
    """
    from lfm_abm.network.year import scan_year

    scan = scan_year(grid, variant.scenario, variant.limits, progress=progress)
    out = []
    for chosen in choose_days(scan, rule):
        label = f"day={chosen.day}" + (f",{variant.label}" if variant.label else "")
        scenario = replace(variant.scenario, days=(chosen.day,))
        out.append(replace(variant, label=label, scenario=scenario, day_weight=chosen.weight,
                           values={"chosen_day": chosen.day, **variant.values}))
    return out


def _sweep(raw: object, source: str) -> dict[str, dict[str, list]]:
    """The [sweep] table: per settings table, per field, a non-empty list of values.

    Accepts `"market.voll" = [...]` keys and `[sweep.market]` tables alike.
    """
    if raw is None:
        return {}
    if not isinstance(raw, dict) or not raw:
        raise InputError("must hold keys such as \"market.voll\" = [values]",
                         source=source, field="sweep", allowed=SWEEPABLE)
    nested: dict[str, dict] = {}
    for key, value in raw.items():
        section, dot, name = key.partition(".")
        if dot:
            nested.setdefault(section, {})[name] = value
        elif isinstance(value, dict):
            nested.setdefault(section, {}).update(value)
        else:
            raise InputError("a swept field is written \"table.field\"", source=source,
                             field=f"sweep.{key}", allowed=SWEEPABLE)
    raw = nested
    for section, table in raw.items():
        if section not in SWEEPABLE:
            raise InputError(f"cannot sweep [{section}]", source=source,
                             field=f"sweep.{section}", allowed=SWEEPABLE)
        if not isinstance(table, dict) or not table:
            raise InputError("must be a table of field = [values]", source=source,
                             field=f"sweep.{section}")
        for key, values in table.items():
            if not isinstance(values, list) or not values:
                raise InputError(f"must be a non-empty list of values, got {values!r}",
                                 source=source, field=f"sweep.{section}.{key}")
    return raw


def _combinations(sweep: Mapping[str, Mapping[str, list]]) -> list[tuple[str, dict]]:
    """(label, {table: {field: value}}) for every combination of swept values."""
    axes = [(section, key, values) for section, table in sweep.items()
            for key, values in table.items()]
    out = []
    for combination in itertools.product(*(values for _, _, values in axes)):
        overrides: dict[str, dict] = {}
        for (section, key, _), value in zip(axes, combination, strict=True):
            overrides.setdefault(section, {})[key] = value
        label = ",".join(f"{key}={_written(value)}" for (_, key, _), value in zip(
            axes, combination, strict=True))
        out.append((label, overrides))
    return out


def _written(value: object) -> str:
    """A swept value as a label writes it: a list as its items joined by "+", or "none"."""
    if isinstance(value, list | tuple):
        return "+".join(str(item) for item in value) or "none"
    return str(value)


def _variant(data: Mapping, label: str, overrides: Mapping[str, Mapping],
             base_scenario: Scenario, source: str) -> Variant:
    """The study's settings tables with one combination of swept values applied."""
    where = f"{source} (sweep {label})" if label else source

    def table(name: str) -> dict:
        return {**data.get(name, {}), **overrides.get(name, {})}

    scenario = Scenario.from_dict(table("scenario"), where, base_scenario)
    values = {key: value for section in overrides.values() for key, value in section.items()}
    return Variant(label, scenario, NeedLimits.from_dict(table("limits"), where),
                   MarketParams.from_dict(table("market"), where),
                   CostScales.from_dict(table("fsp_costs"), where), values,
                   DayAheadParams.from_dict(table("dayahead"), where))


def _learners(raw: object, actions: ActionGrid, source: str) -> dict:
    if raw is None:
        return {POPULATION_LEARNER: None}
    if not isinstance(raw, dict) or not raw:
        raise InputError("must be a table of label = { kind = ... }", source=source,
                         field="learners")
    out = {}
    for label, spec in raw.items():
        if not isinstance(spec, dict):
            raise InputError("must be a table such as { kind = \"ucb1\" }", source=source,
                             field=f"learners.{label}")
        if label in REFERENCES and dict(spec) != REFERENCES[label]:
            raise InputError(f"the label {label!r} is the study's reference run, "
                             f"{REFERENCES[label]}; name other settings differently",
                             source=source, field=f"learners.{label}",
                             allowed=[f'{name} = {{ kind = "{spec["kind"]}" }}'
                                      for name, spec in REFERENCES.items()])
        if spec.get("kind") == POPULATION_LEARNER:
            out[label] = None
            continue
        make_learner(spec, actions, source=f"{source}: learners.{label}")
        out[label] = dict(spec)
    return out


@dataclass(frozen=True)
class RunSpec:
    """One run of a study: its settings, seed and number of rounds."""

    run_id: str
    design: str
    pricing: str
    learner: str
    variant: str
    seed: int
    rounds: int
    settings: object = field(repr=False)  # ModelSettings (kept opaque to stay picklable)
    fingerprint: str = ""
    regret: bool = True
    regret_every: int = 0
    swept: Mapping[str, object] = field(default_factory=dict)  # the variant's swept values
    window: int = 1  # the KPI window: the played regret and learned offers look at it
    regret_rounds: int = 0  # window rounds sampled for the played regret
    reference: bool = False  # a reference run (random or truthful): no regret, no tests
    population: str = ""  # its population's label where the study draws several


def expand(spec: StudySpec) -> list[RunSpec]:
    """All runs of a study, in a stable order (design, pricing, learner, variant, seed).

    Learned settings play `rounds` rounds; the reference runs (`REFERENCES`, unless the
    study turns them off) play the window and follow each design's learned settings.
    """
    from lfm_abm.model import ModelSettings

    grid_file = Path(spec.grid)
    grid_text = grid_file.read_text() if grid_file.is_file() else spec.grid
    code = code_identity()
    learned = {k: v for k, v in spec.learners.items() if k not in REFERENCES}
    references = REFERENCES if spec.references else {
        k: v for k, v in spec.learners.items() if k in REFERENCES}
    settings_sets = [(label, learner, False) for label, learner in learned.items()] + [
        (label, learner, True) for label, learner in references.items()]
    runs = []
    for design, pricing, (label, learner, reference), variant, drawn in itertools.product(
            spec.designs, spec.pricing, settings_sets, spec.variants, spec.populations):
        settings = ModelSettings(
            grid=spec.grid, population=variant.fsp_costs.apply(drawn.population), design=design,
            pricing=pricing,
            scenario=variant.scenario, limits=variant.limits, market=variant.market,
            actions=spec.actions, dayahead=variant.dayahead, learner=learner,
            resample_days=spec.resample_days,
            ac_every=spec.ac_every)
        rounds = spec.window if reference else spec.rounds
        regret = spec.regret and not reference
        for seed in spec.seeds:
            identity = json.dumps({
                "design": design, "pricing": pricing, "learner": learner, "seed": seed,
                "rounds": rounds, "population": drawn.text, "grid_file": grid_text,
                "code": code, "grid": spec.grid, "actions": asdict(spec.actions),
                "ac_every": spec.ac_every, "resample_days": spec.resample_days,
                "regret": regret, "regret_every": spec.regret_every,
                "regret_rounds": spec.regret_rounds, "window": spec.window,
                "reference": reference, **variant.describe()}, sort_keys=True, default=str)
            fingerprint = hashlib.sha256(identity.encode()).hexdigest()[:16]
            slug = design.replace(">", "-then-")
            swept = f"__{variant.label}" if variant.label else ""
            own = drawn.label if spec.draws is not None else ""
            swept += f"__{own}" if own else ""
            runs.append(RunSpec(f"{slug}__{pricing}__{label}{swept}__s{seed}", design,
                                pricing, label, variant.label, seed, rounds, settings,
                                fingerprint, regret, 0 if reference else spec.regret_every,
                                dict(variant.values), spec.window, spec.regret_rounds,
                                reference, own))
    return runs


def code_identity() -> str:
    """Hash of the package's source: results of other code are never reused."""
    return source_hash(Path(__file__).parent, "**/*.py")


class RunFailed(RuntimeError):
    """A run that produced nothing to keep (no round cleared)."""


def run_tags(run: RunSpec) -> dict[str, object]:
    """What every file of a run carries as columns (and `store.run_tags` reads back)."""
    from lfm_abm.results import store

    return store.tags_of({"run_id": run.run_id, "design": run.design, "pricing": run.pricing,
                          "learner": run.learner, "variant": run.variant, "seed": run.seed,
                          "swept": run.swept, "population": run.population})


def _simulate(run: RunSpec, folder: Path) -> dict:
    """Run one simulation, streaming its tables into `folder`; returns its metadata."""
    from lfm_abm.model import LFMModel

    start = time.perf_counter()
    model = LFMModel(run.settings, seed=run.seed, spool=folder, tags=run_tags(run))
    setup = time.perf_counter() - start
    note = RoundsNote(folder)
    for _ in range(run.rounds):
        model.step()
        note(model.round)
        if run.regret_every and model.round % run.regret_every == 0 \
                and model.round < run.rounds:
            model.equilibrium()
    note.close()  # a finished run's folder holds its records only (run.json lists them)
    if not model.rounds_cleared:
        raise RunFailed(f"none of its {model.round} rounds cleared (rounds.parquet holds "
                        "each round's status)")
    if run.regret:
        model.equilibrium(run.window, run.regret_rounds)
    if not run.reference:
        model.learned_structure(run.window)
    model.save_records()
    return {"run_id": run.run_id, "design": run.design, "pricing": run.pricing,
            "learner": run.learner, "variant": run.variant, "seed": run.seed,
            "swept": dict(run.swept), "population": run.population, "rounds": run.rounds,
            "fingerprint": run.fingerprint,
            "seconds": time.perf_counter() - start, "setup_seconds": setup,
            "stage_seconds": dict(model.timings)}


def execute_run(run: RunSpec, out: str | Path) -> dict:
    """Run one simulation in a worker and write its folder under `out`; returns metadata.

    The tables stream into a temporary folder during the run and the folder is renamed
    into place when complete, so neither this process nor the parent ever holds a whole
    run's records, and a failed or killed run leaves nothing that looks finished.
    """
    from lfm_abm.results import store

    out = Path(out)
    with store.writing_run(out, run.run_id) as folder:
        meta = _simulate(run, folder)
        store.publish_run(out, run.run_id, folder, meta)
    return meta


def execute_run_remote(run: RunSpec) -> dict:
    """Run one simulation on a cluster worker with no shared disk: files come back as bytes.

    The run's tables are written to the worker's own temporary folder first, so the
    reply is the compressed Parquet files, not the records in memory.
    """
    import tempfile

    with tempfile.TemporaryDirectory(prefix="lfm-run-") as name:
        meta = _simulate(run, Path(name))
        return {"meta": meta, "files": {path.name: path.read_bytes()
                                        for path in Path(name).iterdir() if path.is_file()}}


def versions() -> dict[str, str]:
    """Versions of Python and the packages that determine results."""
    found = {"python": platform.python_version()}
    for package in ("lfm-abm", "pandapower", "simbench", "highspy", "mesa", "numpy", "scipy",
                    "pandas", "pyarrow", "cvxpy"):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = "not installed"
    return found


class _Serial:
    """A run to execute in this process when its result is asked for (no pool)."""

    def __init__(self, run: RunSpec) -> None:
        self.run = run


def _executor(workers: int, scheduler: str | None, out: Path):
    """submit(run), completed(futures), result(future) -> run metadata, close(abort).

    Local processes and the serial path write each run's folder themselves; a Dask
    cluster sends the files back (its workers need no shared disk) and they are
    installed here. close(abort=True) stops at once: pending runs are cancelled and
    local workers killed.
    """
    from lfm_abm.results import store

    if scheduler:
        try:
            from distributed import Client
            from distributed import as_completed as dask_completed
        except ImportError:
            raise InputError("Dask is not installed: pip install 'lfm-abm[dist]'",
                             field="--scheduler") from None
        client = Client(scheduler)

        def submit(run: RunSpec):
            return client.submit(execute_run_remote, run, pure=False, key=f"lfm-{run.run_id}")

        def result(future) -> dict:
            outcome = future.result()
            meta = outcome["meta"]
            store.install_run(out, meta["run_id"], outcome["files"], meta)
            return meta

        return submit, dask_completed, result, lambda abort: client.close()
    if workers <= 1:
        return (_Serial, iter, lambda serial: execute_run(serial.run, out),
                lambda abort: None)
    pool = process_pool(workers)
    return (lambda run: pool.submit(execute_run, run, out), as_completed,
            lambda future: future.result(),
            lambda abort: stop_pool(pool) if abort else pool.shutdown())


def by_market_day(runs: list[RunSpec]) -> list[RunSpec]:
    """The runs in the order to execute them: those sharing a market day together.

    A worker builds a market day (offer book, pivotal test) once and keeps a few: the
    learned and reference runs of one design and variant, seed after seed, then reuse
    it, where the study's order (design, learner, variant, seed) would cycle through
    every variant between them. Results do not depend on the order (exact replay).
    """
    first: dict[tuple[str, str, str], int] = {}
    for index, run in enumerate(runs):
        first.setdefault((run.design, run.pricing, run.variant), index)
    return sorted(runs, key=lambda run: first[(run.design, run.pricing, run.variant)])


def check_study(spec: StudySpec) -> list[RunSpec]:
    """Expand the study and check its population against the grid, before any output.

    A population naming a bus without the asset it claims, or a bus where nothing can be
    bid, fails here with one clear error instead of failing every run in a worker.
    """
    from lfm_abm.agents.population import check_costs_below_reservation
    from lfm_abm.day import market_day, shared_case

    runs = expand(spec)
    first = spec.variants[0]
    days = first.scenario.days or (None,)
    market_day(shared_case(spec.grid, first.scenario, days[0], first.limits, first.market),
               runs[0].settings.population, parse_design(spec.designs[0]), days[0])
    for drawn in spec.populations:  # as written: each variant scales it
        for variant in spec.variants:
            check_costs_below_reservation(variant.fsp_costs.apply(drawn.population),
                                          variant.market.max_bid_price)
        if any(learner is None for learner in spec.learners.values()):
            for fsp in drawn.population.fsps:
                make_learner(fsp.learner, spec.actions,
                             source=f"{drawn.population.source}: fsp {fsp.id}")
    return runs


def run_study(spec: StudySpec, workers: int = 1, scheduler: str | None = None,
              progress: bool = True, announce: Callable[[], None] | None = None,
              formats: Sequence[str] = ("png",)) -> Path:
    """Execute every unfinished run of a study, then write summary, plots and report.

    The output folder is locked for the whole study (a second study on it refuses,
    naming this one's pid); `announce` is called once the lock is held. SIGINT and
    SIGTERM raise `workers.Interrupted` after stopping the workers; running the same
    study again resumes it.
    """
    from lfm_abm.results import store

    runs = check_study(spec)
    out = Path(spec.out)
    out.mkdir(parents=True, exist_ok=True)
    with folder_lock(out), interrupts_raise():
        if announce is not None:
            announce()
        store.clean_partial(out)
        store.write_network(out, _network_data(spec))
        if spec.draws is not None:  # the drawn FSPs, readable by `load_population`
            (out / "populations").mkdir(exist_ok=True)
            for drawn in spec.populations:
                write_text_atomic(out / "populations" / f"{drawn.label}.toml", drawn.text)
        todo = by_market_day([r for r in runs
                              if not store.is_finished(out, r.run_id, r.fingerprint)])
        manifest = store.read_manifest(out)
        manifest.update({"study": spec.describe(), "versions": versions(),
                         "provenance": provenance()})
        manifest.pop("started", None)  # per session now (older manifests had one)
        session = {"started": time.strftime("%Y-%m-%d %H:%M:%S"),
                   "command": " ".join(sys.argv), "runs_to_do": len(todo)}
        manifest.setdefault("sessions", []).append(session)
        status = manifest.setdefault("runs", {})
        for run in runs:  # the status of every current run, as found on disk now
            previous = status.get(run.run_id, {})
            status[run.run_id] = {**previous, "fingerprint": run.fingerprint,
                                  "status": "pending" if run in todo else "finished"}
        manifest["current_runs"] = [r.run_id for r in runs]
        store.write_manifest(out, manifest)
        if not todo:
            print(f"{spec.name}: nothing to do: {len(runs)} runs already finished "
                  "(summary rebuilt)", flush=True)
        start = time.perf_counter()
        try:
            _execute(todo, len(runs), manifest, out, workers, scheduler,
                     spec.name if progress else None)
        finally:  # an interrupted session's time counts too: it is resumed, not redone
            session.update(ended=time.strftime("%Y-%m-%d %H:%M:%S"),
                           wall_seconds=time.perf_counter() - start,
                           completed=bool(all(status[r.run_id]["status"] != "pending"
                                              for r in runs)))
            manifest["wall_seconds"] = sum(s.get("wall_seconds", 0.0)
                                           for s in manifest["sessions"])
            if session["completed"]:
                manifest["finished"] = session["ended"]
            store.write_manifest(out, manifest)
        summarise_study(out, formats)
    return out


def provenance() -> dict[str, object]:
    """Which code on which machine: git commit (and uncommitted changes), code hash, platform.

    The commit is that of the package's own checkout, None when it is not one (an
    installed wheel: `versions` then names the package version).
    """
    here = Path(__file__).resolve().parent

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", "-C", str(here), *args], capture_output=True,
                                  text=True, timeout=10, check=False)
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    changes = git("status", "--porcelain", "--untracked-files=no") if commit else None
    return {"git_commit": commit, "git_dirty": None if changes is None else bool(changes),
            "code_hash": code_identity(), "platform": platform.platform(),
            "machine": platform.machine(), "cpus": os.cpu_count()}


def _execute(todo: list[RunSpec], n_runs: int, manifest: dict, out: Path, workers: int,
             scheduler: str | None, bar_label: str | None) -> None:
    """Run `todo`, recording each run's status in the manifest as it ends.

    `bar_label` names the progress bar (None: no bar).

    A failing run is recorded with its error and the others go on; an interruption
    (or any error outside a run) stops every worker before it propagates.
    """
    from tqdm import tqdm

    from lfm_abm.results import store

    status = manifest["runs"]
    submit, completed, result, close = _executor(workers, scheduler, out)
    finished = n_runs - len(todo)
    bar = tqdm(total=sum(r.rounds for r in todo), unit="round", disable=bar_label is None,
               dynamic_ncols=True, desc=bar_label, unit_scale=False)
    bar.set_postfix_str(f"runs {finished}/{n_runs}")
    watch = RoundsWatch(bar, out / store.RUNS)  # rounds of the runs still running too
    try:
        with sigint_blocked():  # workers start now: a Ctrl-C waits until they ignore it
            futures = {submit(run): run for run in todo}
        if bar_label is not None:
            watch.start()
        for future in completed(list(futures)):
            run = futures[future]
            try:
                meta = result(future)
            except Exception as exc:  # a failing run is recorded; the others go on
                status[run.run_id] = {"status": "failed", "fingerprint": run.fingerprint,
                                      "error": f"{type(exc).__name__}: {exc}",
                                      "traceback": traceback.format_exc(limit=8)}
            else:
                status[run.run_id] = {"status": "finished", "fingerprint": run.fingerprint,
                                      "seconds": meta["seconds"]}
            store.write_manifest(out, manifest)
            finished += 1
            bar.set_postfix_str(f"runs {finished}/{n_runs}", refresh=False)
            watch.finished += run.rounds  # failed runs count as done: nothing is left
            watch.refresh()
    except BaseException:
        close(abort=True)
        raise
    else:
        close(abort=False)
    finally:
        watch.stop()
        bar.close()


def _network_data(spec: StudySpec):
    """Coordinates, needs and reliefs of the study's first market day, for plots."""
    from lfm_abm.day import shared_case
    from lfm_abm.results.network_data import network_data

    first = spec.variants[0]
    day = (first.scenario.days or (None,))[0]
    return network_data(load_grid(spec.grid),
                        shared_case(spec.grid, first.scenario, day, first.limits, first.market))


def summarise_study(out: Path, formats: Sequence[str] = ("png",)) -> pd.DataFrame:
    """KPIs per run, summary, paired differences, plots and report from the saved runs.

    `formats`: of the figures (png, pdf, svg; the report links the first).
    """
    from lfm_abm.results.annual import chosen_days, heaviest_day
    from lfm_abm.results.diagnostics import diagnose
    from lfm_abm.results.kpis import setting_labels
    from lfm_abm.results.load import load_results
    from lfm_abm.results.plots import make_plots
    from lfm_abm.results.report import write_report

    results = load_results(out)
    chosen = chosen_days(results.study)
    tables = ("runs", "summary", "paired") + (("annual_runs", "annual", "annual_paired")
                                               if len(results.annual_runs) else ())
    for name in tables:
        with atomic_file(out / f"{name}.csv") as tmp:
            getattr(results, name).to_csv(tmp, index=False)
    figures = make_plots(results.store, results.runs, out / "plots", results.study["window"],
                         results.network, order=list(setting_labels(results.summary)),
                         swept=results.swept,
                         n_actions=len(ActionGrid.from_dict(results.study["actions"])),
                         formats=formats, years=results.annual_runs,
                         shown_day=heaviest_day(chosen) if chosen else None)
    needs = results.network.needs if results.network is not None else None
    write_report(results, figures, diagnose(results.summary, results.study, needs))
    return results.summary
