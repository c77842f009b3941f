"""The lab in a real headless browser: Debian's Chromium driven by Playwright.

Tests and the ``frame-browser`` benchmark use this to try ``organsim serve``
as a trainee would: :class:`LabProcess` starts the real command on
127.0.0.1 (a port of its own), :func:`launch` opens Debian's ``chromium``
(``/usr/bin/chromium``; Playwright never downloads a browser here) and
:func:`open_session` fills in the start page and waits for the first frame.
Mouse drags go through Chromium's input pipeline (``page.mouse``), so the
page's own script turns them into the session's events.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

__all__ = ["missing", "chromium_path", "launch", "LabProcess", "open_session", "drag", "stats",
           "CHROMIUM_ARGS"]

#: Flags for Chromium as root on a closed network (no sandbox, no GPU, no background traffic).
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-background-timer-throttling", "--disable-renderer-backgrounding",
                 "--disable-backgrounding-occluded-windows"]


def chromium_path() -> str | None:
    """Debian's Chromium (``$ORGANSIM_CHROMIUM`` overrides), or None."""
    for p in (os.environ.get("ORGANSIM_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium")):
        if p and Path(p).exists():
            return p
    return None


def missing() -> str | None:
    """Why a browser session cannot run here (None when it can)."""
    if chromium_path() is None:
        return "Debian's chromium is not installed (apt-get install chromium)"
    for mod, pkg in (("playwright", "playwright"), ("trame", "organsim[web]")):
        if importlib.util.find_spec(mod) is None:
            return f"{mod} is not installed (pip install {pkg})"
    return None


def launch(playwright):
    """Headless Chromium from Debian's package."""
    return playwright.chromium.launch(executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS)


class LabProcess:
    """``organsim serve`` in a process of its own, on 127.0.0.1 and a free port.

    Parameters
    ----------
    offers : list of str
    workdir : Path
        The history database and the attempts' results go here.
    extra : list of str
        More command-line options.
    """

    def __init__(self, offers: list[str], workdir: Path, *, extra: list[str] | None = None) -> None:
        self.workdir = Path(workdir)
        self.history = self.workdir / "history.sqlite"
        self.cmd = [sys.executable, "-m", "organsim", "serve", *offers, "--port", "0",
                    "--history", str(self.history), "-o", str(self.workdir / "attempts"), *(extra or [])]
        self.proc: subprocess.Popen | None = None
        self.url = ""
        self.output: list[str] = []

    def __enter__(self) -> LabProcess:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     env=env, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 300
        for line in self.proc.stdout:
            self.output.append(line)
            m = re.search(r"open (http://\S+/)", line)
            if m:
                self.url = m.group(1)
                break
            if time.monotonic() > deadline:
                break
        if not self.url:
            self.__exit__(None, None, None)
            raise RuntimeError("organsim serve did not start:\n" + "".join(self.output))
        threading.Thread(target=self._drain, daemon=True).start()
        return self

    def _drain(self) -> None:
        for line in self.proc.stdout:
            self.output.append(line)

    def __exit__(self, *exc) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def open_session(context, url: str, trainee: str, *, scenario_index: int = 0, timeout_s: float = 120.0):
    """A new page: the start page filled in and submitted; returns it once a frame is drawn."""
    page = context.new_page()
    page.goto(url)
    page.fill("#trainee", trainee)
    page.select_option("#scenario", str(scenario_index))
    page.click("#go")
    page.wait_for_selector("#os-view", timeout=timeout_s * 1e3)
    page.wait_for_function("() => window.organsimStats && window.organsimStats.drawn.length > 2",
                           timeout=timeout_s * 1e3)
    return page


def drag(page, points, *, step_s: float = 0.04, release: bool = True) -> None:
    """Press the left button at ``points[0]`` (canvas pixels), move through the rest, release
    (unless ``release`` is False: then call ``page.mouse.up()`` later)."""
    box = page.locator("#os-view").bounding_box()
    sx = box["width"] / float(page.locator("#os-view").get_attribute("width"))
    sy = box["height"] / float(page.locator("#os-view").get_attribute("height"))
    pts = [(box["x"] + x * sx, box["y"] + y * sy) for x, y in points]
    page.mouse.move(*pts[0])
    page.mouse.down()
    for p in pts[1:]:
        time.sleep(step_s)
        page.mouse.move(*p)
    time.sleep(step_s)
    if release:
        page.mouse.up()


def stats(page) -> dict:
    """The page's counters: draw times (ms), frame bytes, input-to-update latencies (ms)."""
    return page.evaluate("() => ({drawn: window.organsimStats.drawn, bytes: window.organsimStats.bytes,"
                         " latency: window.organsimStats.latency})")
