"""A server stopped the way a service manager or `kill` stops it (SIGTERM) while a student's runs compute
stops their jobs first: nothing is left `running` in the store. uvicorn ends a SIGTERM'd process by
raising the signal again after its shutdown, so the atexit handlers never run; the app's lifespan stops
the jobs (ui/startup.py)."""

import sqlite3
import time

import pytest
from browser_support import CHROMIUM_ARGS, chromium, start_server

pytestmark = pytest.mark.browser


def test_a_server_stopped_with_sigterm_leaves_no_run_half_written(tmp_path):
    from playwright.sync_api import sync_playwright

    server, url = start_server(tmp_path)
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium(), args=CHROMIUM_ARGS)
            tab = browser.new_page()
            tab.set_default_timeout(120_000)
            tab.goto(f"{url}/prune?ratio=35&finetune_epochs=20")
            tab.wait_for_function(
                """() => [...document.querySelectorAll('[data-testid="stMetric"]')]
                    .filter(m => m.textContent.includes('just pruned') && m.textContent.includes('%')).length == 2"""
            )
            began = time.monotonic()
            server.terminate()
            server.wait(60)
            browser.close()
    finally:
        if server.poll() is None:
            server.kill()
    with sqlite3.connect(tmp_path / "runs.sqlite") as conn:
        rows = dict(conn.execute("SELECT key, status FROM runs WHERE key LIKE 'prune-%'").fetchall())
    assert rows and set(rows.values()) == {"failed"}, rows  # 20 epochs could not have finished
    assert time.monotonic() - began < 60
