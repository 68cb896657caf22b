"""A one-page Markdown report of a study: settings, headline table, figures, caveats."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from lfm_abm.results.kpis import GROUP, headline


def _markdown_table(frame: pd.DataFrame) -> str:
    header = "| " + " | ".join(frame.columns) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    body = ["| " + " | ".join(str(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *body])


def _findings(summary: pd.DataFrame) -> list[str]:
    """Plain statements comparing every design with the joint CMVC_PQ design."""
    summary = summary.assign(variant=summary["variant"].fillna("").astype(str))
    joint = summary[summary.design == "CMVC_PQ"]
    lines = []
    for row in joint.itertuples(index=False):
        same = summary[(summary.pricing == row.pricing) & (summary.learner == row.learner)
                       & (summary.variant == row.variant) & (summary.design != "CMVC_PQ")]
        setting = ", ".join(v for v in (row.pricing, row.learner, row.variant) if v)
        for other in same.itertuples(index=False):
            lines.append(
                f"- {other.design} vs CMVC_PQ ({setting}): procurement "
                f"{other.dso_cost_mean:.1f} vs {row.dso_cost_mean:.1f} EUR/round, unmet need "
                f"after AC {other.unmet_need_after_ac_mean:.3f} vs "
                f"{row.unmet_need_after_ac_mean:.3f} MWh of emergency action, procurement + "
                f"VOLL x unmet {other.total_cost_mean:.0f} vs {row.total_cost_mean:.0f} "
                "EUR/round.")
    return lines


def write_report(out: Path, manifest: dict, summary: pd.DataFrame, figures: list[Path]) -> Path:
    """Write `report.md` in the study folder and return its path."""
    study = manifest.get("study", {})
    runs = manifest.get("runs", {})
    failed = {k: v for k, v in runs.items() if v.get("status") == "failed"}
    lines = [
        f"# Study `{study.get('name', out.name)}`",
        "",
        f"Grid **{study.get('grid')}**, population `{study.get('population')}`, "
        f"{study.get('rounds')} rounds x {len(study.get('seeds', []))} seeds per setting; "
        f"KPIs over the last {study.get('window')} rounds; AC validation every "
        f"{study.get('ac_every')} round(s) (after-AC figures use validated rounds only).",
        "",
        "## Headline (mean ± 95 % CI over seeds)",
        "",
        _markdown_table(headline(summary)),
        "",
        "## Joint CMVC_PQ against the other designs",
        "",
        *(_findings(summary) or ["- (no CMVC_PQ design in this study)"]),
        "",
        "## Figures",
        "",
    ]
    for figure in figures:
        lines += [f"![{figure.stem}](plots/{figure.name})", ""]
    lines += ["## Runs", "",
              f"{sum(v.get('status') == 'finished' for v in runs.values())} finished, "
              f"{len(failed)} failed."]
    for run_id, info in failed.items():
        lines.append(f"- `{run_id}` failed: {info.get('error')}")
    lines += ["", "All KPIs per setting (means and CI half-widths) are in `summary.csv`; "
              "per-run tables in `runs/`. Group columns: " + ", ".join(GROUP) + "."]
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path
