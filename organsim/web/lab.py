"""``organsim serve``: a skills lab in the browser, one session (a process) per trainee.

The lab server (aiohttp, which trame already runs on) answers:

- ``GET /``: the start page: the trainee's name and a choice among the
  scenarios and exercises the server was started with (by index: the browser
  never names a file);
- ``POST /start``: checks both, starts the trainee's session
  (``python -m organsim.web.app``: its own procedure, renderer and trame
  server on a port of its own, same host) and redirects the browser there, with
  the session's token (:func:`organsim.web.app.new_token`, made here and given
  to the process in its environment) in the link: without it the session
  answers 403, so a trainee cannot open another's session by its port;
- ``GET /health``: ``ok`` (for scripts and tests).

Anything else is a 404; a bad form a 400 with one line saying why; a failure
a 500 with one line, never a traceback. Every session writes to the one
SQLite training history, so the learning curve of a trainee grows across
sessions. A session ends a minute after its page is closed; the lab ends
them all when it stops.
"""

from __future__ import annotations

import asyncio
import html
import json
import contextlib
import logging
import os
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import OrganSimError

__all__ = ["Lab", "Offer", "valid_trainee", "LOOPBACK"]

log = logging.getLogger(__name__)

LOOPBACK = ("127.0.0.1", "localhost", "::1")
#: A trainee name: letters (any script), digits, space, dot, apostrophe, hyphen, underscore.
_NAME = re.compile(r"^[\w][\w .'\-]{0,47}$", re.UNICODE)
#: Seconds a session may take to start (the first one on a machine compiles kernels).
START_TIMEOUT_S = 240.0


def valid_trainee(name: str) -> str:
    """The trainee name, stripped; raises OrganSimError if it is not a plain name.

    Examples
    --------
    >>> valid_trainee("  Ana Gómez ")
    'Ana Gómez'
    >>> valid_trainee("../etc")
    Traceback (most recent call last):
    ...
    organsim.errors.OrganSimError: a trainee name is 1-48 letters, digits, spaces or . ' - _
    """
    n = " ".join(str(name).split())
    if not _NAME.match(n):
        raise OrganSimError("a trainee name is 1-48 letters, digits, spaces or . ' - _")
    return n


@dataclass
class Offer:
    """One scenario the lab offers: the command-line argument it came from, and its title."""

    arg: str
    title: str
    description: str = ""


@dataclass
class _Session:
    proc: asyncio.subprocess.Process
    port: int
    trainee: str
    offer: int
    token: str = ""
    started: float = field(default_factory=time.time)


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>organsim lab</title>
<style>
body {{ font-family: system-ui, Arial, sans-serif; background: #eef0f4; margin: 0; }}
main {{ max-width: 40em; margin: 3em auto; background: #fff; padding: 2em; border-radius: 8px; }}
label {{ display: block; margin: 1em 0 0.3em 0; font-weight: 600; }}
input, select, button {{ font-size: 1.1em; padding: 0.4em; width: 100%; box-sizing: border-box; }}
button {{ margin-top: 1.5em; background: #2f9e62; color: #fff; border: 0; border-radius: 4px; cursor: pointer; }}
.err {{ color: #b00020; }} .desc {{ color: #555; font-size: 0.95em; }}
</style></head><body><main>
<h1>organsim skills lab</h1>
{error}
<form method="post" action="/start" id="start">
<label for="trainee">Your name</label>
<input id="trainee" name="trainee" required maxlength="48" autofocus value="{trainee}">
<label for="scenario">Exercise</label>
<select id="scenario" name="scenario">{options}</select>
<button type="submit" id="go">Start</button>
</form>
<p class="desc">Starting a session takes a few seconds. Drag on the tissue to act with the tool,
drag on the background to turn the view; finish to see your score and learning curve.</p>
{descriptions}
</main></body></html>
"""


class Lab:
    """The lab server.

    Parameters
    ----------
    offers : list of str
        Scenario files (.toml) and exercise names the browser may choose among.
    host, port : str, int
        Where the lab listens (its sessions listen on the same host).
    history_path : str or Path, optional
        The training history all sessions share (default ``~/.organsim/history.sqlite``).
    outdir : str or Path
        Where each attempt's results go (``<outdir>/<trainee>-<time>/attempt-N``).
    max_sessions : int
        Sessions at once; one more is refused with a 503.
    size : (int, int)
        Image pixels of each session's view.
    """

    def __init__(self, offers: list[str], *, host: str = "127.0.0.1", port: int = 8080,
                 history_path: str | Path | None = None, outdir: str | Path = "organsim-lab",
                 max_sessions: int = 8, size: tuple[int, int] = (800, 600), fps: float = 25.0,
                 idle_timeout_s: int = 60) -> None:
        from ..scenario.exercises import resolve_scenario
        from ..scenario.history import default_history_path

        if not offers:
            offers = ["pattern-cutting"]
        self.offers: list[Offer] = []
        for arg in offers:
            s = resolve_scenario(arg)  # fails here, at start, never for a browser
            self.offers.append(Offer(arg=str(Path(arg).resolve()) if arg.lower().endswith(".toml") else arg,
                                     title=s.name, description=s.description))
        self.host = host
        self.port = int(port)
        self.history_path = Path(history_path) if history_path else default_history_path()
        self.outdir = Path(outdir)
        self.max_sessions = int(max_sessions)
        self.size = (int(size[0]), int(size[1]))
        self.fps = float(fps)
        self.idle_timeout_s = int(idle_timeout_s)
        self.sessions: list[_Session] = []
        self.runner = None
        self.bound_port: int | None = None

    # ----------------------------------------------------------------- pages
    def start_page(self, *, error: str = "", trainee: str = "") -> str:
        opts = "".join(f'<option value="{i}">{html.escape(o.title)}</option>'
                       for i, o in enumerate(self.offers))
        from .app import page_instructions

        desc = "".join(f"<p class='desc'><b>{html.escape(o.title)}</b>: "
                       f"{html.escape(page_instructions(o.description))}</p>" for o in self.offers)
        err = f'<p class="err" id="error">{html.escape(error)}</p>' if error else ""
        return _PAGE.format(error=err, trainee=html.escape(trainee, quote=True), options=opts,
                            descriptions=desc)

    def _reap(self) -> None:
        self.sessions = [s for s in self.sessions if s.proc.returncode is None]

    async def start_session(self, trainee: str, offer: int) -> _Session:
        """Start a session process; returns once it listens."""
        import datetime as _dt

        from .app import new_token

        token = new_token()
        slug = re.sub(r"[^A-Za-z0-9]+", "-", trainee).strip("-").lower() or "trainee"
        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S-%f")
        cfg = {"scenario": self.offers[offer].arg, "trainee": trainee,
               "history": str(self.history_path), "outdir": str(self.outdir / f"{slug}-{stamp}"),
               "host": self.host, "port": 0, "size": list(self.size), "fps": self.fps,
               "idle_timeout_s": self.idle_timeout_s, "token": token}
        # the configuration (its token included) goes in the environment, which only this user can
        # read (/proc/PID/environ), never on the command line (``ps`` shows that to everyone)
        env = {**os.environ, "ORGANSIM_SESSION": json.dumps(cfg)}
        # sessions run side by side as processes: one compute thread each (BLAS, numba) does
        # not oversubscribe the cores
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
            env.setdefault(var, "1")
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "organsim.web.app", env=env, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=None)
        t0 = time.monotonic()
        while True:
            left = START_TIMEOUT_S - (time.monotonic() - t0)
            if left <= 0:
                proc.terminate()
                raise OrganSimError("the session did not start in time")
            try:
                line = await asyncio.wait_for(proc.stdout.readline(), timeout=left)
            except asyncio.TimeoutError:
                continue
            if not line:
                await proc.wait()
                raise OrganSimError(f"the session stopped while starting (exit {proc.returncode})")
            m = re.search(rb"ORGANSIM_SESSION_READY port=(\d+)", line)
            if m:
                break
        session = _Session(proc=proc, port=int(m.group(1)), trainee=trainee, offer=offer, token=token)
        self.sessions.append(session)
        # keep reading its output so that the pipe never fills
        asyncio.ensure_future(self._drain(proc))
        return session

    @staticmethod
    async def _drain(proc) -> None:
        """Read a session process's output as it comes (a full pipe would block it); log it."""
        while line := await proc.stdout.readline():
            log.debug("session %d: %s", proc.pid, line.decode(errors="replace").rstrip())

    # ------------------------------------------------------------------- app
    def make_app(self):
        from aiohttp import web

        from .app import session_path

        @web.middleware
        async def errors(request, handler):
            try:
                return await handler(request)
            except web.HTTPException:
                raise
            except Exception as exc:  # noqa: BLE001 - a browser never sees a traceback
                log.exception("request %s %s failed", request.method, request.path)
                msg = str(exc) if isinstance(exc, OrganSimError) else "internal error"
                return web.Response(status=500, text=f"organsim: {msg}\n", content_type="text/plain")

        async def index(_request):
            return web.Response(text=self.start_page(), content_type="text/html")

        async def health(_request):
            return web.Response(text="ok\n", content_type="text/plain")

        async def start(request):
            if request.content_length is not None and request.content_length > 4096:
                return web.Response(status=413, text="organsim: request too large\n")
            form = await request.post()
            raw_name = str(form.get("trainee", ""))
            try:
                trainee = valid_trainee(raw_name)
            except OrganSimError as exc:
                return web.Response(status=400, content_type="text/html",
                                    text=self.start_page(error=str(exc), trainee=raw_name[:48]))
            choice = str(form.get("scenario", "0"))
            if not choice.isdigit() or not 0 <= int(choice) < len(self.offers):
                return web.Response(status=400, content_type="text/html",
                                    text=self.start_page(error="choose one of the listed exercises",
                                                         trainee=trainee))
            self._reap()
            if len(self.sessions) >= self.max_sessions:
                return web.Response(status=503, content_type="text/html",
                                    text=self.start_page(error=f"the lab is full ({self.max_sessions} "
                                                         "sessions); try again in a minute", trainee=trainee))
            s = await self.start_session(trainee, int(choice))
            host = request.url.host or self.host
            if ":" in host and not host.startswith("["):
                host = f"[{host}]"
            # the session's own link: its token is in it, so only this browser can open it
            raise web.HTTPSeeOther(f"http://{host}:{s.port}{session_path(s.token)}")

        app = web.Application(middlewares=[errors], client_max_size=4096)
        app.router.add_get("/", index)
        app.router.add_get("/health", health)
        app.router.add_post("/start", start)
        return app

    async def start(self) -> int:
        """Listen; returns the port (useful with port 0)."""
        from aiohttp import web

        self.runner = web.AppRunner(self.make_app(), access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, self.host, self.port)
        await site.start()
        self.bound_port = site._server.sockets[0].getsockname()[1]
        return self.bound_port

    async def stop(self) -> None:
        """End every session this lab started, then stop listening."""
        for s in self.sessions:
            if s.proc.returncode is None:
                s.proc.terminate()
        for s in self.sessions:
            try:
                await asyncio.wait_for(s.proc.wait(), timeout=10)
            except asyncio.TimeoutError:
                s.proc.kill()
        if self.runner is not None:
            await self.runner.cleanup()

    def serve_forever(self, *, ready=None) -> None:
        """Run until interrupted (Ctrl-C or SIGTERM)."""
        import signal

        async def main():
            port = await self.start()
            if ready is not None:
                ready(port)
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                # not on every platform (Windows): there Ctrl+C ends the process as usual
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    loop.add_signal_handler(sig, stop.set)
            await stop.wait()
            await self.stop()

        asyncio.run(main())
