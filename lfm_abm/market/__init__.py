"""The sensitivity-based local flexibility market: bids, designs, LP, engines, pricing."""

from lfm_abm.market.bids import BID_COLUMNS, PRODUCTS, read_bids, validate_bids
from lfm_abm.market.clearing import ClearingResult, Market, MarketCase
from lfm_abm.market.designs import SINGLE_DESIGNS, Design, parse_design
from lfm_abm.market.params import MarketParams
from lfm_abm.market.pricing import PRICING_RULES
from lfm_abm.market.stages import StageResult, StageSolver, clear_stage, stage_plan

__all__ = [
    "BID_COLUMNS",
    "PRICING_RULES",
    "PRODUCTS",
    "SINGLE_DESIGNS",
    "ClearingResult",
    "Design",
    "Market",
    "MarketCase",
    "MarketParams",
    "StageResult",
    "StageSolver",
    "clear_stage",
    "parse_design",
    "read_bids",
    "stage_plan",
    "validate_bids",
]
