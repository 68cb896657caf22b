"""Market designs: which services the DSO buys and which products it admits.

A single-stage design is written SERVICE_PRODUCT with services CM, VC, CMVC and
products P, Q, PQ (9 designs). A sequential design chains single stages with '>'
(e.g. `CM_P>VC_Q`): each stage is cleared on the operating point left by the stages
before it, which is the "separate markets" baseline for joint co-optimisation. A stage
buys only its own services but respects every network limit (no-harm, see
`market/network_rows.py`).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from lfm_abm.errors import InputError

SERVICES = {"CM": frozenset({"CM"}), "VC": frozenset({"VC"}), "CMVC": frozenset({"CM", "VC"})}
PRODUCT_SETS = {"P": frozenset({"P"}), "Q": frozenset({"Q"}), "PQ": frozenset({"P", "Q"})}
#: All single-stage designs, e.g. CM_P ... CMVC_PQ.
SINGLE_DESIGNS = tuple(f"{s}_{p}" for s, p in itertools.product(SERVICES, PRODUCT_SETS))
#: Every network service: what an emergency-only clearing (no bids) must fix.
ALL_SERVICES = SERVICES["CMVC"]


@dataclass(frozen=True)
class Stage:
    """One clearing: the services bought (CM and/or VC) and product families admitted."""

    services: frozenset[str]
    products: frozenset[str]

    @property
    def name(self) -> str:
        """Canonical name such as CMVC_PQ."""
        service = "".join(s for s in ("CM", "VC") if s in self.services)
        product = "".join(p for p in ("P", "Q") if p in self.products)
        return f"{service}_{product}"


@dataclass(frozen=True)
class Design:
    """A market design: one stage (joint) or several cleared one after another."""

    stages: tuple[Stage, ...]

    @property
    def name(self) -> str:
        """Canonical name, stages joined by '>'."""
        return ">".join(stage.name for stage in self.stages)

    @property
    def services(self) -> frozenset[str]:
        """All services bought by any stage."""
        return frozenset().union(*(stage.services for stage in self.stages))

    @property
    def products(self) -> frozenset[str]:
        """All product families (P, Q) admitted by any stage: what FSPs offer."""
        return frozenset().union(*(stage.products for stage in self.stages))


def parse_design(text: str, field: str = "design") -> Design:
    """Parse `CMVC_PQ` or `CM_P>VC_Q` in any case; a typo raises InputError at `field`.

    Spellings that differ in case or spaces are the same design: its `name` is the one
    canonical spelling (upper case) that studies, run ids and tables use.
    """
    stages = []
    for part in str(text).split(">"):
        service, _, products = part.strip().upper().partition("_")
        if service not in SERVICES or products not in PRODUCT_SETS:
            where = f" in {text!r}" if ">" in str(text) else ""
            raise InputError(f"unknown design {part.strip()!r}{where} (sequential designs "
                             "join stages with '>', e.g. CM_P>VC_Q)", field=field,
                             allowed=SINGLE_DESIGNS)
        stages.append(Stage(SERVICES[service], PRODUCT_SETS[products]))
    return Design(tuple(stages))


def canonical_design(text: str, field: str = "design") -> str:
    """The canonical spelling of a design name (`cm_p > vc_q` -> `CM_P>VC_Q`)."""
    return parse_design(text, field).name
