"""The interactive page: its numbers (without a browser) and the page in headless Chromium."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from urllib.parse import urlparse

import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import LineCollection

from lfm_abm.app_figures import bidding_figure, cost_figure, grid_map, stack_figure
from lfm_abm.app_model import AppModel, grid_state, need_market, round_awards
from lfm_abm.cli import main
from lfm_abm.errors import InputError
from lfm_abm.results.plots import SMOOTH

PERIOD = 12  # cigre-mv's default day: line 0 and 1 overloaded, feeder 1 above 1.05 p.u.
ROUNDS = 3


@pytest.fixture(scope="module")
def stepped():
    """The default page's model before any round (map state) and after ROUNDS rounds."""
    model = AppModel(seed=3)
    before = grid_state(model, PERIOD)
    for _ in range(ROUNDS):
        model.step()
    return model, before


def _line_loading(point) -> pd.Series:
    return point.branches.line.loading_percent


def test_menus_reject_unknown_values_naming_the_field():
    with pytest.raises(InputError) as error:
        AppModel(grid="nowhere")
    assert "grid" in str(error.value) and "cigre-mv" in str(error.value)
    with pytest.raises(InputError, match="pricing"):
        AppModel(pricing="vickrey")


def test_map_before_any_round_is_the_baseline(stepped):
    model, before = stepped
    case = model.day(model.days[0]).case
    assert not before.after_awards and before.awards.empty
    lines = before.branches[before.branches.element == "line"].set_index("element_id")
    baseline = _line_loading(case.points[PERIOD])
    assert np.allclose(lines.loading_percent.reindex(baseline.index), baseline)
    assert np.allclose(before.buses.set_index("bus").vm_pu, case.points[PERIOD].vm_pu
                       .reindex(before.buses.bus))
    needs = case.baseline_needs
    assert len(before.needs) == int((needs.period == PERIOD).sum())  # CMVC buys CM and VC


def test_map_after_a_round_is_the_ac_state_with_its_awards(stepped):
    model, _ = stepped
    state = grid_state(model, PERIOD)
    assert state.after_awards
    point = model.latest_result.validation.points[PERIOD]
    lines = state.branches[state.branches.element == "line"].set_index("element_id")
    assert np.allclose(lines.loading_percent.reindex(_line_loading(point).index),
                       _line_loading(point))
    awards = round_awards(model)
    mine = awards[awards.period == PERIOD].groupby(["bus", "product"]).awarded.sum()
    drawn = state.awards.set_index(["bus", "product"]).awarded
    assert len(mine) > 0
    pd.testing.assert_series_equal(drawn.sort_index(), mine.sort_index(), check_names=False)
    assert state.awards[["x", "y"]].notna().all().all()


def test_round_awards_settle_to_dso_cost_and_profits(stepped):
    model, _ = stepped
    rounds, agents = model.history()
    awards = round_awards(model)
    assert (awards.awarded > 0).all()
    assert awards.payment.sum() == pytest.approx(rounds.dso_cost.iloc[-1], rel=1e-12)
    last = agents[agents["round"] == model.round]
    assert awards.profit.sum() == pytest.approx(last.profit.sum(), abs=1e-6)
    assert awards.payment.is_monotonic_decreasing


def test_need_market_holds_the_offers_that_relieve_the_need(stepped):
    model, _ = stepped
    need = model.needs[model.needs.period == PERIOD].iloc[0]
    market = need_market(model, need.need_id)
    relief = model.network.relief[model.network.relief.need_id == need.need_id]
    offers = model.offers_of("last")
    expected = offers[(offers.period == need.period)
                      & offers.set_index(["bus", "product"]).index.isin(
                          relief.set_index(["bus", "product"]).index)]
    assert len(market) > 0 and set(market.bid_id) == set(expected.bid_id)
    assert (market.relief > 0).all()


def test_preparing_the_first_round_changes_no_round(stepped):
    """The page prepares a new model's benchmark before the first Step: same rounds."""
    model, _ = stepped
    prepared = AppModel(seed=3)
    prepared.prepare()
    for _ in range(ROUNDS):
        prepared.step()
    pd.testing.assert_frame_equal(prepared.history()[0].drop(columns="solve_seconds"),
                                  model.history()[0].drop(columns="solve_seconds"))


def test_truthful_bidders_cost_exactly_the_benchmark():
    """Pay-as-bid with every offer at true cost and in full is the truthful benchmark."""
    model = AppModel(learner="truthful")
    model.step()
    rounds, agents = model.history()
    assert rounds.dso_cost.iloc[0] == pytest.approx(rounds.truthful_cost.iloc[0], rel=1e-9)
    assert agents.profit.abs().max() < 1e-6


def test_figures_draw_the_numbers_of_the_state(stepped):
    model, _ = stepped
    state = grid_state(model, PERIOD)
    ax = grid_map(state, model.round).axes[0]
    coloured = next(c for c in ax.collections
                    if isinstance(c, LineCollection) and c.get_array() is not None)
    assert np.allclose(coloured.get_array(), state.branches.loading_percent)
    rounds, agents = model.history()
    cost_ax = cost_figure(rounds).axes[0]
    assert np.allclose(cost_ax.lines[0].get_ydata(), rounds.dso_cost)
    profit_ax = bidding_figure(agents).axes[1]
    kind = profit_ax.lines[0].get_label()
    mine = agents[agents.fsp_type == kind]
    per_fsp = mine.groupby("round").profit.sum() / mine.groupby("round").fsp_id.nunique()
    assert np.allclose(profit_ax.lines[0].get_ydata(),
                       per_fsp.rolling(SMOOTH, min_periods=1).mean())
    need = model.needs[model.needs.period == PERIOD].iloc[0]
    stack_ax = stack_figure(need_market(model, need.need_id), need).axes[0]
    assert any(np.allclose(line.get_xdata(), need.need) for line in stack_ax.lines)


# --- the page in a real browser ------------------------------------------------------

BROWSER_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
LOCAL = {"127.0.0.1", "localhost"}


def _chromium() -> str:
    """Path of a Chromium to drive; skips (with how to get one) where none is installed."""
    named = os.environ.get("LFM_ABM_CHROMIUM")
    if named:  # .ci/run names the one it installed: missing is then a failure
        assert os.path.isfile(named), f"LFM_ABM_CHROMIUM={named} does not exist"
        return named
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.skip("no headless Chromium: install Debian's chromium (apt-get install "
                    "chromium) or set LFM_ABM_CHROMIUM; .ci/run installs it")
    return found


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_until_served(url: str, server: subprocess.Popen, log, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            log.seek(0)
            pytest.fail(f"lfm-abm app exited with {server.returncode}:\n{log.read()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"lfm-abm app did not answer on {url} within {timeout} s")


@pytest.fixture
def served_app(tmp_path):
    """`lfm-abm app` on a free localhost port; yields its URL and server log."""
    port = _free_port()
    log_path = tmp_path / "server.log"
    with log_path.open("w+") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "lfm_abm.cli", "app", "--port", str(port), "--no-open"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            url = f"http://127.0.0.1:{port}/"
            _wait_until_served(url, server, log)
            yield url, log_path
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)


def _refused(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


@pytest.mark.slow
def test_the_apps_server_goes_with_it_on_sigterm(tmp_path):
    """A start without warnings; SIGTERM to `lfm-abm app` alone (not its process group)
    also stops the solara server, so the port is free again for the next start."""
    port = _free_port()
    with (tmp_path / "server.log").open("w+") as log:
        app = subprocess.Popen(
            [sys.executable, "-m", "lfm_abm.cli", "app", "--port", str(port), "--no-open"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            _wait_until_served(f"http://127.0.0.1:{port}/", app, log)
            log.seek(0)
            assert "Warning" not in log.read()  # a clean start: the URL, nothing else
            app.send_signal(signal.SIGTERM)
            assert app.wait(timeout=10) == 128 + signal.SIGTERM
            deadline = time.monotonic() + 5
            while not _refused(port) and time.monotonic() < deadline:
                time.sleep(0.2)
            assert _refused(port), "the solara server still holds the port 5 s after SIGTERM"
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(app.pid, signal.SIGKILL)


def test_a_port_in_use_is_one_line_and_exit_2(capsys):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["app", "--port", str(port), "--no-open"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"lfm-abm: error: --port: cannot listen on 127.0.0.1:{port}")
    assert err.count("\n") == 1


@pytest.mark.slow
def test_page_steps_and_runs_rounds_in_headless_chromium(served_app, tmp_path):
    playwright = pytest.importorskip("playwright.sync_api")
    executable = _chromium()
    url, log_path = served_app
    outside = []

    def local_only(route) -> None:
        if urlparse(route.request.url).hostname in LOCAL:
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    with playwright.sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=executable, headless=True,
                                         args=BROWSER_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1300})
            page.route("**/*", local_only)
            page.goto(url)
            counter = page.locator(".lfm-round")
            plot = page.locator(".lfm-cost-plot img")
            playwright.expect(counter).to_have_text("Round 0", timeout=120_000)
            preparing = page.locator(".lfm-preparing")  # the first round's one-off work
            playwright.expect(preparing).to_have_count(0, timeout=120_000)
            before = plot.get_attribute("src")
            page.get_by_role("button", name="Step").click()
            playwright.expect(counter).to_have_text("Round 1", timeout=120_000)
            playwright.expect(plot).not_to_have_attribute("src", before, timeout=60_000)
            playwright.expect(page.get_by_text("DSO cost", exact=False).first).to_be_visible()
            field = page.get_by_label("rounds")  # Run N rounds: in the background
            field.fill("2")
            field.press("Enter")
            page.get_by_role("button", name="Run 2 rounds").click()
            playwright.expect(counter).to_have_text("Round 3", timeout=120_000)
            shot = tmp_path / "app_after_one_round.png"
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    assert shot.stat().st_size > 20_000
    assert not outside, f"the page asked for addresses beyond localhost: {outside}"
    assert "Could not load URL" not in log_path.read_text(), "the server went online"
