"""Headless Chromium for the browser tests, driven by Selenium through Debian's chromedriver.

`make test-browser` installs `chromium` and `chromium-driver` (apt-get) when they are missing.
Without them the tests skip with the reason, except under CI (`CI` set), where they fail: CI
must really open the UI.
"""

from __future__ import annotations

import os
import shutil

import pytest

# Flags for a machine without network: without them Chromium stalls on connection attempts.
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage",  # /dev/shm is small in containers
    "--window-size=1400,1000",  # the size of the saved screenshots
]


def _unavailable(reason: str):
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; CI must run the browser test")
    pytest.skip(reason)


@pytest.fixture
def browser(tmp_path, monkeypatch):
    """A Selenium WebDriver on headless Chromium with a fresh profile; quit after the test."""
    try:
        from selenium import webdriver
        from selenium.common.exceptions import WebDriverException
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        _unavailable("selenium is not installed (pip install -e '.[dev]')")
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not chromium or not driver:
        _unavailable("Debian's chromium and chromedriver are not installed (`make test-browser` "
                     "installs them)")
    monkeypatch.setenv("SE_OFFLINE", "true")  # Selenium Manager must never download a browser
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in [*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'chromium-profile'}"]:
        options.add_argument(flag)
    try:  # an explicit driver path: Selenium Manager is not consulted
        drv = webdriver.Chrome(service=Service(driver), options=options)
    except WebDriverException as e:
        reason = (e.msg or str(e)).split("; For documentation")[0]
        _unavailable(f"headless chromium did not start: {reason}")
    drv.set_page_load_timeout(60)
    yield drv
    drv.quit()
