"""A small grid with an on-load tap changer: one HV/MV transformer feeding two MV feeders.

Feeder A and feeder B each run three cable sections (`km` long) from the MV busbar, with a PV
plant or a load at every bus. The transformer's taps are on the HV side, +-9 steps of
1.5 % (a step up lowers every MV voltage by about 1.5 %).
"""

from __future__ import annotations

import pandapower as pp

from lfm_abm.network.scenarios import Scenario

#: One period at noon (the synthetic PV shape is 0.96 of rated there, load 0.64 of peak).
NOON = Scenario(hours=(12,))
CABLE = "NA2XS2Y 1x185 RM/25 12/20 kV"


def tap_grid(slack_pu: float, feeder_a: float, feeder_b: float,
             km: float = 2.0) -> pp.pandapowerNet:
    """Two feeders; `feeder_a`/`feeder_b` MW per bus: PV if positive, load if negative."""
    net = pp.create_empty_network()
    hv = pp.create_bus(net, 110.0, name="HV")
    mv = pp.create_bus(net, 20.0, name="MV busbar")
    pp.create_ext_grid(net, hv, vm_pu=slack_pu)
    pp.create_transformer_from_parameters(
        net, hv, mv, sn_mva=40.0, vn_hv_kv=110.0, vn_lv_kv=20.0, vkr_percent=0.3,
        vk_percent=12.0, pfe_kw=20.0, i0_percent=0.05, tap_side="hv", tap_neutral=0,
        tap_min=-9, tap_max=9, tap_step_percent=1.5, tap_pos=0, tap_changer_type="Ratio")
    for name, mw in (("A", feeder_a), ("B", feeder_b)):
        at = mv
        for k in range(3):
            bus = pp.create_bus(net, 20.0, name=f"{name}{k + 1}")
            pp.create_line(net, at, bus, km, CABLE)
            if mw > 0:
                pp.create_sgen(net, bus, p_mw=mw, type="PV", name=f"PV {name}{k + 1}")
            else:
                pp.create_load(net, bus, p_mw=-mw, q_mvar=0.0, name=f"load {name}{k + 1}")
            at = bus
    return net
