"""Key performance indicators of runs, their summary over seeds and paired differences.

Every KPI is declared in `results.registry` (label, unit, table, aggregation); the
formulas are in docs/model.md section 9. `run_kpis` computes one run's KPIs over its last
`window` successful rounds and checks that it computed exactly the registry's KPIs;
`summarise` gives, per design x pricing x learner x variant, the mean over seeds and the
half-width of its 95 % confidence interval (Student t; NaN with one seed); `paired`
compares each design with a reference design on the seeds they share (common random
numbers in part: the same seed gives the same population, days and initial state).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from lfm_abm.equilibrium import REGRET_COLUMNS
from lfm_abm.learning import ActionGrid
from lfm_abm.learning.convergence import converged, learning_diagnostics, rounds_to_stable
from lfm_abm.results.lazy import RunRecords
from lfm_abm.results.registry import AGENT_TYPES, FAMILIES, HEADLINE, KPIS, REFERENCE_KPIS

#: The reference runs every study adds on the same seeds (learner labels): uniform
#: random play over the action grid and truthful bids.
REFERENCES = {"random": {"kind": "random"}, "truthful": {"kind": "truthful"}}

GROUP = ["design", "pricing", "learner", "variant"]
SETTINGS = ("pricing", "learner", "variant")  # enter a setting's label when they vary
#: KPIs the paired comparison with the reference design reports.
PAIRED = ("total_cost", "dso_cost", "unmet_need_after_ac", "lerner")


def _mean(frame: pd.DataFrame, column: str) -> float:
    """Mean of a column over the frame's rows; NaN if there are none (or no such column)."""
    return float(frame[column].mean()) if len(frame) and column in frame else float("nan")


def _lerner(rows: pd.DataFrame) -> float:
    paid = rows.payment.sum() if len(rows) else 0.0
    return float(rows.profit.sum() / paid) if paid > 0 else float("nan")


def _market_power(agents: pd.DataFrame, grid: ActionGrid) -> dict[str, float]:
    """Lerner indices and markups of accepted bids per agent type and product family."""
    out: dict[str, float] = {}
    won = agents[agents.awarded > 0] if len(agents) else agents
    top = np.array([grid.at_top(a) for a in range(len(grid))])
    energy = won.awarded.sum() if len(won) else 0.0
    out["share_at_top"] = (float(won.awarded[top[won.action.to_numpy(dtype=int)]].sum() / energy)
                           if energy > 0 else float("nan"))
    for kind in AGENT_TYPES:
        mine = agents[agents.fsp_type == kind] if len(agents) else agents
        out[f"markup_all_{kind}"] = _mean(mine, "markup")
        for family in FAMILIES:
            rows = won[(won.fsp_type == kind) & (won.family == family)] if len(won) else won
            out[f"lerner_{kind}_{family}"] = _lerner(rows)
            out[f"markup_{kind}_{family}"] = (
                float(np.average(rows.markup, weights=rows.awarded)) if len(rows)
                else float("nan"))
    out["lerner"] = _lerner(won)
    out["entropy"] = _mean(agents, "entropy")
    return out


def _of_offers(frame: pd.DataFrame, offers: str) -> pd.DataFrame:
    """Rows of a structure or suppliers table for `offers` ("truthful" or "learned")."""
    if "offers" not in frame:  # an empty table: no period with needs
        return frame
    return frame[frame.offers == offers]


def _structure(structure: pd.DataFrame, suppliers: pd.DataFrame) -> dict[str, float]:
    """Pivotal-supplier indicators of the run's market days: truthful and learned offers."""
    out = {}
    for offers, suffix in (("truthful", ""), ("learned", "_learned")):
        periods, who = _of_offers(structure, offers), _of_offers(suppliers, offers)
        out[f"psi{suffix}"] = _mean(periods, "pivotal")
        out[f"pivotal_fsps{suffix}"] = (float(who.provider_id[who.pivotal].nunique())
                                        if len(who) else float("nan"))
    out["scarcity"] = _mean(_of_offers(structure, "truthful"), "scarce")
    return out


def _regret(regret: pd.DataFrame) -> dict[str, float]:
    """Regret of the greedy profile and of the played strategies at the end of the run.

    Earlier measured rounds (`regret_every`) are for curves. The played regret's
    standard error is that of the learner with the largest regret.
    """
    if not len(regret):  # not measured (regret = false, a reference run)
        regret = pd.DataFrame(columns=REGRET_COLUMNS)
    regret = regret[regret["round"] == regret["round"].max()] if len(regret) else regret
    greedy, played = regret[regret.profile == "greedy"], regret[regret.profile == "played"]
    worst = played.loc[played.regret.idxmax()] if len(played) else None
    return {"regret_max": float(greedy.regret.max()) if len(greedy) else float("nan"),
            "regret_mean": _mean(greedy, "regret"),
            "regret_share": _mean(greedy, "regret_share"),
            "profit_gain": (float(greedy.profit_gain.iloc[0]) if "profit_gain" in greedy
                            and len(greedy) else float("nan")),
            "regret_played_max": float(worst.regret) if worst is not None else float("nan"),
            "regret_played_se": float(worst.regret_se) if worst is not None else float("nan"),
            "regret_played_mean": _mean(played, "regret"),
            "regret_played_share": _forgone_share(played),
            "regret_played_worst_share": (float(worst.regret / (worst.profit + worst.regret))
                                          if worst is not None and worst.profit + worst.regret
                                          > 0 else float("nan"))}


def _forgone_share(played: pd.DataFrame) -> float:
    """Share of their best fixed responses' profit the learners forgo, all together.

    sum of regret / sum of (profit + regret): a learner that earns cents and could earn a
    few more weighs what it could earn, not as much as a seller of thousands.
    """
    best = float((played.profit + played.regret).sum())
    return float(played.regret.sum()) / best if best > 0 else float("nan")


def varying_settings(frame: pd.DataFrame) -> tuple[str, ...]:
    """The run settings besides the design that take more than one value in `frame`."""
    return tuple(c for c in SETTINGS if c in frame
                 and frame[c].fillna("").astype(str).nunique() > 1)


def setting_labels(frame: pd.DataFrame, columns: Sequence[str] | None = None) -> pd.Series:
    """Design, plus ' / value' of each of `columns` (default: the varying settings)."""
    label = frame.design.astype(str)
    for column in varying_settings(frame) if columns is None else columns:
        label = label + " / " + frame[column].fillna("").astype(str)
    return label


def run_kpis(tables: Mapping[str, pd.DataFrame] | RunRecords, window: int, grid: ActionGrid
             ) -> dict[str, float]:
    """The registry's KPIs of one run, over its last `window` successful rounds.

    `tables`: the run's whole tables, or its `RunRecords` (aggregated where stored, for
    runs too long to read whole). `grid` is the run's action grid (uniform play's
    support, its top level). The reference KPIs (learned minus random play) need the
    other runs: `reference_kpis` adds them; here they are NaN.
    """
    records = tables if isinstance(tables, RunRecords) else RunRecords.of_frames(tables,
                                                                                 len(grid))
    rounds = records.rounds
    ok = rounds[rounds.status == "ok"] if "status" in rounds else rounds
    last = ok[ok["round"] > ok["round"].max() - window] if len(ok) else ok
    by_aggregation = {"window": last,
                      "validated": last[last.ac_validated.astype(bool)] if len(last) else last}
    out = {kpi.name: _mean(by_aggregation[kpi.aggregation], kpi.name)
           for kpi in KPIS.values() if kpi.aggregation in by_aggregation}
    n_rounds = records.n_rounds
    out["rounds"] = n_rounds
    out["failed_rounds"] = records.failed_rounds
    taps = out.get("tap_cost", float("nan"))  # NaN: results from before the tap changer
    out["total_cost"] = (out["dso_cost"] + out["unmet_cost_after_ac"]
                         + (0.0 if np.isnan(taps) else taps))
    if len(last) and "truthful_cost" in last and last.truthful_cost.isna().any():
        # a day moved by day-ahead positions has no truthful benchmark: no means over
        # rounds of which only some have one
        out["truthful_cost"] = out["truthful_unmet_need_after_ac"] = float("nan")
    out["cost_ratio"] = (out["dso_cost"] / out["truthful_cost"] if out["truthful_cost"] > 0
                         else float("nan"))
    out["dso_cost_with_energy"] = out["dso_cost"] + out["balance_cost"]
    agents = records.agents
    recent = agents[agents["round"].isin(set(last["round"]))] if len(agents) else agents
    out.update(_market_power(recent, grid))
    out.update(_structure(records.structure, records.suppliers))
    out.update(_regret(records.regret))
    out.update(learning_diagnostics(agents, set(last["round"])))
    out["rounds_to_stable"] = rounds_to_stable(records.blocks, len(grid))
    out["converged"] = converged(records.blocks, len(grid), n_rounds - window + 1,
                                 out["regret_played_share"])
    out.update(dict.fromkeys(REFERENCE_KPIS, float("nan")))
    if set(out) != set(KPIS):
        raise RuntimeError(f"run_kpis and the KPI registry disagree: "
                           f"{sorted(set(out) ^ set(KPIS))}")
    return {name: out[name] for name in KPIS}


def reference_kpis(per_run: pd.DataFrame) -> pd.DataFrame:
    """`per_run` with each learned run's KPIs minus those of random play on the same seed.

    Pairs share design, pricing, variant and seed; runs of the references themselves,
    and learned runs without a random run, keep NaN.
    """
    keys = ["design", "pricing", "variant", *draw_keys(per_run)]
    random = per_run[per_run.learner == "random"].set_index(keys)
    out = per_run.copy()
    learned = ~out.learner.isin(list(REFERENCES))
    index = pd.MultiIndex.from_frame(out.loc[learned, keys])
    for name, base in REFERENCE_KPIS.items():
        reference = random[base].reindex(index).to_numpy(dtype=float)
        out.loc[learned, name] = out.loc[learned, base].to_numpy(dtype=float) - reference
    return out


def ci_half_width(std: np.ndarray | float, count: np.ndarray | float) -> np.ndarray:
    """Half-width of the 95 % CI of a mean: t(0.975, n-1) s / sqrt(n); NaN for n < 2."""
    count = np.asarray(count, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        half = stats.t.ppf(0.975, count - 1) * np.asarray(std, dtype=float) / np.sqrt(count)
    return np.where(count > 1, half, np.nan)


def draws_phrase(study: Mapping) -> str:
    """What a study's 95 % CIs are over, for table titles."""
    if study.get("populations"):
        return "populations (each the mean of its seeds)"
    return "seeds"


def draw_keys(frame: pd.DataFrame) -> list[str]:
    """What names one independent draw of a setting: its seed (and population).

    The population only where the study draws several (`lfm_abm.populations`).
    """
    return ["population", "seed"] if "population" in frame else ["seed"]


def over_draws(values: np.ndarray, populations: np.ndarray | None = None
               ) -> tuple[float, float]:
    """Mean and 95 % CI of a setting's runs: over seeds, or over populations.

    With several populations the runs are clustered (a population's seeds share its
    FSPs): the interval is that of the populations' means over their seeds, which
    covers both the draw of the population and the seeds (the standard error of a
    two-stage sample's mean from its first-stage units).
    """
    values = np.asarray(values, dtype=float)
    if populations is None or len(set(populations)) < 2:
        return mean_and_ci(values)
    finite = np.isfinite(values)
    means = pd.Series(values[finite]).groupby(np.asarray(populations)[finite]).mean()
    return mean_and_ci(means.to_numpy())


def runs_mean_and_ci(runs: pd.DataFrame, column: str) -> tuple[float, float]:
    """`over_draws` of one setting's runs (rows): over populations where they carry one."""
    populations = runs.population.to_numpy() if "population" in runs else None
    return over_draws(runs[column].to_numpy(dtype=float), populations)


def mean_and_ci(values: np.ndarray) -> tuple[float, float]:
    """Mean and 95 % CI half-width (Student t) of the finite values; NaN where undefined."""
    values = values[np.isfinite(values)]
    if not len(values):
        return float("nan"), float("nan")
    std = values.std(ddof=1) if len(values) > 1 else 0.0
    return float(values.mean()), float(ci_half_width(std, len(values)))


def bounded_interval(mean: float, ci: float, bounds: tuple[float, float]
                     ) -> tuple[float, float]:
    """The 95 % interval mean ± ci cut to the values the KPI can take.

    The t interval of a few seeds can reach past a bound (a Lerner index above 1, a cost
    below 0); the parameter lies in its range for sure, so the cut interval covers it
    at least as often (the intersection of a 95 % interval with the parameter space).
    """
    low, high = bounds
    return float(np.clip(mean - ci, low, high)), float(np.clip(mean + ci, low, high))


def summarise(per_run: pd.DataFrame) -> pd.DataFrame:
    """Mean and 95 % CI over seeds of every KPI, per design x pricing x learner.

    `<kpi>_ci` is the half-width, `<kpi>_lo` and `<kpi>_hi` the interval cut at the
    KPI's bounds (`bounded_interval`).
    """
    rows = []
    for key, group in per_run.groupby(GROUP, sort=False, dropna=False):
        row: dict[str, object] = dict(zip(GROUP, key, strict=True))
        row["seeds"] = len(group)
        if "population" in group:
            row["populations"] = group.population.nunique()
        for name, kpi in KPIS.items():
            mean, ci = runs_mean_and_ci(group, name)
            row[f"{name}_mean"], row[f"{name}_ci"] = mean, ci
            row[f"{name}_lo"], row[f"{name}_hi"] = bounded_interval(mean, ci, kpi.bounds)
        row["converged_seeds"] = int(group.converged.notna().sum())  # judged ones
        rows.append(row)
    return pd.DataFrame(rows)


def paired(per_run: pd.DataFrame, reference: str,
           kpis: Sequence[str] = PAIRED) -> pd.DataFrame:
    """Each design minus the reference design on their common seeds, with a 95 % CI.

    Pairs share pricing, learner, variant and seed (and population where the study
    draws several): the same population, days and initial state; with several
    populations the CI is over their mean differences (`over_draws`). The learners'
    random draws are not aligned across designs (designs
    differ in how many learners draw), so this pairs by seed rather than fully common
    random numbers; the CI is narrower than those of the two means where the seed moves
    both designs alike.
    """
    setting = [c for c in GROUP if c != "design"]
    draws = draw_keys(per_run)
    base = per_run[per_run.design == reference].set_index([*setting, *draws])
    rows = []
    for key, group in per_run[per_run.design != reference].groupby(
            ["design", *setting], sort=False, dropna=False):
        mine = group.set_index([*setting, *draws])
        common = mine.index.intersection(base.index)
        populations = (common.get_level_values("population").to_numpy()
                       if "population" in draws else None)
        for name in kpis:
            diff = (mine.loc[common, name] - base.loc[common, name]).to_numpy(dtype=float)
            mean, ci = over_draws(diff, populations)
            rows.append({**dict(zip(["design", *setting], key, strict=True)),
                         "reference": reference, "kpi": name,
                         "seeds": int(np.isfinite(diff).sum()),  # pairs with a value
                         "difference": mean, "ci": ci})
    return pd.DataFrame(rows, columns=[*GROUP, "reference", "kpi", "seeds", "difference",
                                       "ci"])


def headline_columns() -> dict[str, str]:
    """KPI name -> headline column title (label and unit)."""
    return {name: KPIS[name].title for name in HEADLINE}


def formatted(mean: float, ci: float, digits: int,
               interval: tuple[float, float] | None = None) -> str:
    """'mean ± ci', or 'mean [lo, hi]' where the interval is cut at the KPI's bounds."""
    if np.isnan(mean):
        return "-"
    if np.isnan(ci):
        return f"{mean:.{digits}f}"
    slack = 1e-9 * (abs(mean) + ci)  # summary.csv keeps 16 digits: not a cut
    if interval is not None and (interval[0] > mean - ci + slack
                                 or interval[1] < mean + ci - slack):
        return f"{mean:.{digits}f} [{interval[0]:.{digits}f}, {interval[1]:.{digits}f}]"
    return f"{mean:.{digits}f} ± {ci:.{digits}f}"


def signed(mean: float, ci: float, digits: int) -> str:
    """A difference as '+mean ± ci' ('-' if undefined, no CI with one pair)."""
    if pd.isna(mean):
        return "-"
    return f"{mean:+.{digits}f}" + ("" if pd.isna(ci) else f" ± {ci:.{digits}f}")


def learned_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows of learned settings, without the reference runs (all rows if only references)."""
    learned = ~frame.learner.isin(list(REFERENCES))
    return frame[learned] if learned.any() else frame


def headline(summary: pd.DataFrame) -> pd.DataFrame:
    """The columns that answer the design question, formatted as 'mean ± ci'.

    One row per learned setting (the references are in `learning_table`). `converged`
    is shown as the number of seeds whose play settled from the KPI window's first round
    on, of those where it can be judged ('-': none); group columns that take a single
    value are left out.
    """
    summary = learned_rows(summary)
    keep = [c for c in GROUP if summary[c].fillna("").astype(str).nunique() > 1
            or c == "design"]
    out = summary[keep].copy()
    for name, title in headline_columns().items():
        if name == "converged":
            out[title] = [f"{round(m * n)}/{n}" if np.isfinite(m) else "-"
                          for m, n in zip(summary[f"{name}_mean"],
                                          summary[f"{name}_seeds"], strict=True)]
            continue
        digits = KPIS[name].digits
        if name in REFERENCE_KPIS:  # differences carry a sign
            out[title] = [signed(m, c, digits) for m, c in
                          zip(summary[f"{name}_mean"], summary[f"{name}_ci"], strict=True)]
            continue
        out[title] = [formatted(m, c, digits, (lo, hi)) for m, c, lo, hi in zip(
            summary[f"{name}_mean"], summary[f"{name}_ci"], summary[f"{name}_lo"],
            summary[f"{name}_hi"], strict=True)]
    return out


def learning_table(summary: pd.DataFrame) -> pd.DataFrame:
    """Learned vs random vs truthful play, per learned setting: did the agents learn?

    DSO cost and Lerner index of the learned setting and of the two references on the
    same design, pricing and variant (means over seeds), the paired learned - random
    differences with their 95 % CI, and the earners' entropy and greedy-play share in
    the window. Empty without reference runs.
    """
    keys = ["design", "pricing", "variant"]
    refs = {label: summary[summary.learner == label].set_index(keys)
            for label in REFERENCES}
    learned = summary[~summary.learner.isin(list(REFERENCES))]
    if learned.empty or all(frame.empty for frame in refs.values()):
        return pd.DataFrame()
    index = pd.MultiIndex.from_frame(learned[keys])
    out = pd.DataFrame({"setting": setting_labels(learned).to_numpy()})
    for name, difference in (("dso_cost", "dso_cost_vs_random"), ("lerner", "lerner_vs_random")):
        digits = KPIS[name].digits
        out[f"{KPIS[name].label} learned"] = [
            formatted(m, c, digits) for m, c in zip(learned[f"{name}_mean"],
                                                     learned[f"{name}_ci"], strict=True)]
        for label, frame in refs.items():
            values = frame[f"{name}_mean"].reindex(index).to_numpy(dtype=float)
            out[f"{KPIS[name].label} {label}"] = [formatted(v, np.nan, digits)
                                                   for v in values]
        out[f"learned - random {KPIS[name].label}"] = [
            signed(m, c, digits) for m, c in zip(learned[f"{difference}_mean"],
                                                 learned[f"{difference}_ci"], strict=True)]
    for name in ("entropy_earners", "greedy_share"):
        out[KPIS[name].label] = [formatted(m, c, 2) for m, c in zip(
            learned[f"{name}_mean"], learned[f"{name}_ci"], strict=True)]
    return out


GROUP_MEANINGS = {
    "design": "services and products bought (CM congestion, VC voltage; P, Q); stages "
              "joined by '>' clear one after the other",
    "pricing": "pay-as-bid, or locational (uniform price per bus, period and product)",
    "learner": "the learners' setting (population: each FSP's own)",
    "variant": "the swept assumption, e.g. voll=300.0",
}


def glossary(full: bool = False) -> str:
    """What every headline column means (with `full`, every KPI of summary.csv too)."""
    lines = ["Headline columns (mean ± half-width of the 95 % CI over seeds; '-' = not "
             "defined, e.g. no accepted bid or one seed):"]
    lines += [f"  {name:<10} {text}" for name, text in GROUP_MEANINGS.items()]
    for name, title in headline_columns().items():
        kpi = KPIS[name]
        lines.append(f"  {title}: {kpi.meaning}" + (f" [{kpi.unit}]" if kpi.unit else ""))
    if full:
        lines += ["", "Every KPI (summary.csv: <name>_mean, <name>_ci; formulas in "
                  "docs/model.md section 9):"]
        lines += [f"  {kpi.name} ({kpi.unit or '-'}, {kpi.aggregation}): {kpi.meaning}"
                  for kpi in KPIS.values()]
    return "\n".join(lines)
