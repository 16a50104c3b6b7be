"""`dlx ui` in a real browser: train one run, serve the UI over its store, and check in headless
Chromium that the experiment page lists the run by name and the run page shows its test metric.

Run with `make test-browser` (marker `browser`, left out of `make test`). Screenshots for people
to look at: outputs/browser/experiment.png and outputs/browser/run.png.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

SHOTS = Path(__file__).resolve().parents[2] / "outputs" / "browser"
UI_START_S = 180  # MLflow's server starts 4 workers and a job runner: ~60 s on a busy 2-core box
RENDER_S = 90  # the React app fetches runs after it loads


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def _ui(dlx):
    """Start `dlx ui --port P` over the fixture's ./mlflow.db in its own process group; yield a
    function that waits until it answers and returns its URL. Stopped like a user's Ctrl-C."""
    port, log = _free_port(), dlx.cwd / "ui.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "dlx", "ui", "--port", str(port)],
                                cwd=dlx.cwd, env=dlx.env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    url = f"http://127.0.0.1:{port}"

    def ready() -> str:
        deadline = time.time() + UI_START_S
        while True:
            try:
                urllib.request.urlopen(f"{url}/health", timeout=2)
                return url
            except OSError:
                if proc.poll() is not None or time.time() > deadline:
                    pytest.fail(f"dlx ui did not answer on {url} (exit {proc.poll()}):\n"
                                + log.read_text()[-3000:])
                time.sleep(0.5)

    try:
        yield ready
    finally:
        _stop(proc)


def _stop(proc: subprocess.Popen) -> None:
    """SIGINT to the whole group, as Ctrl-C in a terminal; SIGKILL whatever is left after 5 s
    (MLflow's workers and job consumers take ~20 s to exit on a busy machine)."""
    with suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGINT)
        deadline = time.time() + 5
        while time.time() < deadline:
            proc.poll()
            os.killpg(proc.pid, 0)  # raises once the group is gone
            time.sleep(0.5)
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _wait_for_text(driver, wanted: list[str], shot: str) -> str:
    """Wait until the page's visible text holds every wanted string; return that text. On a
    timeout, save the screenshot `shot` and fail with what the page shows instead."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    def body() -> str:
        return driver.find_element(By.TAG_NAME, "body").text

    try:
        WebDriverWait(driver, RENDER_S, poll_frequency=0.5).until(
            lambda d: all(w in body() for w in wanted))
    except TimeoutException:
        driver.save_screenshot(str(SHOTS / shot))
        pytest.fail(f"{driver.current_url} did not show {wanted} within {RENDER_S} s "
                    f"(screenshot {SHOTS / shot}); it shows:\n{body()[:3000]}")
    return body()


def test_ui_lists_the_run_and_shows_its_test_metric(browser, dlx):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    dlx.client().search_experiments()  # creates ./mlflow.db: the UI and the run never both migrate it
    with _ui(dlx) as ready:
        # train while MLflow's server starts, as a user watching runs come in would
        printed = dlx.train("model=linear", "dataset=synthetic_linear", "trainer.epochs=2").stdout
        (run,) = dlx.runs()
        name, run_id, exp = run.info.run_name, run.info.run_id, run.info.experiment_id
        test_loss = run.data.metrics["test_loss"]
        SHOTS.mkdir(parents=True, exist_ok=True)
        url = ready()

        # the experiment page, in MLflow's "Model training" view, lists the run by name, with
        # its dataset in the Dataset column...
        browser.get(f"{url}/#/experiments/{exp}/runs?workflowType=machine_learning")
        _wait_for_text(browser, [name, "synthetic_linear ("], "experiment.png")
        browser.save_screenshot(str(SHOTS / "experiment.png"))
        link = browser.find_element(By.CSS_SELECTOR, f"a[href*='/runs/{run_id}']")
        assert link.text == name

        # ...linked to the run page, whose overview tab lists every metric with its value
        link.click()
        WebDriverWait(browser, RENDER_S).until(EC.url_contains(f"/runs/{run_id}"))
        text = _wait_for_text(browser, [name, "Metrics (", "test_loss"], "run.png")
        lines = [line.strip() for line in text.splitlines()]
        shown = lines[lines.index("test_loss") + 1]
        assert float(shown) == pytest.approx(test_loss, rel=1e-9), (shown, test_loss)
        heading = browser.find_element(By.XPATH, "//*[starts-with(normalize-space(), 'Metrics (')]")
        browser.execute_script("arguments[0].scrollIntoView()", heading)
        browser.save_screenshot(str(SHOTS / "run.png"))

        # the link `dlx train` printed opens the run in the Model-training view, not under the
        # GenAI view's "Evaluations" (MLflow 3.17's default): the sidebar has no GenAI items
        (link_line,) = [line.strip() for line in printed.splitlines() if "/#/experiments/" in line]
        browser.get(link_line.replace("http://127.0.0.1:5000", url))
        text = _wait_for_text(browser, [name, "Model metrics", "System metrics"], "link.png")
        assert "Judges" not in text and "Evaluations" not in text.splitlines()[:40], text[:800]
        browser.save_screenshot(str(SHOTS / "link.png"))
