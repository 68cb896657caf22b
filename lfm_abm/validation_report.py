"""How good is the linear market? Its predictions against AC power flows, per period.

The population's offers at true cost are cleared once with the linear model alone and
once with re-linearisation; for each period the report shows the flexibility bought,
the largest error of the last linear clearing's prediction against the AC power flow
(voltage in p.u., branch loading in percentage points, over all buses and branches) and
the needs still violated after AC validation.
"""

from __future__ import annotations

from dataclasses import replace

import pandapower as pp
import pandas as pd

from lfm_abm.agents.population import Population
from lfm_abm.day import market_day
from lfm_abm.market.clearing import ClearingResult, Market, MarketCase
from lfm_abm.market.designs import parse_design
from lfm_abm.market.params import MarketParams
from lfm_abm.network.scenarios import Scenario


def _per_period(case: MarketCase, result: ClearingResult) -> pd.DataFrame:
    flex = result.flex.groupby("period")[["dp_mw", "dq_mvar"]].agg(lambda s: s.abs().sum())
    lin = result.validation.linearisation.set_index("period")
    needs = result.validation.needs
    counts = needs.groupby("period").size() if len(needs) else pd.Series(dtype=int)
    rows = []
    for period in sorted(set(flex.index) | set(case.baseline_needs.period)):
        rows.append({
            "period": case.points[period].label,
            "|dP| MW": flex.dp_mw.get(period, 0.0), "|dQ| MVAr": flex.dq_mvar.get(period, 0.0),
            "V error p.u.": lin.vm_error_pu.get(period, 0.0),
            "loading error pp": lin.loading_error_pct.get(period, 0.0),
            "needs after AC": int(counts.get(period, 0)),
        })
    return pd.DataFrame(rows)


def linearisation_report(net: pp.pandapowerNet, scenario: Scenario, population: Population,
                         design: str, relinearise: int) -> str:
    """Text report: per-period linearisation error without and with re-linearisation."""
    parsed = parse_design(design)
    lines = []
    for iterations in (0, relinearise):
        case = MarketCase.build(net, scenario, params=replace(MarketParams(),
                                                              relinearise=iterations))
        day = market_day(case, population, parsed)
        result = Market(case, parsed).clear(day.book.truthful_bids(), day.book.devices,
                                            trusted=True)
        summary = result.summary(case.params)
        table = _per_period(case, result)
        title = ("linear clearing only" if iterations == 0 else
                 f"with re-linearisation (up to {iterations} extra clearings, "
                 f"{result.stats['stages'] - len(parsed.stages)} used)")
        lines += [f"{design} on {len(population)} FSPs' offers at true cost: {title}",
                  table.to_string(index=False, float_format=lambda v: f"{v:.4f}"),
                  f"worst: V {table['V error p.u.'].max():.5f} p.u., loading "
                  f"{table['loading error pp'].max():.3f} pp; unmet need after AC "
                  f"{summary['unmet_need_after_ac']:.4f} MWh of emergency action "
                  f"(collateral {summary['collateral_after_ac']:.4f}); cost "
                  f"{summary['procurement_cost']:.1f} EUR", ""]
        if iterations == relinearise:
            break
    return "\n".join(lines).rstrip()
