"""Watch a market learn: the interactive page (`lfm-abm app`, or `solara run lfm_abm/app.py`).

Mesa's controls (Reset, Play, Step and the model's menus, `mesa.visualization`) drive an
`AppModel`; the main area shows the latest round: the grid map of a chosen period, the
supply stack of a chosen need, DSO cost against the truthful benchmark, unmet need,
markups and profits by agent type, and the round's awards. The numbers come from
`app_model`, the figures from `app_figures`; this module only lays them out.
"""

from __future__ import annotations

import time

import pandas as pd
import solara
import solara.lab
from mesa.visualization.solara_viz import ModelController, ModelCreator
from mesa.visualization.utils import force_update, update_counter
from tqdm import tqdm

from lfm_abm.app_figures import bidding_figure, cost_figure, grid_map, stack_figure
from lfm_abm.app_model import CHOICES, DEFAULTS, AppModel, grid_state, need_market, round_awards

TITLE = "lfm-abm: a local flexibility market, round by round"
#: The market menus of Mesa's model creator (applied when the user presses Reset).
MODEL_PARAMS: dict[str, dict] = {
    **{name: {"type": "Select", "value": DEFAULTS[name], "values": list(values), "label": name}
       for name, values in CHOICES.items()},
    # a menu, not a slider: Mesa's slider shows its value only while it is dragged
    "seed": {"type": "Select", "value": 0, "values": list(range(100)), "label": "seed"},
}
#: What the progress of a background run says (tqdm's meter, as on the command line).
PROGRESS = "{n_fmt}/{total_fmt} rounds, {rate_fmt}, {remaining} left"
PROGRESS_EVERY = 0.5  # seconds between progress updates
FIGURE_FORMAT = {"format": "png", "dpi": 90}
#: Awards table columns rounded for reading (EUR and MW to cents and kW).
ROUNDING = {"awarded": 3, "price": 2, "cost": 2, "price_paid": 2, "payment": 2, "profit": 2}


def _need_label(need: pd.Series) -> str:
    return (f"{need.need_id}: {need.service} {need.element} {need.element_id}, "
            f"period {need.period} ({need.need:.3g} {need.unit})")


def _default_need(model: AppModel) -> int | None:
    """The largest need of the busiest period (most needs), as a first view."""
    needs = model.needs
    if not len(needs):
        return None
    busiest = needs.period.value_counts().idxmax()
    return int(needs[needs.period == busiest].sort_values("need").need_id.iloc[-1])


@solara.component
def RunRounds(model: solara.Reactive[AppModel]) -> None:
    """Run N rounds in the background: a progress bar with rounds/s and time left, a Stop.

    The page redraws once at the end (or on Stop), not every round: drawing takes ~1 s.
    """
    rounds = solara.use_reactive(10)
    status = solara.use_reactive("")

    def run() -> None:
        total, start = rounds.value, time.perf_counter()
        shown = start
        for done in range(1, total + 1):
            if not task.is_current():  # Stop pressed
                break
            model.value.step()
            now = time.perf_counter()
            if now - shown >= PROGRESS_EVERY:  # each update is a message to the browser
                shown = now
                task.progress = 100.0 * done / total
                status.set(tqdm.format_meter(done, total, now - start, unit="round",
                                             bar_format=PROGRESS))
        force_update()

    task = solara.lab.use_task(run, dependencies=None)
    with solara.Row():
        solara.InputInt("rounds", value=rounds, style={"max-width": "6em"})
        if task.pending:
            solara.Button("Stop", color="primary", on_click=task.cancel)
        else:
            solara.Button(f"Run {rounds.value} rounds", color="primary", on_click=task)
    if task.pending:
        solara.ProgressLinear(task.progress or True)
        solara.Text(status.value)


@solara.component
def Preparing(model: AppModel) -> None:
    """Prepares a new model's first round in the background, and says so while it runs."""
    task = solara.lab.use_task(model.prepare, dependencies=[id(model)], raise_error=False)
    if task.pending:
        with solara.Div(classes=["lfm-preparing"]):
            solara.ProgressLinear(True)
            solara.Text("Preparing the market day (the truthful benchmark: every offer "
                        "cleared at cost and AC-validated); a Step waits for it.")
    elif task.error:
        solara.Error(f"Preparing the market day failed: {task.exception}")


@solara.component
def Summary(model: AppModel) -> None:
    """Round counter and the round's headline numbers."""
    update_counter.get()
    rounds, _ = model.history()
    solara.Text(f"Round {model.round}", classes=["lfm-round"],
                style={"font-size": "1.6em", "font-weight": "bold"})
    choices = ", ".join(f"{k} {v}" for k, v in model.choices.items())
    if not len(rounds) or rounds.status.iloc[-1] != "ok":
        status = rounds.status.iloc[-1] if len(rounds) else "no round cleared yet"
        solara.Markdown(f"{choices}. {status}.")
        return
    last = rounds.iloc[-1]
    solara.Markdown(
        f"{choices}. Round {last['round']}: DSO cost **{last.dso_cost:,.1f} EUR** "
        f"(truthful benchmark {last.truthful_cost:,.1f} EUR, ratio {last.cost_ratio:.2f}); "
        f"unmet need after AC **{last.unmet_need_after_ac:.3f} MWh** "
        f"({last.unmet_need_no_market:.3f} MWh without a market).")


@solara.component
def Figures(model: AppModel, period: int, need_id: int | None) -> None:
    """The four figures of the latest round, each redrawn only when its inputs change."""
    update_counter.get()
    key = [id(model), model.round]
    rounds, agents = solara.use_memo(model.history, key)
    need = (model.needs.set_index("need_id", drop=False).loc[need_id]
            if need_id is not None else None)
    inputs = {"lfm-map": [*key, period], "lfm-stack": [*key, need_id],
              "lfm-cost-plot": key, "lfm-bidding": key}
    figures = {
        "lfm-map": solara.use_memo(lambda: grid_map(grid_state(model, period), model.round),
                                   inputs["lfm-map"]),
        "lfm-stack": solara.use_memo(
            lambda: stack_figure(need_market(model, need_id) if need is not None
                                 else pd.DataFrame(), need), inputs["lfm-stack"]),
        "lfm-cost-plot": solara.use_memo(lambda: cost_figure(rounds), key),
        "lfm-bidding": solara.use_memo(lambda: bidding_figure(agents), key),
    }
    names = list(figures)
    for pair in (names[:2], names[2:]):
        with solara.Columns([1, 1]):
            for name in pair:
                with solara.Div(classes=[name]):
                    solara.FigureMatplotlib(figures[name], dependencies=inputs[name],
                                            **FIGURE_FORMAT)


@solara.component
def AwardsTable(model: AppModel) -> None:
    """The latest round's awarded bids with payment and profit."""
    update_counter.get()
    awards = round_awards(model).round(ROUNDING)
    solara.Markdown(f"**Awards of round {model.round}** ({len(awards)} bids; payment sums to "
                    f"the DSO cost, profit = payment - true cost)")
    solara.DataFrame(awards, items_per_page=12)


@solara.component
def View(model: solara.Reactive[AppModel]) -> None:
    """Menus for what the figures show (period, need), then the round itself."""
    current = model.value
    needs = current.needs
    periods = [int(p.period) for p in current.day(current.days[0]).case.points]
    labels = {int(n.need_id): _need_label(n) for n in needs.itertuples(index=False)}
    need_choice = solara.use_reactive(None)
    period_choice = solara.use_reactive(None)
    # a choice stands while it exists; a reset to another grid or design falls back
    need_id = need_choice.value if need_choice.value in labels else _default_need(current)
    if period_choice.value in periods:
        period = period_choice.value
    elif need_id is not None:
        period = int(needs.period[needs.need_id == need_id].iloc[0])
    else:
        period = periods[0]
    with solara.Sidebar(), solara.Card("View"):
        solara.Select("period of the map", values=periods, value=period,
                      on_value=period_choice.set)
        if labels:
            solara.Select("need of the supply stack", values=list(labels.values()),
                          value=labels[need_id],
                          on_value=lambda text: need_choice.set(
                              next(k for k, v in labels.items() if v == text)))
    Preparing(current)
    Summary(current)
    Figures(current, period, need_id)
    AwardsTable(current)


@solara.component
def Page() -> None:
    """The whole page: Mesa's controls and the market menus, then the round's view."""
    first = solara.use_memo(AppModel, [])
    model = solara.use_reactive(first)
    parameters = solara.use_reactive({})
    play_interval = solara.use_reactive(100)
    render_interval = solara.use_reactive(1)
    use_threads = solara.use_reactive(False)
    solara.Title(TITLE)
    with solara.AppBar():
        solara.AppBarTitle(TITLE)
    with solara.Sidebar():
        with solara.Card("Run"):
            ModelController(model, model_parameters=parameters, play_interval=play_interval,
                            render_interval=render_interval, use_threads=use_threads)
            RunRounds(model)
        with solara.Card("Market (applied on Reset)"):
            ModelCreator(model, MODEL_PARAMS, model_parameters=parameters)
    View(model)
