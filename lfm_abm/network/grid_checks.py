"""Is a pandapower net structurally usable? The first problem found, in words.

pandapower loads a JSON net whatever it holds and fails later, deep in the power flow,
with an `IndexError`, `KeyError`, `AttributeError` or a floating-point error that does
not say what is wrong. `grid_problem` walks the net in the order a reader would fix
it: tables that are not tables, the bus table, each element table (columns, buses it
names, numbers it needs), switches, and finally the slack, and stops at the first
problem (each check relies on the ones before). `check_grid` raises it as an
`InputError` naming the file and the table and column.

Numbers are checked only on in-service rows (pandapower ignores the others); bus
references on every row (pandapower looks them up for every row).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd

from lfm_abm.errors import InputError

#: Tables the tool reads; each must be a table (possibly empty). `bus` must have rows.
TABLES = ("bus", "ext_grid", "gen", "line", "trafo", "load", "sgen", "storage", "switch")
#: Columns of any table that name a bus.
BUS_COLUMNS = ("bus", "from_bus", "to_bus", "hv_bus", "mv_bus", "lv_bus")

#: Bus columns each element table must have.
BUSES_OF = {"ext_grid": ("bus",), "gen": ("bus",), "load": ("bus",), "sgen": ("bus",),
            "storage": ("bus",), "switch": ("bus",), "line": ("from_bus", "to_bus"),
            "trafo": ("hv_bus", "lv_bus")}

#: Numeric columns an in-service row needs, each with its lower bound: (bound, strict)
#: means "> bound" if strict else ">= bound"; None means any finite number.
Bound = tuple[float, bool] | None
NUMBERS: dict[str, dict[str, Bound]] = {
    "bus": {"vn_kv": (0.0, True)},
    "ext_grid": {"vm_pu": (0.0, True), "va_degree": None},
    "gen": {"p_mw": None, "vm_pu": (0.0, True)},
    "line": {"length_km": (0.0, True), "r_ohm_per_km": (0.0, False), "x_ohm_per_km": None,
             "c_nf_per_km": (0.0, False), "max_i_ka": (0.0, True), "df": (0.0, True),
             "parallel": (1.0, False)},
    "trafo": {"sn_mva": (0.0, True), "vn_hv_kv": (0.0, True), "vn_lv_kv": (0.0, True),
              "vk_percent": None, "vkr_percent": None, "pfe_kw": None,
              "i0_percent": None, "shift_degree": None, "df": (0.0, True),
              "parallel": (1.0, False)},
    "load": {"p_mw": None, "q_mvar": None, "scaling": None},
    "sgen": {"p_mw": None, "q_mvar": None, "scaling": None},
    "storage": {"p_mw": None, "q_mvar": None, "scaling": None},
}
#: Switch element types and the table their `element` names.
SWITCH_ELEMENTS = {"b": "bus", "l": "line", "t": "trafo", "t3": "trafo3w"}
#: Branch ends a line or trafo switch must sit at.
BRANCH_ENDS = {"line": ("from_bus", "to_bus"), "trafo": ("hv_bus", "lv_bus"),
               "trafo3w": ("hv_bus", "mv_bus", "lv_bus")}

Problem = tuple[str, str]  # (field, what is wrong)


def check_grid(net: object, source: str) -> None:
    """Raise `InputError` naming `source` and the field for the first problem found."""
    problem = grid_problem(net)
    if problem is not None:
        raise InputError(problem[1], source=source, field=problem[0])


def grid_problem(net: object) -> Problem | None:
    """The first structural problem of the net as (field, message); None if it is sound."""
    return next(_walk(net), None)


def _walk(net: object) -> Iterator[Problem]:
    """The checks in order; only the first problem is read (later ones assume it passed)."""
    tables = dict(net) if isinstance(net, dict) else {}
    for name in TABLES:
        if name not in tables:
            yield name, f"the net has no {name!r} table"
            return
        if not isinstance(tables[name], pd.DataFrame):
            yield name, f"{name!r} is not a table (got {type(tables[name]).__name__})"
            return
    sn_mva = _number(tables.get("sn_mva", 1.0))
    if not (np.isfinite(sn_mva) and sn_mva > 0):
        yield "sn_mva", f"must be a number > 0, got {tables.get('sn_mva')!r}"
        return
    bus = tables["bus"]
    if len(bus) == 0:
        yield "bus", "the net has no buses"
        return
    if bus.index.has_duplicates:
        yield "bus", f"bus {bus.index[bus.index.duplicated()][0]!r} appears twice"
        return
    yield from _table_problems(tables, "bus")
    in_service = bus.index[_flags(bus.in_service)]
    if len(in_service) == 0:
        yield "bus.in_service", "every bus is out of service"
        return
    for name in TABLES[1:]:
        yield from _table_problems(tables, name)
    for name, table in tables.items():
        if name not in TABLES and isinstance(table, pd.DataFrame) and len(table) \
                and not name.startswith("res_"):
            yield from _bus_references(name, table, bus.index)
    yield from _switch_problems(tables)
    yield from _slack_problems(tables, set(in_service))


def _table_problems(tables: dict, name: str) -> Iterator[Problem]:
    """Columns, flags, bus references and numbers of one element table."""
    table: pd.DataFrame = tables[name]
    if len(table) == 0:
        return
    flag = "closed" if name == "switch" else "in_service"
    needed = [flag, *BUSES_OF.get(name, ()), *NUMBERS.get(name, {})]
    missing = [c for c in needed if c not in table.columns]
    if missing:
        yield f"{name}.{missing[0]}", f"the {name} table has no column {missing[0]!r}"
        return
    flags = table[flag]
    bad = ~flags.map(_is_flag).to_numpy(dtype=bool)
    if bad.any():
        at = int(np.flatnonzero(bad)[0])
        yield (f"{name}.{flag}",
               f"{name} {table.index[at]}: must be true or false, got {_shown(flags.iloc[at])}")
        return
    if name != "bus":
        yield from _bus_references(name, table, tables["bus"].index)
    on = _flags(flags)
    for column, bound in NUMBERS.get(name, {}).items():
        values = pd.to_numeric(table[column], errors="coerce").to_numpy(dtype=float)
        with np.errstate(invalid="ignore"):
            bad = on & ~np.isfinite(values)
            allowed = "a number"
            if bound is not None:
                low, strict = bound
                bad |= on & ((values <= low) if strict else (values < low))
                allowed = f"a number {'>' if strict else '>='} {low:g}"
        if bad.any():
            at = int(np.flatnonzero(bad)[0])
            got = table[column].iloc[at]
            what = "missing (NaN)" if _is_nan(got) else f"got {_shown(got)}"
            yield (f"{name}.{column}",
                   f"{name} {table.index[at]}: {column} must be {allowed}, {what}")
            return


def _bus_references(name: str, table: pd.DataFrame, buses: pd.Index) -> Iterator[Problem]:
    for column in BUS_COLUMNS:
        if column not in table.columns:
            continue
        bad = ~table[column].isin(buses).to_numpy(dtype=bool)
        if bad.any():
            at = int(np.flatnonzero(bad)[0])
            yield (f"{name}.{column}", f"{name} {table.index[at]} names bus "
                                       f"{_shown(table[column].iloc[at])}, which is not in the "
                                       "bus table")
            return


def _switch_problems(tables: dict) -> Iterator[Problem]:
    switch: pd.DataFrame = tables["switch"]
    if len(switch) == 0:
        return
    for column in ("et", "element"):
        if column not in switch.columns:
            yield f"switch.{column}", f"the switch table has no column {column!r}"
            return
    for index, bus, kind, element in zip(switch.index, switch.bus, switch.et, switch.element,
                                         strict=True):
        target = SWITCH_ELEMENTS.get(kind) if isinstance(kind, str) else None
        if target is None:
            yield ("switch.et", f"switch {index}: et must be one of "
                                f"{', '.join(SWITCH_ELEMENTS)}, got {kind!r}")
            return
        table = tables.get(target)
        if not isinstance(table, pd.DataFrame) or element not in table.index:
            yield ("switch.element", f"switch {index} names {target} {element!r}, which is "
                                     f"not in the {target} table")
            return
        ends = BRANCH_ENDS.get(target)
        if ends and all(c in table.columns for c in ends) and \
                bus not in {table.at[element, c] for c in ends}:
            yield ("switch.bus", f"switch {index} sits at bus {bus!r}, which is not an end "
                                 f"of {target} {element}")
            return


def _slack_problems(tables: dict, live_buses: set) -> Iterator[Problem]:
    """An in-service ext_grid (or gen with slack=True) at an in-service bus."""
    candidates = [("ext_grid", row) for row in tables["ext_grid"].itertuples()]
    gen = tables["gen"]
    if len(gen) and "slack" in gen.columns:
        candidates += [("gen", row) for row in gen[_flags(gen.slack)].itertuples()]
    if not candidates:
        yield "ext_grid", "the net has no slack (an ext_grid, or a gen with slack=True)"
        return
    reasons = []
    for name, row in candidates:
        if not _is_true(row.in_service):
            reasons.append(f"{name} {row.Index} is out of service")
        elif row.bus not in live_buses:
            reasons.append(f"{name} {row.Index} sits at bus {row.bus}, which is out of service")
        else:
            return
    yield "ext_grid", f"no slack in service: {'; '.join(reasons)}"


def _is_flag(value: object) -> bool:
    return isinstance(value, bool | np.bool_) or (
        isinstance(value, int | float | np.integer | np.floating) and value in (0, 1))


def _is_true(value: object) -> bool:
    return _is_flag(value) and bool(value)


def _flags(column: pd.Series) -> np.ndarray:
    """True where a flag column is true (anything that is not a flag counts as false)."""
    if column.dtype == bool:
        return column.to_numpy()
    return column.map(_is_true).to_numpy(dtype=bool)


def _shown(value: object) -> str:
    """A value as the user wrote it: numpy scalars as plain numbers."""
    return repr(value.item() if isinstance(value, np.generic) else value)


def _is_nan(value: object) -> bool:
    return isinstance(value, float | np.floating) and np.isnan(value)


def _number(value: object) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return float("nan")
