"""A real headless Chromium driven by Playwright, for the chat page's tests and docs/screenshot.py.

Chromium comes from Debian's `chromium` package (Playwright's own browser download needs the internet):
installed here with apt-get when it is missing and we are root, as the SLURM test installs SLURM. Where
no browser can start, `launch` raises BrowserUnavailable with the reason, and the tests skip with it.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from contextlib import contextmanager
from typing import Iterator

CANDIDATES = ("chromium", "chromium-browser", "google-chrome")


class BrowserUnavailable(RuntimeError):
    pass


def chromium_path() -> str:
    """The Chromium executable, installing Debian's package first when none is found (root, apt-get)."""
    for name in CANDIDATES:
        if path := shutil.which(name):
            return path
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise BrowserUnavailable("no chromium on PATH and cannot install it (not root or no apt-get): "
                                 "apt-get install chromium")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", "chromium"]):
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900)
        if done.returncode != 0 and command[1] == "install":
            raise BrowserUnavailable(f"apt-get install chromium failed: {(done.stderr or done.stdout)[-400:]}")
    if path := shutil.which("chromium"):
        return path
    raise BrowserUnavailable("apt-get installed chromium but it is not on PATH")


@contextmanager
def launch() -> Iterator[object]:
    """A headless Chromium browser (Playwright's Browser), closed afterwards."""
    try:
        from playwright.sync_api import Error, sync_playwright
    except ImportError as exc:
        raise BrowserUnavailable(f"playwright is not installed (pip install -e '.[test]'): {exc}") from exc
    executable = chromium_path()
    with sync_playwright() as playwright:
        try:
            browser = playwright.chromium.launch(executable_path=executable)
        except Error as exc:
            raise BrowserUnavailable(f"{executable} did not start: {str(exc)[:400]}") from exc
        try:
            yield browser
        finally:
            browser.close()


def ask_on_page(page: object, url: str, model_id: str, ticker: str, question: str, mode: str,
                timeout_s: float = 300) -> dict:
    """Ask through the page as a user does (pick model and ticker, pick the grid question, set the toggle,
    click Ask) and read back what it shows: each attempt's tool calls, results and text, and the verdict."""
    page.goto(url + "/")
    page.wait_for_selector("body[data-ready='1']")
    page.select_option("#model", model_id)
    page.select_option("#ticker", ticker)
    page.select_option("#suggestion", question)
    page.click(f"#modes label:has(input[value={mode}])")  # the toggle: a label around a hidden radio
    assert page.is_checked(f"input[name=mode][value={mode}]")
    page.click("#ask")
    page.wait_for_selector("#verdict[data-backend]", timeout=timeout_s * 1000)
    page.wait_for_selector("body[data-text-events]")
    attempts = page.eval_on_selector_all("#transcript .attempt", """boxes => boxes.map(b => ({
        backend: b.dataset.backend,
        calls: [...b.querySelectorAll('.call')].map(e => e.textContent),
        results: [...b.querySelectorAll('.result')].map(e => e.textContent),
        text: [...b.querySelectorAll('.text')].map(e => e.textContent),
        notes: [...b.querySelectorAll('.note')].map(e => e.textContent)}))""")
    verdict = page.eval_on_selector("#verdict", """v => ({backend: v.dataset.backend, reason: v.dataset.reason || null,
        answer: v.querySelector('.answer') ? v.querySelector('.answer').textContent : null, line: v.textContent})""")
    return {"attempts": attempts, "verdict": verdict, "text_events": int(page.get_attribute("body", "data-text-events"))}
