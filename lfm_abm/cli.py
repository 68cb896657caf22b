"""Command line: `lfm-abm needs | days | clear | population | run | report | bench | ...`.

Heavy libraries (pandapower, cvxpy, mesa) are imported inside the commands so that
`lfm-abm --help` answers at once. Bad input prints one line naming the file and field
and exits with code 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, NoReturn

from lfm_abm.errors import InputError, PowerFlowError
from lfm_abm.files import WriteError, check_output_dir
from lfm_abm.flags import check_flags, from_flags
from lfm_abm.workers import die_with_parent, interrupts_raise

if TYPE_CHECKING:  # heavy imports stay inside the commands
    import pandas as pd

    from lfm_abm.market.clearing import Market
    from lfm_abm.market.devices import Devices

EXIT_CANNOT_WRITE = 1
EXIT_BAD_INPUT = 2
EXIT_FAILED = 3
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports it

BID_FORMAT = """bid file (CSV or Parquet), one row per bid:
  bid_id       unique text
  provider_id  the FSP (text; used by --pivotal)
  bus          pandapower bus id where the injection changes (a PQ bus of the grid)
  period       period index of the scenario, 0..N-1 (hour h of the default day = index
               of h among the scenario's hours; `lfm-abm needs` lists them)
  product      P_up | P_down | Q_up | Q_down (injection convention: up = more
               injection or less consumption)
  quantity     MW or MVAr offered, >= 0
  price        EUR/MWh or EUR/MVArh, >= 0; above the reservation price the bid is not
               admitted
  device_id    optional: bids of one device share its --devices capability circle and
               its --energy account
The --out file holds the bid columns plus hours, awarded (MW or MVAr), payment (EUR),
uplift (EUR), price_paid (EUR/MWh), locational_price (EUR/MWh), stage, and with
--energy soc_mwh and deferred_mwh (docs/results.md, awards.parquet)."""


def _default_workers() -> int:
    import os

    return max(1, os.cpu_count() or 1)


def _add_grid_arguments(parser: argparse.ArgumentParser, required: bool = True) -> None:
    parser.add_argument("--grid", required=required,
                        help="built-in grid (cigre-mv, simbench-semiurb, simbench-rural, "
                             "simbench-urban) or a pandapower JSON file")
    parser.add_argument("--day", help="ISO date of the SimBench profile year (default: the "
                                      "grid's documented default day)")


def _grid_and_scenario(args: argparse.Namespace):
    from dataclasses import replace

    from lfm_abm.network.grids import default_scenario, load_grid

    net = load_grid(args.grid)
    scenario = default_scenario(net)
    if args.day is not None:
        scenario = replace(scenario, days=(args.day,), source="--day")
    return net, scenario


def cmd_days(args: argparse.Namespace) -> int:
    """Scan a grid's year, choose representative days for each k, check them on the year."""
    import pandas as pd

    from lfm_abm.days import DaysRule, choose_days
    from lfm_abm.days_check import representation_error, year_without_market
    from lfm_abm.market.params import MarketParams
    from lfm_abm.network.needs import NeedLimits
    from lfm_abm.network.year import scan_year

    rules = [from_flags(DaysRule, rule="representative", k=k, method=args.method,
                        representative=representative)
             for k in args.k for representative in args.representative]
    params = from_flags(MarketParams, curtailment_price=args.curtailment_price)
    _, scenario = _grid_and_scenario(args)
    limits = NeedLimits()
    scan = scan_year(args.grid, scenario, limits, progress=True)
    days = scan.need_days
    print(f"{args.grid}: {len(days)} of {len(scan.days)} days have a need "
          f"({int(scan.days.need_hours.sum())} hours)")
    choices = [(rule, choose_days(scan, rule)) for rule in rules]  # a bad k fails first
    by_day = year_without_market(args.grid, scenario, limits, params, days, progress=True)
    rows = []
    for rule, chosen in choices:
        error = representation_error(by_day, chosen)
        rows.append({"k": rule.k, "representative": rule.representative,
                     "days (weight)": ", ".join(
            f"{day.day} ({day.weight:g})" for day in chosen),
            "no-market MWh/year": f"{error['mwh_estimate']:,.1f}",
            "error MWh": f"{100 * error['mwh_error']:+.1f} %",
            "no-market EUR/year": f"{error['cost_estimate']:,.0f}",
            "error EUR": f"{100 * error['cost_error']:+.1f} %"})
    print(f"every day with a need: {by_day.mwh.sum():,.1f} MWh, {by_day.cost.sum():,.0f} EUR "
          f"of emergency action without a market (curtailment at {args.curtailment_price:g} "
          "EUR/MWh); the representative days' weighted sums:")
    print(pd.DataFrame(rows).to_string(index=False))
    return 0


def cmd_needs(args: argparse.Namespace) -> int:
    """Print the grid's congestion and voltage needs per period of its default scenario."""
    from lfm_abm.files import check_output_file
    from lfm_abm.market.bids import TABLE_SUFFIXES, write_table
    from lfm_abm.network.needs import NeedLimits, find_needs, needs_by_period
    from lfm_abm.network.operating_points import operating_points

    if args.out:  # a bad target fails now, not after the power flows
        check_output_file(args.out, "--out", TABLE_SUFFIXES)
    limits = from_flags(NeedLimits, vmin=args.vmin, vmax=args.vmax,
                        vc_tolerance=args.vc_tolerance, cm_margin=args.cm_margin)
    net, scenario = _grid_and_scenario(args)
    points = list(operating_points(net, scenario))
    needs = find_needs(points, limits)
    print(f"grid {args.grid}: {len(net.bus)} buses, {len(net.line)} lines, "
          f"{len(net.trafo)} trafos; {len(points)} periods "
          f"({', '.join(scenario.days) or 'synthetic day'}; load x{scenario.load_scale}, "
          f"PV x{scenario.pv_scale}, wind x{scenario.wind_scale}, "
          f"EV peak {scenario.ev_peak_mw} MW)")
    print(f"limits: voltage [{limits.v_low:.3f}, {limits.v_high:.3f}] p.u., "
          f"loading <= {100 * limits.cm_margin:.0f} %")
    print(needs_by_period(needs, [p.label for p in points]).to_string(index=False))
    n_cm = int((needs.service == "CM").sum())
    n_vc = int((needs.service == "VC").sum())
    total = needs.groupby("service").need.sum()
    print(f"total: {n_cm} congestion needs ({total.get('CM', 0.0):.3f} MVA), "
          f"{n_vc} voltage needs ({total.get('VC', 0.0):.4f} p.u.)")
    if args.out:
        write_table(needs, args.out)
        print(f"wrote {args.out}")
    return 0


def cmd_clear(args: argparse.Namespace) -> int:
    """Clear one bid file on a grid's default day and write awards with payments."""
    import time

    from lfm_abm.day import with_dso_tools
    from lfm_abm.files import check_output_file
    from lfm_abm.market.bids import (
        TABLE_SUFFIXES,
        read_bids,
        read_table,
        validate_bids,
        write_table,
    )
    from lfm_abm.market.clearing import AWARD_COLUMNS, Market, MarketCase, check_device_ids
    from lfm_abm.market.designs import parse_design
    from lfm_abm.market.devices import Devices
    from lfm_abm.market.explain import KINDS, loss_reasons
    from lfm_abm.market.params import MarketParams
    from lfm_abm.market.pricing import check_pricing

    for flag, path in (("--out", args.out), ("--pivotal", args.pivotal)):
        if path:  # a bad target fails now, not after the clearing
            check_output_file(path, flag, TABLE_SUFFIXES)
    given = {"voll": args.voll, "reservation_price": args.reservation_price,
             "curtailment_price": args.curtailment_price,
             "emergency_priority": args.emergency_priority,
             "dso_tools": args.dso_tools.split(",") if args.dso_tools else None}
    params = from_flags(MarketParams, relinearise=args.relinearise,
                        **{name: value for name, value in given.items() if value is not None})
    parse_design(args.design, "--design")
    check_pricing(args.pricing)
    started = time.perf_counter()
    bids = read_bids(args.bids)  # a broken file fails before the grid is built
    loud = len(bids) >= 100_000  # long clears say what they are doing, on stderr
    net, scenario = _grid_and_scenario(args)
    case = with_dso_tools(MarketCase.build(net, scenario, params=params))
    bids = validate_bids(bids, buses=case.buses, n_periods=case.n_periods, source=args.bids)

    def phase(what: str) -> None:
        nonlocal started
        if loud:
            print(f"{what} in {time.perf_counter() - started:.1f} s", file=sys.stderr,
                  flush=True)
        started = time.perf_counter()

    phase(f"read and checked {len(bids):,} bids from {args.bids}, built the market day")
    devices = None
    if args.devices or args.energy:
        tables = {name: read_table(path, name) for name, path in (
            ("capability", args.devices), ("energy", args.energy)) if path}
        devices = Devices(**tables).validated(bids, args.devices or "devices",
                                              args.energy or "energy")
    check_device_ids(bids, devices)
    # Only --pivotal re-clears (warm); else the solver's copy of the LP is freed when solved.
    market = Market(case, args.design, args.pricing, warm=bool(args.pivotal))
    result = market.clear(bids, devices, ac_validate=False, trusted=True)  # checked above
    stats = result.stats
    phase(f"built and solved the LP ({stats['lp_rows']:,} rows x {stats['lp_cols']:,} "
          f"columns, {stats['stages']} stage(s), solver {stats['solve_seconds']:.1f} s)")
    result = market.validate(result)
    phase("AC-validated the awards")
    summary = result.summary(params)
    before = case.baseline_needs
    alone = case.counterfactual
    print(f"design {result.design}, {args.pricing}: {len(bids)} bids, "
          f"{int((result.awards.awarded > 0).sum())} awarded, "
          f"{int(summary['offers_above_reservation'])} above the reservation price "
          f"{params.max_bid_price:g} EUR/MWh (not admitted)")
    print(f"baseline: {int((before.service == 'CM').sum())} CM and "
          f"{int((before.service == 'VC').sum())} VC needs; without a market they take "
          f"{alone.no_market_mwh:.3f} MWh of emergency action costing "
          f"{alone.no_market_cost:.2f} EUR; the DSO alone (its tap changers first, "
          f"{alone.tap_moves} steps) {alone.dso_alone_mwh:.3f} MWh, {alone.dso_alone_cost:.2f} "
          "EUR")
    if case.taps is not None:
        print(f"cleared at the DSO's taps ({case.tap_moves} steps moved, "
              f"{case.tap_cost:.2f} EUR)")
    print(f"procurement cost: {summary['procurement_cost']:.2f} EUR "
          f"(at bid prices {summary['cost_at_bid_prices']:.2f} EUR)")
    print("volume: " + ", ".join(f"{k} {v:.3f}" for k, v in result.volumes().items())
          + " (MWh / MVArh)")
    print(f"unmet need in the market: {summary['unmet_need_before']:.4f} MWh of emergency "
          "action")
    print(f"unmet need after AC validation: {summary['unmet_need_after_ac']:.4f} MWh of "
          f"emergency action (curtailed {summary['curtailed_after_ac']:.4f}, shed "
          f"{summary['shed_after_ac']:.4f}; collateral {summary['collateral_after_ac']:.4f}"
          f" MWh), costing {summary['unmet_cost_after_ac']:.2f} EUR; violations CM "
          f"{summary['violation_cm_after_ac_mva']:.4f} MVA, VC "
          f"{summary['violation_vc_after_ac_pu']:.4f} p.u.")
    unresolvable = (summary["unresolvable_cm_after_ac_mva"]
                    + summary["unresolvable_vc_after_ac_pu"])
    if unresolvable > 0:
        print(f"unresolvable even with full emergency action: CM "
              f"{summary['unresolvable_cm_after_ac_mva']:.4f} MVA, VC "
              f"{summary['unresolvable_vc_after_ac_pu']:.4f} p.u.")
    lost = loss_reasons(result, market.design.products, params.max_bid_price)
    counts = lost.kind[lost.kind != ""].value_counts()
    if len(counts):
        print("bids that won nothing, by reason (`why` in --out): " + ", ".join(
            f"{kind} {counts[kind]}" for kind in KINDS if kind in counts))
    if result.validation is not None and len(result.validation.linearisation):
        lin = result.validation.linearisation
        print(f"linearisation error: voltage {lin.vm_error_pu.max():.5f} p.u., "
              f"loading {lin.loading_error_pct.max():.3f} percentage points")
    if args.out:
        columns = [*bids.columns, *AWARD_COLUMNS,
                   *(("soc_mwh", "deferred_mwh") if args.energy else ())]
        write_table(result.awards[columns].assign(why=lost.why), args.out)
        phase(f"wrote {len(result.awards):,} rows")
        print(f"wrote {args.out}")
    if args.pivotal:
        _report_pivotal(market, bids, devices, args.pivotal)
    return 0


def _report_pivotal(market: Market, bids: pd.DataFrame, devices: Devices | None,
                    path: str) -> None:
    """Re-clear without each supplier; print who is pivotal and write the table."""
    from lfm_abm.day import published_periods
    from lfm_abm.market.bids import write_table
    from lfm_abm.market.devices import Devices
    from lfm_abm.market.structure import pivotal_suppliers

    periods, suppliers = pivotal_suppliers(market, bids, devices or Devices(),
                                           published_periods(market.case, market.design))
    pivotal = suppliers[suppliers.pivotal]
    print(f"pivotal suppliers: {pivotal.provider_id.nunique()} FSPs, pivotal in "
          f"{int(periods.pivotal.sum())} of {len(periods)} periods with needs (PSI "
          f"{periods.pivotal.mean() if len(periods) else float('nan'):.2f}); scarce "
          f"periods (unmet need with every offer): {int(periods.scarce.sum())}")
    for provider, rows in pivotal.groupby("provider_id", sort=False):
        print(f"  {provider}: periods {', '.join(map(str, rows.period))}; absence adds "
              f"{rows.unmet_increase_mwh.sum():.3f} MWh unmet, "
              f"{rows.cost_increase.sum():.2f} EUR")
    write_table(suppliers, path)
    print(f"wrote {path}")


def cmd_population(args: argparse.Namespace) -> int:
    """Generate a population for a grid's default day and write it as TOML."""
    from collections import Counter

    from lfm_abm.agents.generator import (
        GeneratorSettings,
        generate_population,
        population_to_toml,
    )
    from lfm_abm.agents.inventory import grid_inventory
    from lfm_abm.files import check_output_file, write_text_atomic
    from lfm_abm.market.clearing import MarketCase

    check_output_file(args.out, "--out")  # a bad target fails now, not after the work
    settings = from_flags(GeneratorSettings, pv_density=args.pv_density,
                          ev_fleets=args.ev_fleets, aggregators=args.aggregators,
                          need_bias=args.need_bias)
    net, scenario = _grid_and_scenario(args)
    case = MarketCase.build(net, scenario)
    population = generate_population(case, grid_inventory(case),
                                     settings, args.seed)
    command = (f"lfm-abm population --grid {args.grid} --seed {args.seed} "
               f"--pv-density {args.pv_density} --ev-fleets {args.ev_fleets} "
               f"--aggregators {args.aggregators} --need-bias {args.need_bias}")
    text = population_to_toml(population, header=f"Population for {args.grid}, made with\n"
                                                 f"  {command} --out {args.out}")
    write_text_atomic(args.out, text)
    counts = Counter(fsp.type for fsp in population.fsps)
    print(f"wrote {args.out}: {len(population)} FSPs "
          f"({', '.join(f'{n} {kind}' for kind, n in counts.items())})")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    """Run (or resume) a study and print its headline, warnings and paired differences."""
    from lfm_abm.study import load_study, run_study

    if args.explain:
        from lfm_abm.results.kpis import glossary

        print(glossary(full=True))
        return 0
    if not args.study:
        raise InputError("a study spec is required, e.g. studies/designs.toml", field="study")
    spec = load_study(args.study, rounds=args.rounds, seeds=args.seeds, out=args.out,
                      window=args.window)
    formats = figure_formats(args.format)  # before any run: a typo costs nothing
    check_output_dir(spec.out, "--out" if args.out else f"{spec.source}: study.out")
    days = f" ({spec.days.rule} days of the year)" if spec.days else ""
    variants = (f"{len(spec.variants)} variants{days} x " if len(spec.variants) > 1 else "")
    variants += (f"{len(spec.populations)} populations x " if spec.draws is not None else "")
    intro = (f"study {spec.name}: {len(spec.designs)} designs x {len(spec.pricing)} pricing x "
             f"{len(spec.learners)} learner settings x {variants}{len(spec.seeds)} seeds, "
             f"{spec.rounds} rounds each (KPIs over the last {spec.window}), on {spec.grid} "
             f"-> {spec.out}")
    out = run_study(spec, workers=args.workers, scheduler=args.scheduler,
                    progress=not args.quiet, announce=lambda: print(intro, flush=True),
                    formats=formats)
    _print_summary(out)
    return 0


def _print_summary(out) -> None:
    import pandas as pd

    from lfm_abm.results import store
    from lfm_abm.results.annual import annual_table
    from lfm_abm.results.diagnostics import diagnose
    from lfm_abm.results.kpis import draws_phrase, headline, learning_table
    from lfm_abm.results.load import failed_runs, reference_design
    from lfm_abm.results.report import paired_table

    summary = pd.read_csv(out / "summary.csv", keep_default_na=False, na_values=[""])
    manifest = store.read_manifest(out)
    study = manifest["study"]
    failed = list(failed_runs(manifest))
    print(f"headline: mean ± 95 % CI over {draws_phrase(study)}, last {study['window']} of "
          f"{study['rounds']} "
          "rounds (`lfm-abm run --explain` says what each column means)")
    print(headline(summary).to_string(index=False))
    learning = learning_table(summary)
    if len(learning):
        print("did they learn? learned vs random and truthful play on the same seeds "
              "(learned - random: mean ± 95 % CI of paired differences):")
        print(learning.to_string(index=False))
    if (out / "annual.csv").is_file():
        print("the year: sum over the chosen days of weight x the day's KPI (mean ± 95 % CI "
              f"over {draws_phrase(study)}; report.md lists the days):")
        print(annual_table(pd.read_csv(out / "annual.csv", keep_default_na=False,
                                       na_values=[""])).to_string(index=False))
    pairs = paired_table(pd.read_csv(out / "paired.csv", keep_default_na=False,
                                     na_values=[""]))
    if len(pairs):
        print(f"paired difference to {reference_design(study)} (same seeds; design - "
              "reference):")
        print(pairs.to_string(index=False))
    network = store.read_network(out)
    for diagnostic in diagnose(summary, study, network.needs if network else None):
        print("\n".join(diagnostic.lines()))
    if failed:
        print(f"{len(failed)} run(s) failed, see {out / 'manifest.json'}: {', '.join(failed)}")
    print(f"results: {out} (summary.csv, paired.csv, runs/, plots/, report.md)")


def cmd_report(args: argparse.Namespace) -> int:
    """Rebuild summary, plots and report of a study folder from its saved runs."""
    from pathlib import Path

    from lfm_abm.study import summarise_study

    out = Path(args.dir)
    summarise_study(out, figure_formats(args.format))
    _print_summary(out)
    return 0


def figure_formats(text: str) -> tuple[str, ...]:
    """`--format png,pdf`: the figure formats, checked."""
    from lfm_abm.results.plots import check_formats

    return check_formats(text.split(","))


def cmd_bench(args: argparse.Namespace) -> int:
    """Engine vs naive baseline on the same rounds, the speed targets; or one long run."""
    from lfm_abm.bench import (
        compare,
        energy_rows_cost,
        market_power_cost,
        moved_day_cost,
        scale,
    )
    from lfm_abm.learning import LEARNERS
    from lfm_abm.speed_targets import horizon_run, targets

    if args.learner not in LEARNERS:
        raise InputError(f"invalid value {args.learner!r}", field="--learner",
                         allowed=sorted(LEARNERS))
    if args.horizon:
        print(f"one run of {args.horizon:,} rounds: {args.grid}, CMVC_PQ, learner "
              f"{args.learner}, AC validation every {args.ac_every} round(s), records "
              "streamed to disk")
        horizon_run(args.grid, args.learner, args.horizon, args.ac_every)
        return 0
    table, engine, naive = compare(args.grid, args.rounds, args.ac_every)
    print(table)
    energy = energy_rows_cost(args.grid, ("CMVC_P", "CMVC_PQ", "CM_P"), args.rounds)
    print("warm re-solves with and without energy rows (same bids, median ms per round):")
    print(energy.round(2).to_string(index=False))
    moved = moved_day_cost(args.grid, 10)
    print("days moved by day-ahead schedules (10 random schedules, seconds per day):")
    print(moved.to_string(index=False))
    power = market_power_cost(args.grid, ("CMVC_P", "CMVC_PQ", "CM_P>VC_Q"))
    print("market-power measures per run (s): pivotal test and regret of one profile, "
          "warm HiGHS vs cvxpy rebuilt per clearing:")
    print(power.round(2).to_string(index=False))
    if args.scale:
        frame = scale(args.scale_rounds, (10, 100, 1000),
                      ("cigre-mv", "simbench-semiurb", "simbench-urban"), args.ac_every)
        print(frame.round(1).to_string(index=False))
    print(f"speed targets (one core; AC validation every {args.ac_every} round(s); "
          "baseline: the naive engine on the same rounds, for start-up the first run in "
          "the process):")
    frame = targets(args.rounds, args.ac_every, args.target_horizon,
                    semiurb_joint=(engine, naive) if args.grid == "simbench-semiurb" else None)
    print(frame.round(2).to_string(index=False))
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    """Linearisation error of the clearing over the day, with and without re-linearisation.

    With --learning instead: the registry's Q-learner in Calvano et al.'s (2020) baseline.
    """
    learning_flags = {"sessions": args.sessions, "workers": args.workers,
                      "max_periods": args.max_periods}
    if args.learning:
        from lfm_abm.learning.calvano import Study, profit_gain_study

        given = {k: v for k, v in learning_flags.items() if v is not None}
        study = from_flags(Study, **{"workers": _default_workers(), **given})
        print(f"Calvano et al. (2020) baseline: {study.sessions} sessions of two registry "
              f"Q-learners (alpha {study.alpha}, delta {study.delta}, beta {study.beta:g}), "
              f"at most {study.max_periods:,} periods each, on {study.workers} worker(s)",
              flush=True)
        _, summary = profit_gain_study(study.sessions, study.workers, progress=True,
                                       max_periods=study.max_periods)
        print(summary.table())
        return 0
    if args.grid is None:  # required unless --learning, in argparse's own words
        args.parser.error("the following arguments are required: --grid")
    if given := [f"--{k.replace('_', '-')}" for k, v in learning_flags.items() if v is not None]:
        args.parser.error(f"unrecognized arguments: {' '.join(given)} (only with --learning)")
    from lfm_abm.agents.defaults import population_for
    from lfm_abm.market.params import MarketParams
    from lfm_abm.validation_report import linearisation_report

    from_flags(MarketParams, relinearise=args.relinearise)
    net, scenario = _grid_and_scenario(args)
    print(linearisation_report(net, scenario, population_for(args.grid), args.design,
                               args.relinearise))
    return 0


class OneLineParser(argparse.ArgumentParser):
    """Argument errors in one line (argparse prints the whole usage before them)."""

    def error(self, message: str) -> NoReturn:
        """Print the error and where to find the usage, exit 2."""
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with one sub-command per job."""
    parser = OneLineParser(prog="lfm-abm", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    needs = sub.add_parser("needs", help="show a grid's CM and VC needs per period")
    _add_grid_arguments(needs)
    needs.add_argument("--vmin", type=float, default=0.95, help="lower voltage limit, p.u.")
    needs.add_argument("--vmax", type=float, default=1.05, help="upper voltage limit, p.u.")
    needs.add_argument("--vc-tolerance", type=float, default=0.0,
                       help="tightens the voltage band on both sides, p.u.")
    needs.add_argument("--cm-margin", type=float, default=1.0,
                       help="fraction of the thermal limit targeted (e.g. 0.95)")
    needs.add_argument("--out", help="also write the tidy needs table to this CSV file")
    needs.set_defaults(func=cmd_needs)

    days = sub.add_parser("days", help="a grid's days with needs, representative days for "
                                       "each k and their error on the year without a market")
    days.add_argument("--grid", required=True, help="a SimBench grid (it has a profile year)")
    days.add_argument("--k", type=int, nargs="+", default=[4, 6, 8],
                      help="numbers of representative days to compare")
    days.add_argument("--method", default="hierarchical", help="hierarchical or kmeans")
    days.add_argument("--representative", nargs="+", default=["mean-need"],
                      help="which day stands for a cluster: mean-need (its need nearest "
                           "the cluster's mean) or medoid; give both to compare them")
    days.add_argument("--curtailment-price", type=float, default=100.0,
                      help="EUR/MWh of involuntary curtailment (prices the year's need)")
    days.set_defaults(func=cmd_days, day=None)

    clear = sub.add_parser("clear", help="clear one bid file and report awards and payments",
                           epilog=BID_FORMAT,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_grid_arguments(clear)
    clear.add_argument("--design", required=True,
                       help="SERVICE_PRODUCT (CM|VC|CMVC x P|Q|PQ) or stages joined by '>'")
    clear.add_argument("--bids", required=True,
                       help="bid file (CSV or Parquet); columns below")
    clear.add_argument("--pricing", default="pay-as-bid",
                       help="pay-as-bid, or locational: every accepted bid is paid the uniform "
                            "price of its bus, period and product (capped at the reservation "
                            "price, make-whole uplift per device)")
    clear.add_argument("--devices", help="device capability file (CSV or Parquet): device_id, "
                                         "period, p_mw, q_mvar, s_mva")
    clear.add_argument("--energy", help="energy account file (CSV or Parquet): device_id, "
                                        "period, order, kind (storage|shift), initial_mwh, "
                                        "capacity_mwh, lower_mwh, upper_mwh, "
                                        "charge_efficiency, discharge_efficiency")
    clear.add_argument("--relinearise", type=int, default=0,
                       help="re-clear the AC residual up to N times (default 0)")
    clear.add_argument("--voll", type=float,
                       help="cost of load shedding (value of lost load), EUR/MWh "
                            "(default 1000)")
    clear.add_argument("--curtailment-price", type=float,
                       help="cost of involuntary curtailment of generation (its "
                            "compensation), EUR/MWh (default 100)")
    clear.add_argument("--emergency-priority",
                       help="emergency action competes with offers on cost (least-cost, "
                            "default) or comes after admitted offers of the same effect "
                            "per MW (market-first)")
    clear.add_argument("--dso-tools",
                       help="the DSO's own tools, used before the market: oltc (the HV/MV "
                            "tap changers, by the DSO alone's least-cost schedule)")
    clear.add_argument("--reservation-price", type=float,
                       help="highest bid price the DSO admits, EUR/MWh (default: VOLL)")
    clear.add_argument("--out", help="write awards with payments (.csv or .parquet)")
    clear.add_argument("--pivotal", metavar="FILE",
                       help="also re-clear without each provider and write who is pivotal "
                            "per period (.csv or .parquet)")
    clear.set_defaults(func=cmd_clear)

    population = sub.add_parser("population", help="generate a population file for a grid")
    _add_grid_arguments(population)
    population.add_argument("--out", required=True, help="TOML file to write")
    population.add_argument("--seed", type=int, default=0)
    population.add_argument("--pv-density", type=float, default=0.5,
                            help="share of PV buses that get a PV inverter FSP")
    population.add_argument("--ev-fleets", type=int, default=4)
    population.add_argument("--aggregators", type=int, default=2)
    population.add_argument("--need-bias", type=float, default=2.0,
                            help="how much more likely buses that move the needs are")
    population.set_defaults(func=cmd_population)

    run = sub.add_parser("run", help="run or resume a study (design x pricing x learner x seed)")
    run.add_argument("study", nargs="?", help="study spec, e.g. studies/designs.toml")
    run.add_argument("--explain", action="store_true",
                     help="print what every headline column and KPI means, and exit")
    run.add_argument("--out", help="output folder (default: the spec's `out`)")
    run.add_argument("--rounds", type=int, help="override the spec's rounds")
    run.add_argument("--seeds", type=int, help="override the spec's seeds with 0..K-1")
    run.add_argument("--window", type=int, help="override the spec's window (last rounds the "
                     "KPIs average over; default: the spec's, at most --rounds)")
    run.add_argument("--workers", type=int, default=_default_workers(),
                     help="local worker processes (default: CPU count)")
    run.add_argument("--scheduler", help="address of a Dask scheduler to run on instead")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    run.add_argument("--format", default="png",
                     help="figure formats, comma-separated: png, pdf, svg (default png)")
    run.set_defaults(func=cmd_run)

    bench = sub.add_parser("bench", help="time the engine against a naive baseline")
    bench.add_argument("--grid", default="simbench-semiurb")
    bench.add_argument("--rounds", type=int, default=100, help="timed rounds per run")
    bench.add_argument("--ac-every", type=int, default=10,
                       help="AC-validate every k-th round in the engine run (naive: every)")
    bench.add_argument("--scale", action="store_true",
                       help="also time 10/100/1000 FSPs on three grids")
    bench.add_argument("--scale-rounds", type=int, default=20)
    bench.add_argument("--target-horizon", type=int, default=5000,
                       help="rounds of the long cigre-mv Q-learning run of the targets")
    bench.add_argument("--horizon", type=int,
                       help="only one run of this many rounds: rounds/s and memory over time")
    bench.add_argument("--learner", default="q-learning",
                       help="learner of every FSP in the --horizon run (default q-learning)")
    bench.set_defaults(func=cmd_bench)

    validate = sub.add_parser("validate", help="linearisation error of the clearing vs AC; "
                              "--learning: the Q-learner against Calvano et al. (2020)")
    _add_grid_arguments(validate, required=False)  # required unless --learning
    validate.add_argument("--design", default="CMVC_PQ")
    validate.add_argument("--relinearise", type=int, default=3,
                          help="re-linearisation iterations for the second pass")
    validate.add_argument("--learning", action="store_true",
                          help="instead: replay Calvano et al.'s (2020) logit duopoly with "
                               "the registry's Q-learner; its profit gain beside the paper's "
                               "0.85 (no --grid)")
    validate.add_argument("--sessions", type=int,
                          help="--learning: independent sessions (default 100)")
    validate.add_argument("--workers", type=int,
                          help="--learning: worker processes (default: CPU count)")
    validate.add_argument("--max-periods", type=int,
                          help="--learning: periods after which a session stops unconverged "
                               "(default 10,000,000; the paper: 10^9)")
    validate.set_defaults(func=cmd_validate, parser=validate)

    app = sub.add_parser("app", help="watch the market learn: an interactive page on localhost "
                                     '(needs the app extra: pip install -e ".[app]")')
    app.add_argument("--host", default="127.0.0.1",
                     help="address to serve on (default 127.0.0.1: this machine only)")
    app.add_argument("--port", type=int, default=8765, help="port (default 8765)")
    app.add_argument("--open", action=argparse.BooleanOptionalAction, default=True,
                     help="open the page in the default browser (default: yes)")
    app.set_defaults(func=cmd_app)

    report = sub.add_parser("report", aliases=["plot"],
                            help="rebuild summary, plots and report.md from saved results")
    report.add_argument("dir", help="a study output folder")
    report.add_argument("--format", default="png",
                        help="figure formats, comma-separated: png, pdf, svg (default png)")
    report.set_defaults(func=cmd_report)
    return parser


def cmd_app(args: argparse.Namespace) -> int:
    """Serve the interactive page (`lfm_abm/app.py`) with solara on a local port.

    Offline by design: solara's version check and usage telemetry are switched off and
    its front-end comes from the solara-assets package, so nothing leaves the machine.
    """
    import importlib.util
    import os
    import subprocess
    from pathlib import Path

    if importlib.util.find_spec("solara") is None or importlib.util.find_spec(
            "solara_assets") is None:
        print('lfm-abm: error: the app needs its extra: python -m pip install -e ".[app]"',
              file=sys.stderr)
        return EXIT_BAD_INPUT
    check_port_free(args.host, args.port)
    page = Path(__file__).with_name("app.py")
    command = [sys.executable, "-m", "solara", "run", str(page), "--host", args.host,
               "--port", str(args.port), "--production", "--no-check-version",
               "--open" if args.open else "--no-open"]
    # Solara's rule-of-hooks check warns (10 lines at every start) about Mesa 3.3's own
    # SolaraViz code (ComponentsView, a use_state after an early return), not ours; and
    # a page opened at 127.0.0.1 over http gets a 10-line note on cookies for pages
    # embedded in iframes elsewhere. Neither concerns a local app.
    quiet = "ignore:Cookies with samesite=none require https:UserWarning"
    env = {**os.environ, "SOLARA_TELEMETRY_MIXPANEL_ENABLE": "False",
           "SOLARA_CHECK_HOOKS": "off", "PYTHONWARNINGS": ",".join(
               filter(None, (os.environ.get("PYTHONWARNINGS"), quiet)))}
    print(f"lfm-abm app: http://{args.host}:{args.port} (Ctrl-C stops it)", flush=True)
    # The server dies with this process, also on SIGTERM or kill -9: a server left
    # behind would hold the port and the next start would fail.
    server = subprocess.Popen(command, env=env, preexec_fn=die_with_parent)
    with interrupts_raise():
        try:
            return server.wait()
        finally:
            if server.poll() is None:
                server.terminate()
                try:
                    server.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    server.kill()
                    server.wait()


def check_port_free(host: str, port: int) -> None:
    """Refuse, in one line, a port something already listens on (before starting solara)."""
    import socket

    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server does
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise InputError(f"cannot listen on {host}:{port} ({exc.strerror}): another "
                             "server (or an earlier app) holds it", field="--port",
                             allowed=["a free port, e.g. --port 8766"]) from None


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `lfm-abm` console script."""
    args = build_parser().parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        check_flags(args.command, args)
        return func(args)
    except InputError as exc:
        print(f"lfm-abm: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except PowerFlowError as exc:
        print(f"lfm-abm: error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt as exc:  # Ctrl-C; SIGTERM of a study too (workers.Interrupted)
        resume = "; rerun the same command to resume" if args.command == "run" else ""
        print(f"lfm-abm: interrupted{resume}", file=sys.stderr)
        return getattr(exc, "exit_code", EXIT_INTERRUPTED)
    except OSError as exc:  # a full disk, a folder made read-only: files.WriteError names it
        where = f"{exc.filename}: {exc.strerror}" if exc.filename else str(exc)
        print(f"lfm-abm: error: {exc if isinstance(exc, WriteError) else where}",
              file=sys.stderr)
        return EXIT_CANNOT_WRITE


if __name__ == "__main__":
    sys.exit(main())
