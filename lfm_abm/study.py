"""Studies: a TOML spec expanded into independent runs, executed, resumed, summarised.

A study is the grid of design x pricing x learner setting x seed, each run `rounds`
rounds. Runs execute in local processes (concurrent.futures) or on a Dask cluster
(`scheduler`); each finished run is written atomically and never recomputed unless its
settings change; a failing run is recorded with its error and the others go on.

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
    out = "../out/designs"

    [learners]                        # labelled settings; default: the population's own
    roth-erev = { kind = "roth-erev" }
    truthful = { kind = "truthful" }

    [scenario]  [limits]  [market]  [actions]  [fsp_costs]   # optional overrides

    [sweep]                           # optional: one run set per value (all combinations)
    "market.voll" = [300.0, 1000.0, 3000.0]   # labelled "voll=300.0", the `variant`
    "fsp_costs.Q_scale" = [0.5, 1.0, 2.0]     # (or [sweep.market] voll = [...])

A result that moves with an assumption (VOLL, a limit, a growth factor) is a sweep over
it, reported per value, not one number.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import platform
import time
import tomllib
import traceback
from collections.abc import Callable, Mapping
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path

import pandas as pd

from lfm_abm.agents.population import CostScales
from lfm_abm.errors import InputError
from lfm_abm.learning import ActionGrid, make_learner
from lfm_abm.market.designs import parse_design
from lfm_abm.market.params import MarketParams
from lfm_abm.market.pricing import PRICING_RULES, check_pricing
from lfm_abm.network.grids import default_scenario, load_grid
from lfm_abm.network.needs import NeedLimits
from lfm_abm.network.scenarios import Scenario

STUDY_FIELDS = {"name", "grid", "population", "designs", "reference", "pricing", "rounds",
                "seeds", "window", "ac_every", "resample_days", "regret", "regret_every",
                "out"}
TABLES_ALLOWED = {"study", "learners", "scenario", "limits", "market", "actions", "fsp_costs",
                  "sweep"}
#: Settings tables a [sweep] may vary.
SWEEPABLE = ("market", "limits", "scenario", "fsp_costs")
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

    def describe(self) -> dict:
        """JSON-friendly settings of this variant."""
        return {"scenario": {k: v for k, v in asdict(self.scenario).items() if k != "source"},
                "limits": asdict(self.limits), "market": asdict(self.market),
                "fsp_costs": asdict(self.fsp_costs)}


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
                **self.variants[0].describe(),
                "sweep": {k: dict(v) for k, v in self.sweep.items()},
                "variants": {v.label: v.describe() for v in self.variants},
                "actions": asdict(self.actions)}


def _get(table: Mapping, key: str, kind: type | tuple, source: str, default: object = None,
         check: Callable[[object], bool] = lambda v: True, allowed: object = None) -> object:
    """A [study] field of the right type passing `check`, else InputError naming it."""
    value = table.get(key, default)
    if value is None:
        raise InputError("required", source=source, field=f"study.{key}")
    wrong_type = not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool)
    if wrong_type or not check(value):
        raise InputError(f"invalid value {value!r}", source=source, field=f"study.{key}",
                         allowed=allowed)
    return value


def load_study(path: str | Path, rounds: int | None = None, seeds: int | None = None,
               out: str | None = None) -> StudySpec:
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
    study = data.get("study")
    if not isinstance(study, dict):
        raise InputError("missing [study] table", source=source, field="study")
    extra = set(study) - STUDY_FIELDS
    if extra:
        raise InputError(f"unknown field {sorted(extra)[0]!r}", source=source,
                         field=f"study.{sorted(extra)[0]}", allowed=sorted(STUDY_FIELDS))
    base = path.parent
    grid = str(_get(study, "grid", str, source))
    if grid.endswith(".json"):
        grid = str((base / grid).resolve())
    base_scenario = default_scenario(load_grid(grid))  # fails early, naming known grids
    population = _get(study, "population", str, source)
    population_path = (base / population).resolve()
    if not population_path.is_file():
        raise InputError(f"population file {population!r} not found (paths are relative to "
                         "the study file)", source=source, field="study.population")
    designs = _get(study, "designs", list, source, check=lambda v: len(v) > 0)
    for design in designs:
        parse_design(design, source)
    reference = _get(study, "reference", str, source, default=designs[0],
                     check=lambda v: v in designs, allowed=designs)
    pricing = _get(study, "pricing", list, source, default=["pay-as-bid"],
                   check=lambda v: len(v) > 0, allowed=list(PRICING_RULES))
    for rule in pricing:
        check_pricing(rule, source)
    n_rounds = rounds if rounds is not None else _get(
        study, "rounds", int, source, check=lambda v: v >= 1, allowed=["an integer >= 1"])
    raw_seeds = _get(study, "seeds", (int, list), source, default=1)
    if seeds is not None:
        raw_seeds = seeds
    seed_list = list(range(raw_seeds)) if isinstance(raw_seeds, int) else raw_seeds
    if not seed_list or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0
                                for s in seed_list) or len(set(seed_list)) != len(seed_list):
        raise InputError(f"must be a count >= 1 or a list of distinct integers >= 0, got "
                         f"{raw_seeds!r}", source=source, field="study.seeds")
    window = _get(study, "window", int, source, default=max(1, n_rounds // 4),
                  check=lambda v: v >= 1, allowed=["an integer >= 1"])
    ac_every = _get(study, "ac_every", int, source, default=1, check=lambda v: v >= 1,
                    allowed=["an integer >= 1"])
    resample = _get(study, "resample_days", bool, source, default=False)
    regret = _get(study, "regret", bool, source, default=True)
    regret_every = _get(study, "regret_every", int, source, default=0, check=lambda v: v >= 0,
                        allowed=["an integer >= 0 (0: only the learned profile at the end)"])
    name = _get(study, "name", str, source, default=path.stem)
    out_dir = out or (os.path.normpath(base / _get(study, "out", str, source))
                      if "out" in study else f"out/{name}")
    actions = ActionGrid.from_dict(data.get("actions", {}), source)
    learners = _learners(data.get("learners"), actions, source)
    sweep = _sweep(data.get("sweep"), source)
    variants = tuple(_variant(data, label, overrides, base_scenario, source)
                     for label, overrides in _combinations(sweep))
    return StudySpec(
        name=name, source=source, grid=grid, population=str(population_path),
        designs=tuple(designs), reference=reference, pricing=tuple(pricing),
        learners=learners, rounds=n_rounds,
        seeds=tuple(seed_list), window=window, ac_every=ac_every,
        resample_days=resample, out=out_dir, variants=variants, sweep=sweep, actions=actions,
        regret=regret, regret_every=regret_every)


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
        label = ",".join(f"{key}={value}" for (_, key, _), value in zip(axes, combination,
                                                                        strict=True))
        out.append((label, overrides))
    return out


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
                   CostScales.from_dict(table("fsp_costs"), where), values)


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


def expand(spec: StudySpec) -> list[RunSpec]:
    """All runs of a study, in a stable order (design, pricing, learner, seed)."""
    from lfm_abm.agents.population import load_population
    from lfm_abm.model import ModelSettings

    population = load_population(spec.population)
    population_text = Path(spec.population).read_text()
    grid_file = Path(spec.grid)
    grid_text = grid_file.read_text() if grid_file.is_file() else spec.grid
    code = code_identity()
    runs = []
    for design, pricing, (label, learner), variant in itertools.product(
            spec.designs, spec.pricing, spec.learners.items(), spec.variants):
        settings = ModelSettings(
            grid=spec.grid, population=variant.fsp_costs.apply(population), design=design,
            pricing=pricing,
            scenario=variant.scenario, limits=variant.limits, market=variant.market,
            actions=spec.actions, learner=learner, resample_days=spec.resample_days,
            ac_every=spec.ac_every)
        for seed in spec.seeds:
            identity = json.dumps({
                "design": design, "pricing": pricing, "learner": learner, "seed": seed,
                "rounds": spec.rounds, "population": population_text, "grid_file": grid_text,
                "code": code, "grid": spec.grid, "actions": asdict(spec.actions),
                "ac_every": spec.ac_every, "resample_days": spec.resample_days,
                "regret": spec.regret, "regret_every": spec.regret_every,
                **variant.describe()}, sort_keys=True, default=str)
            fingerprint = hashlib.sha256(identity.encode()).hexdigest()[:16]
            slug = design.replace(">", "-then-")
            swept = f"__{variant.label}" if variant.label else ""
            runs.append(RunSpec(f"{slug}__{pricing}__{label}{swept}__s{seed}", design,
                                pricing, label, variant.label, seed, spec.rounds, settings,
                                fingerprint, spec.regret, spec.regret_every,
                                dict(variant.values)))
    return runs


def code_identity() -> str:
    """Hash of the package's source: results of other code are never reused."""
    digest = hashlib.sha256()
    for path in sorted(Path(__file__).parent.rglob("*.py")):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def execute_run(run: RunSpec) -> dict:
    """Run one simulation (in a worker) and return its tables and timings."""
    from lfm_abm.model import LFMModel

    start = time.perf_counter()
    model = LFMModel(run.settings, seed=run.seed)
    setup = time.perf_counter() - start
    for _ in range(run.rounds):
        model.step()
        if run.regret_every and model.round % run.regret_every == 0 \
                and model.round < run.rounds:
            model.equilibrium()
    if run.regret:
        model.equilibrium()
    return {"tables": model.records(), "setup_seconds": setup,
            "seconds": time.perf_counter() - start, "timings": dict(model.timings)}


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


def _executor(workers: int, scheduler: str | None):
    """Submit function and result iterator for local processes or a Dask cluster."""
    if scheduler:
        try:
            from distributed import Client
            from distributed import as_completed as dask_completed
        except ImportError:
            raise InputError("Dask is not installed: pip install 'lfm-abm[dist]'",
                             field="--scheduler") from None
        client = Client(scheduler)

        def submit(run: RunSpec):
            return client.submit(execute_run, run, pure=False, key=f"lfm-{run.run_id}")

        return submit, dask_completed, lambda future: future.result(), client.close
    if workers <= 1:
        class Done:
            def __init__(self, run: RunSpec) -> None:
                self.run = run

        return Done, iter, lambda done: execute_run(done.run), lambda: None
    import multiprocessing

    pool = ProcessPoolExecutor(max_workers=workers,
                               mp_context=multiprocessing.get_context("spawn"))
    return (lambda run: pool.submit(execute_run, run), as_completed,
            lambda future: future.result(), lambda: pool.shutdown(cancel_futures=True))


def check_study(spec: StudySpec) -> list[RunSpec]:
    """Expand the study and check its population against the grid, before any output.

    A population naming a bus without the asset it claims, or a bus where nothing can be
    bid, fails here with one clear error instead of failing every run in a worker.
    """
    from lfm_abm.agents.population import check_costs_below_reservation, load_population
    from lfm_abm.day import market_day, shared_case

    runs = expand(spec)
    first = spec.variants[0]
    days = first.scenario.days or (None,)
    market_day(shared_case(spec.grid, first.scenario, days[0], first.limits, first.market),
               runs[0].settings.population, parse_design(spec.designs[0]), days[0])
    population = load_population(spec.population)  # as written: each variant scales it
    for variant in spec.variants[1:]:
        check_costs_below_reservation(variant.fsp_costs.apply(population),
                                      variant.market.max_bid_price)
    if any(learner is None for learner in spec.learners.values()):
        for fsp in population.fsps:
            make_learner(fsp.learner, spec.actions, source=f"{population.source}: fsp {fsp.id}")
    return runs


def run_study(spec: StudySpec, workers: int = 1, scheduler: str | None = None,
              progress: bool = True) -> Path:
    """Execute every unfinished run of a study, then write summary, plots and report."""
    from tqdm import tqdm

    from lfm_abm.results import store

    runs = check_study(spec)
    out = Path(spec.out)
    out.mkdir(parents=True, exist_ok=True)
    store.write_network(out, _network_data(spec))
    store.clean_partial(out)
    todo = [r for r in runs if not store.is_finished(out, r.run_id, r.fingerprint)]
    manifest = store.read_manifest(out)
    manifest.update({"study": spec.describe(), "versions": versions(),
                     "started": time.strftime("%Y-%m-%d %H:%M:%S")})
    status = manifest.setdefault("runs", {})
    for run in runs:  # the status of every current run, as found on disk now
        previous = status.get(run.run_id, {})
        status[run.run_id] = {**previous, "fingerprint": run.fingerprint,
                              "status": "pending" if run in todo else "finished"}
    manifest["current_runs"] = [r.run_id for r in runs]
    store.write_json_atomic(out / store.MANIFEST, manifest)

    submit, completed, result, close = _executor(workers, scheduler)
    start = time.perf_counter()
    finished = len(runs) - len(todo)
    bar = tqdm(total=sum(r.rounds for r in todo), unit="round", disable=not progress,
               dynamic_ncols=True, desc=spec.name, unit_scale=False)
    bar.set_postfix_str(f"runs {finished}/{len(runs)}")
    try:
        futures = {submit(run): run for run in todo}
        for future in completed(list(futures)):
            run = futures[future]
            try:
                outcome = result(future)
                meta = {"run_id": run.run_id, "design": run.design, "pricing": run.pricing,
                        "learner": run.learner, "variant": run.variant, "seed": run.seed,
                        "swept": dict(run.swept), "rounds": run.rounds,
                        "fingerprint": run.fingerprint, "seconds": outcome["seconds"],
                        "setup_seconds": outcome["setup_seconds"],
                        "stage_seconds": outcome["timings"]}
                store.write_run(out, run.run_id, outcome["tables"], meta)
            except Exception as exc:  # a failing run is recorded; the others go on
                status[run.run_id] = {"status": "failed", "fingerprint": run.fingerprint,
                                      "error": f"{type(exc).__name__}: {exc}",
                                      "traceback": traceback.format_exc(limit=8)}
            else:
                status[run.run_id] = {"status": "finished", "fingerprint": run.fingerprint,
                                      "seconds": outcome["seconds"]}
            store.write_json_atomic(out / store.MANIFEST, manifest)
            finished += 1
            bar.set_postfix_str(f"runs {finished}/{len(runs)}", refresh=False)
            bar.update(run.rounds)  # rounds of failed runs count as done: nothing is left
    finally:
        bar.close()
        close()
    manifest["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
    manifest["wall_seconds"] = time.perf_counter() - start
    store.write_json_atomic(out / store.MANIFEST, manifest)
    summarise_study(out)
    return out


def _network_data(spec: StudySpec):
    """Coordinates, needs and reliefs of the study's first market day, for plots."""
    from lfm_abm.day import shared_case
    from lfm_abm.results.network_data import network_data

    first = spec.variants[0]
    day = (first.scenario.days or (None,))[0]
    return network_data(load_grid(spec.grid),
                        shared_case(spec.grid, first.scenario, day, first.limits, first.market))


def summarise_study(out: Path) -> pd.DataFrame:
    """KPIs per run, summary, paired differences, plots and report from the saved runs."""
    from lfm_abm.results.diagnostics import diagnose
    from lfm_abm.results.kpis import setting_labels
    from lfm_abm.results.load import load_results
    from lfm_abm.results.plots import make_plots
    from lfm_abm.results.report import write_report

    results = load_results(out)
    results.runs.to_csv(out / "runs.csv", index=False)
    results.summary.to_csv(out / "summary.csv", index=False)
    results.paired.to_csv(out / "paired.csv", index=False)
    figures = make_plots(results.tables, results.runs, out / "plots", results.study["window"],
                         results.network, order=list(setting_labels(results.summary)),
                         swept=results.swept)
    needs = results.network.needs if results.network is not None else None
    write_report(results, figures, diagnose(results.summary, results.study, needs))
    return results.summary
