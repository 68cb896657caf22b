"""A one-page Markdown report of a study: settings, headline, warnings, paired differences."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from lfm_abm.files import write_text_atomic
from lfm_abm.results.annual import ANNUAL, annual_table, chosen_days
from lfm_abm.results.diagnostics import Diagnostic
from lfm_abm.results.kpis import (
    GROUP,
    draws_phrase,
    glossary,
    headline,
    learned_rows,
    learning_table,
    setting_labels,
    signed,
)
from lfm_abm.results.load import StudyResults, failed_runs
from lfm_abm.results.registry import KPIS


def markdown_table(frame: pd.DataFrame) -> str:
    """A DataFrame as a GitHub Markdown table."""
    header = "| " + " | ".join(frame.columns) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    body = ["| " + " | ".join(str(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *body])


def paired_table(paired: pd.DataFrame, titles: Mapping[str, str] | None = None
                 ) -> pd.DataFrame:
    """Paired differences to the reference design, one column per KPI, 'mean ± ci'.

    `titles`: column title per KPI (default: the registry's, per round).
    """
    paired = learned_rows(paired) if len(paired) else paired
    if not len(paired):
        return pd.DataFrame()
    paired = paired.assign(setting=setting_labels(paired))
    out = paired.drop_duplicates("setting")[["setting", "seeds"]].reset_index(drop=True)
    for name, rows in paired.groupby("kpi", sort=False):
        kpi = KPIS[name]
        digits = kpi.digits
        title = titles[name] if titles is not None else kpi.title
        out[f"Δ {title}"] = [signed(m, c, digits)
                                 for m, c in zip(rows.difference, rows.ci, strict=True)]
    return out


def _learning_section(summary: pd.DataFrame) -> list[str]:
    """The learned-vs-references table with what its columns mean, or a note without."""
    table = learning_table(summary)
    if table.empty:
        return ["- no reference runs (`references = false`): what learning did is not "
                "measured.", ""]
    return [markdown_table(table), "",
            "Same seeds for all three; random = every FSP bids a uniformly random action "
            "of the grid every round, truthful = every FSP bids its true cost. learned - "
            "random is the mean ± 95 % CI of the paired differences per seed. Earners' "
            "entropy (1 = uniform, 0 = decided) and greedy play (share of the window's "
            "rounds in which a learner that earns played the action it believed best) say "
            "how settled the learners are; `plots/learning.png` draws both over rounds.", ""]


def _year_section(results: StudyResults) -> list[str]:
    """A [days] study's year: the weighted days, the year per setting, paired years."""
    if not len(results.annual_runs):
        return []
    listed = "; ".join(
        (f"{variant}: " if variant else "")
        + ", ".join(f"{day} ({weight:g})" for day, weight in sorted(weights.items()))
        for variant, weights in chosen_days(results.study).items())
    pairs = paired_table(results.annual_paired, {name: f"{label} ({unit})"
                                                 for name, (label, unit) in ANNUAL.items()})
    return [
        f"## The year (rule `{results.study['days']['rule']}`; mean ± 95 % CI over "
        f"{draws_phrase(results.study)})", "",
        f"Days simulated (days of the year each stands for): {listed}. Year = sum over "
        "the days of weight x the day's KPI; days without a need cost nothing in any "
        "design. Per-day KPIs are in `summary.csv` (variant `day=...`).", "",
        markdown_table(annual_table(results.annual)), "",
        *([f"Each design's year against {results.reference}'s (paired on "
           f"{'populations and ' if 'population' in results.runs else ''}seeds):", "",
           markdown_table(pairs), ""] if len(pairs) else []),
    ]


def write_report(results: StudyResults, figures: list[Path],
                 diagnostics: list[Diagnostic]) -> Path:
    """Write `report.md` in the study folder and return its path."""
    study, out = results.study, results.out
    runs = results.manifest.get("runs", {})
    current = set(results.manifest.get("current_runs", []))
    failed = failed_runs(results.manifest)
    reference = results.reference
    pairs = paired_table(results.paired)
    lines = [
        f"# Study `{study.get('name', out.name)}`",
        "",
        f"Grid **{study.get('grid')}**, population `{Path(study.get('population', '')).name}`, "
        f"{study.get('rounds')} rounds x {len(study.get('seeds', []))} seeds per setting; "
        f"KPIs over the last {study.get('window')} rounds; AC validation every "
        f"{study.get('ac_every')} round(s) (after-AC figures use validated rounds only).",
        "",
        f"## Headline (mean ± 95 % CI over {draws_phrase(study)})",
        "",
        markdown_table(headline(results.summary)),
        "",
        "```", glossary(), "```",
        "",
        *_year_section(results),
        "## Did the agents learn? Learned against random and truthful play",
        "",
        *_learning_section(results.summary),
        "## Warnings",
        "",
        *([f"- **{d.kind}**: {d.found}. *Fix:* {d.fix}." for d in diagnostics]
          or ["- none"]),
        "",
        f"## Each design against {reference} (paired over common seeds)",
        "",
        (markdown_table(pairs) + "\n\nDifference = design - reference per seed, mean ± "
         "95 % CI: designs share seeds (common random numbers), so the pairs remove what "
         "the seed draws for both." if len(pairs) else f"- (no other design than {reference})"),
        "",
        "## Figures",
        "",
    ]
    for figure in figures:
        lines += [f"![{figure.stem}](plots/{figure.name})", ""]
    lines += ["## Runs", "",
              f"{sum(runs.get(r, {}).get('status') == 'finished' for r in current)} finished, "
              f"{len(failed)} failed."]
    for run_id, info in failed.items():
        lines.append(f"- `{run_id}` failed: {info.get('error')}")
    lines += ["", "All KPIs per setting (means and CI half-widths) are in `summary.csv`, per "
              "run in `runs.csv`, paired differences in `paired.csv`; per-run tables in "
              "`runs/`. Group columns: " + ", ".join(GROUP) + "."]
    path = out / "report.md"
    write_text_atomic(path, "\n".join(lines) + "\n")
    return path
