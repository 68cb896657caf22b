"""Why a bid won nothing, in words, from the clearing's prices and duals.

A losing bid lost for the first of these reasons that holds:

* the design does not buy its product family;
* its price is above the reservation price (not admitted);
* no stage admitted it (its period has no need of a service the design buys and no
  device links it to one);
* its locational value is below zero: it would push a binding limit further out (named:
  the network row whose dual contributes most to that harm);
* its locational value is zero: nothing it could relieve binds ("not needed");
* its locational value is positive but below its price: dearer than what its relief is
  worth at the margin;
* otherwise it is priced at its value: a tie with an equally priced bid, or held back by
  its own device's capability or energy rows (their duals are not locational).

The locational value is that of the stage that first admitted the bid (`locational_price`
of the awards table: duals of the network rows x the bid's sensitivities, per MWh).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from lfm_abm.market.bids import families
from lfm_abm.market.clearing import ClearingResult

#: Locational values within this of 0 (EUR/MWh) count as zero.
VALUE_TOLERANCE = 1e-6
#: The reasons, in the order they are tested.
KINDS = ("not bought", "above reservation", "not admitted", "harmful", "not needed",
         "dearer", "at value")


def loss_reasons(result: ClearingResult, products: frozenset[str], reservation: float
                 ) -> pd.DataFrame:
    """Per bid of `result.awards`: `kind` and `why` it won nothing (both "" if it won).

    kind is one of KINDS; why says it in words, with the number or the limit concerned.
    """
    awards = result.awards
    value = awards.locational_price.to_numpy(dtype=float)
    price = awards.price.to_numpy(dtype=float)
    won = awards.awarded.to_numpy() > 0
    bought = families(awards["product"]).isin(products).to_numpy()
    harm = _harmed_limits(result, set(np.flatnonzero(~won & (value < -VALUE_TOLERANCE))))
    rows = []
    for i in range(len(awards)):
        if won[i]:
            rows.append(("", ""))
        elif not bought[i]:
            rows.append(("not bought", "the design does not buy this product"))
        elif price[i] > reservation:
            rows.append(("above reservation", f"above the reservation price {reservation:g}"))
        elif np.isnan(value[i]):
            rows.append(("not admitted", "its period has no need the design buys"))
        elif value[i] < -VALUE_TOLERANCE:
            rows.append(("harmful", f"it would push {harm.get(i, 'a binding limit')} further "
                                    f"(locational value {value[i]:.2f})"))
        elif value[i] <= VALUE_TOLERANCE:
            rows.append(("not needed", "nothing it relieves binds (locational value 0)"))
        elif value[i] < price[i]:
            rows.append(("dearer", f"dearer than its locational value {value[i]:.2f}"))
        else:
            rows.append(("at value", "priced at its value: a tie, or held by its device's "
                                     "capability or energy rows"))
    return pd.DataFrame(rows, columns=["kind", "why"], index=awards.index)


def _harmed_limits(result: ClearingResult, harmful: set[int]) -> dict[int, str]:
    """For the `harmful` bids (positions): the limit each harms most, named.

    Read in the stage that first admitted the bid, as its `locational_price` is.
    """
    named: dict[int, str] = {}
    for _, stage in result.stages:
        lp, duals = stage.lp, stage.solution.row_dual
        here = [(column, int(position)) for column, position in enumerate(lp.bid_index)
                if int(position) in harmful]
        if not here:
            continue
        y = np.where(lp.is_device_row, 0.0, duals)
        columns = lp.matrix[:, [column for column, _ in here]].tocsc()
        for k, (_, position) in enumerate(here):
            harmful.discard(position)  # its first admitting stage: later ones do not count
            start, end = columns.indptr[k], columns.indptr[k + 1]
            entries, values = columns.indices[start:end], columns.data[start:end]
            contribution = -y[entries] * values  # each row's part of the locational value
            if len(contribution) and contribution.min() < -VALUE_TOLERANCE:
                row = lp.rows.iloc[entries[int(np.argmin(contribution))]]
                named[position] = (f"the {row.service} limit of {row.element} "
                                   f"{row.element_id} in period {int(row.period)}")
    return named
