"""One trainee's page: a trame application around a :class:`~organsim.web.live.LiveSession`.

The simulation steps and renders on the server (off-screen, the desktop
viewer's scene); each frame goes to the page as JPEG bytes in trame's shared
state (a binary websocket message, no base64), with the HUD beside it. The
page's own script (:data:`PAGE_JS`) shows the frames, sends the mouse (left
drag, coalesced to one move per browser frame) and acknowledges the frames
it has drawn (by the frame id in the HUD): the server sends a frame only while fewer than ``window`` are
undrawn, so a slow client drops frames instead of queueing them, and the
simulation keeps its pace either way.

A session is a process of its own (``python -m organsim.web.app``, started by
:mod:`organsim.web.lab`): trame applications hold one shared state, so
isolation between trainees is a process each, which also spreads sessions
over the cores. Its configuration comes as JSON in the ``ORGANSIM_SESSION``
environment variable (scenario, trainee, history, output folder, host, token); it
prints ``ORGANSIM_SESSION_READY port=N`` once it listens, and exits
``idle_timeout_s`` seconds after its last browser left.

Each session has a token (:func:`new_token`, made by the lab and given to the
process in that environment variable, never on its command line): the page,
its websocket and its wslink handshake are refused without it (403, one line;
no state is sent), so knowing a session's port is not enough to open it. The
link the lab redirects to carries the token (:meth:`SessionApp.path`); the
first page load also sets it as a cookie for that port, so a reload works
after trame's client has removed it from the address bar.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import math
import os
import re
import secrets
import sys
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor

from .live import CAMERA_BUTTONS, COLOR_BY, TOOLS, LiveSession

__all__ = ["SessionApp", "PAGE_JS", "PAGE_CSS", "IDLE_AFTER_S", "PAGE_CONTROLS", "page_instructions",
           "new_token", "token_ok", "session_path", "main"]

#: What the page says about its own controls (the buttons above the view; no keys).
PAGE_CONTROLS = ("Choose a tool with the grasp, cut or camera button, then drag on the tissue "
                 "(drag the background to turn the view). Colour by regions or stress; look from the "
                 "front, top or side (reset view: the exercise's own). Pause stops the clock; reset "
                 "starts the attempt again; click \u201cfinish and score\u201d when done.")
#: A clause that tells a desktop user to press a key ("press e when done", "i switches tool").
_KEY_CLAUSE = re.compile(
    r"\b(press(es|ing)?|hit|type)\s+(the\s+)?(key\s+)?[\"'\u2018\u201c]?"
    r"([a-z0-9]|space|enter|return|esc(ape)?|tab)\b"
    r"|\b[a-z0-9][\"'\u2019\u201d]?\s+(switches|toggles|ends|resets|pauses|cycles)\b"
    r"|\bkeyboard\b", re.IGNORECASE)
#: Files the session serves without its token: trame's client code, fonts and its loading template
#: (the same for every session; no session state).
PUBLIC_SUFFIXES = (".js", ".mjs", ".css", ".map", ".woff", ".woff2", ".ttf", ".eot", ".svg", ".png",
                   ".ico", ".tpl")
#: The answer to a request without the session's token.
FORBIDDEN = ("organsim: this session is not yours: open it with the link the lab gave you "
             "(missing or wrong session token)\n")


def new_token() -> str:
    """A session token: 256 random bits, lowercase hex.

    Hex because trame's client lower-cases the websocket URL that carries it
    (``secrets.token_urlsafe`` would not survive that).

    Examples
    --------
    >>> t = new_token()
    >>> len(t), t == t.lower()
    (64, True)
    """
    return secrets.token_hex(32)


def token_ok(given, token: str) -> bool:
    """Whether ``given`` is ``token`` (compared in constant time; anything not a string is not)."""
    return isinstance(given, str) and hmac.compare_digest(given.encode(), token.encode())


def stamp_frame(jpeg: bytes, frame_id: int) -> bytes:
    """The JPEG with a comment segment (``FF FE``) naming its frame: a valid JPEG, unique per frame.

    Examples
    --------
    >>> stamp_frame(b"\\xff\\xd8rest", 7)
    b'\\xff\\xd8\\xff\\xfe\\x00\\x0corgansim 7rest'
    """
    comment = f"organsim {int(frame_id)}".encode()
    return jpeg[:2] + b"\xff\xfe" + (len(comment) + 2).to_bytes(2, "big") + comment + jpeg[2:]


def session_path(token: str) -> str:
    """A session page's path and query, token included (see :meth:`SessionApp.path`)."""
    ws = f"ws://USE_HOST/ws?secret={token}"
    return "/index.html?" + urllib.parse.urlencode({"secret": token, "sessionURL": ws})


def page_instructions(description: str) -> str:
    """The scenario's description for the page: clauses naming desktop keys left out.

    The page's own controls (:data:`PAGE_CONTROLS`) are shown beside it; a scenario
    file written for the desktop viewer ("press e when done") must not tell a browser
    user to press keys the page does not have.

    Examples
    --------
    >>> page_instructions("Cut the circle. Press i for the cut tool, drag along it, press e when done.")
    'Cut the circle. Drag along it.'
    >>> page_instructions("Lift the lobe 20 mm; keep the force under 3 N.")
    'Lift the lobe 20 mm; keep the force under 3 N.'
    """
    out = []
    for sentence in re.split(r"(?<=[.!?])\s+", " ".join(str(description).split())):
        end = sentence[-1] if sentence and sentence[-1] in ".!?" else "."
        body = sentence.rstrip(".!?")
        kept = [c.strip() for c in body.split(",") if c.strip() and not _KEY_CLAUSE.search(c)]
        if kept:
            text = ", ".join(kept)
            out.append(text[0].upper() + text[1:] + end)
    return " ".join(out)


#: Seconds without an acknowledgement after which the session stops stepping (the page is gone;
#: the server re-sends after 1 s without one, so an open page always answers sooner).
IDLE_AFTER_S = 3.0

log = logging.getLogger(__name__)

#: The page's script: frames, mouse, acknowledgements, and the numbers a benchmark reads
#: (``window.organsimStats``: draw times, frame bytes, input-to-update latencies).
PAGE_JS = r"""
(function () {
  if (window.organsimStats) return;
  const st = window.organsimStats = {drawn: [], bytes: [], latency: [], pending: [], hudSeq: 0, seq: 0};
  let down = false, queued = null, raf = false;
  function pos(img, e) {
    const r = img.getBoundingClientRect();
    return [(e.clientX - r.left) * img.width / r.width, (e.clientY - r.top) * img.height / r.height];
  }
  function send(kind, p) {
    st.seq += 1;
    st.pending.push([st.seq, performance.now()]);
    window.trame.trigger('os_mouse', [kind, p[0], p[1], st.seq]);
  }
  function setup() {
    const img = document.getElementById('os-view');
    if (!img || !window.trame || !window.trame.state) { setTimeout(setup, 50); return; }
    window.trame.state.watch(['hud'], (h) => {
      if (h) { st.hudSeq = h.input_seq || 0; st.hudFrame = h.frame_id || 0; }
    });
    // say hello until the first frame is drawn (a call made while the client still connects is lost)
    const hello = () => {
      if (st.drawn.length) return;
      window.trame.trigger('os_hello').catch(() => {});
      setTimeout(hello, 1000);
    };
    hello();
    const ctx = img.getContext('2d');
    window.trame.state.watch(['frame'], (f) => {
      if (!f || !f.byteLength) return;
      const seq = st.hudSeq, id = st.hudFrame;
      st.bytes.push(f.byteLength);
      createImageBitmap(new Blob([f], {type: 'image/jpeg'})).then((bmp) => {
        ctx.drawImage(bmp, 0, 0, img.width, img.height);
        bmp.close();
        const now = performance.now();
        st.drawn.push(now);
        while (st.pending.length && st.pending[0][0] <= seq) {
          st.latency.push(now - st.pending[0][1]);
          st.pending.shift();
        }
        window.trame.trigger('os_ack', [id]);
      }, () => window.trame.trigger('os_ack', [id]));
    });
    img.addEventListener('pointerdown', (e) => {
      if (e.button !== 0) return;
      e.preventDefault();
      img.setPointerCapture(e.pointerId);
      down = true;
      send('down', pos(img, e));
    });
    img.addEventListener('pointermove', (e) => {
      if (!down) return;
      queued = pos(img, e);
      if (!raf) {
        raf = true;
        requestAnimationFrame(() => { raf = false; if (queued && down) { send('move', queued); queued = null; } });
      }
    });
    const up = (e) => { if (!down) return; down = false; queued = null; send('up', pos(img, e)); };
    img.addEventListener('pointerup', up);
    img.addEventListener('pointercancel', up);
    img.addEventListener('dragstart', (e) => e.preventDefault());
  }
  setup();
})();
"""

PAGE_CSS = """
body { margin: 0; font-family: system-ui, Arial, sans-serif; background: #eef0f4; color: #1c1c1c; }
.os-bar { display: flex; gap: 0.5em; align-items: center; padding: 0.5em 1em; background: #263040; color: #fff; }
.os-bar .os-title { font-weight: 600; margin-right: 1em; }
.os-bar button { font-size: 1em; padding: 0.3em 0.9em; border: 1px solid #8895aa; background: #3b475c;
                 color: #fff; border-radius: 4px; cursor: pointer; }
.os-bar button.on { background: #2f9e62; border-color: #2f9e62; }
.os-bar .os-gap { flex: 1; }
.os-main { display: flex; gap: 1em; padding: 1em; align-items: flex-start; }
#os-view { display: block; cursor: crosshair; user-select: none; touch-action: none; background: #dde;
           border: 1px solid #aab; }
.os-hud { min-width: 16em; font-variant-numeric: tabular-nums; line-height: 1.5; }
.os-hud .os-big { font-size: 1.3em; }
.os-results { padding: 0 1em 1em 1em; }
.os-results iframe { width: 100%; height: 70vh; border: 1px solid #aab; background: #fff; }
.os-score { font-size: 1.6em; font-weight: 600; }
.os-bar .os-label { color: #b8c2d4; margin-left: 0.8em; font-size: 0.9em; }
.os-instructions { max-width: 22em; color: #555; }
.os-legend { margin: 0.6em 0; max-width: 16em; }
.os-colorbar { height: 0.9em; border: 1px solid #889;
               background: linear-gradient(to right, #000004, #420a68, #932667, #dd513a, #fca50a, #fcffa4); }
.os-colorbar-labels { display: flex; justify-content: space-between; font-size: 0.9em; }
"""


class SessionApp:
    """The trame server of one session.

    Parameters
    ----------
    live : callable or LiveSession
        A function making the session (called in the frame thread, which then owns the
        renderer's OpenGL context), or a session made in that thread already.
    server : trame server, optional
        Default: a new one (``trame.app.get_server``).
    fps : float
        Steps per second the simulation is driven at (its real-time pace is 1/dt).
    token : str, optional
        The session's token (default: a new one, :func:`new_token`): the page, its
        websocket and its wslink handshake need it (see :meth:`path`).
    """

    def __init__(self, live, *, server=None, fps: float = 25.0, window: int = 4,
                 token: str | None = None) -> None:
        from trame.app import get_server

        # one worker thread owns the engine and the renderer (its OpenGL context is made, used
        # and released in that thread only): give a factory, it is called there
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="organsim-frame")
        self.live: LiveSession = self._pool.submit(live).result() if callable(live) else live
        live = self.live
        self.server = server or get_server(f"organsim-{id(self)}", client_type="vue3")
        self.fps = float(fps)
        #: what the page, its websocket and the wslink hello must carry
        self.token = str(token) if token else new_token()
        if not re.fullmatch(r"[0-9a-f]{32,}", self.token):
            raise ValueError("a session token is 32 or more lowercase hex digits (see new_token)")
        #: requests refused for a missing or wrong token (page, websocket, handshake)
        self.refused = 0
        #: frames sent and not yet drawn by the page before the server waits (drops) frames
        self.window = int(window)
        self.sent = 0
        self.acked = 0
        self._ack_times: list[float] = []
        self._task = None
        self._last_sent = 0.0
        #: when the page last acknowledged a frame or said hello
        self._last_seen = 0.0
        self._lock = threading.Lock()
        self._actions: list = []
        self._results = None
        #: a page has connected (the simulation waits for the first one)
        self.connected = False
        #: print the ready line (the lab reads it); off in a notebook
        self.announce = True
        #: server time (ms) of the last frames: step, render, encode
        self.frame_ms: list[float] = []
        self.state.trame__title = "organsim"
        self.state.update({"frame": b"", "hud": live.hud(), "results": None,
                           "trainee": live.trainee or "", "scenario_name": live.scenario.name,
                           "description": live.scenario.description, "fps": 0.0, "server_ms": 0.0,
                           "error": "", "instructions": page_instructions(live.scenario.description),
                           "controls": PAGE_CONTROLS})
        ctrl = self.server.controller
        self.server.trigger("os_mouse")(self._safe(self.on_mouse))
        self.server.trigger("os_ack")(self._safe(self.on_ack))
        self.server.trigger("os_hello")(self._safe(self.on_hello))
        self.server.trigger("os_tool")(self._safe(self.on_tool))
        self.server.trigger("os_pause")(self._safe(self.on_pause))
        self.server.trigger("os_reset")(self._safe(self.on_reset))
        self.server.trigger("os_finish")(self._safe(self.on_finish))
        self.server.trigger("os_color")(self._safe(self.on_color))
        self.server.trigger("os_camera")(self._safe(self.on_camera))
        ctrl.on_server_ready.add(self._on_ready)
        ctrl.on_server_bind.add(self._on_bind)
        self.server.add_protocol_to_configure(self._configure_protocol)
        self._build_ui()

    @property
    def state(self):
        return self.server.state

    # ------------------------------------------------------------- token
    def path(self) -> str:
        """The page's path and query with the token: ``/index.html?secret=...&sessionURL=...``.

        trame's client reads ``secret`` (sent in its wslink hello) and ``sessionURL``
        (the websocket address, here carrying the token too) from the page's address
        and then removes both from the address bar.
        """
        return session_path(self.token)

    def _cookie(self, request) -> str:
        return f"organsim_{request.url.port or self.server.port}"

    def _on_bind(self, wslink_server) -> None:
        """Put the token check in front of every route of the session's aiohttp app."""
        from aiohttp import web

        @web.middleware
        async def check_token(request, handler):
            path = request.path
            if path.endswith(PUBLIC_SUFFIXES) and not path.startswith("/ws"):
                return await handler(request)  # trame's client code: the same for every session
            name = self._cookie(request)
            if token_ok(request.query.get("secret"), self.token):
                response = await handler(request)
                if not path.startswith("/ws"):
                    # a reload after trame's client removed the token from the address bar
                    response.set_cookie(name, self.token, httponly=True, samesite="Strict", path="/")
                return response
            if token_ok(request.cookies.get(name), self.token):
                if path.startswith("/ws"):
                    return await handler(request)
                raise web.HTTPFound(self.path())  # the page again, with the token trame's client reads
            self.refused += 1
            log.warning("refused %s %s: no session token", request.method, path)
            return web.Response(status=403, text=FORBIDDEN, content_type="text/plain")

        wslink_server.app.middlewares.append(check_token)

    def _configure_protocol(self, protocol) -> None:
        """The wslink handshake (``wslink.hello``) must carry the token too."""
        from wslink.websocket import LinkProtocol

        app = self

        class TokenCheck(LinkProtocol):
            async def validateToken(self, token, client_id):  # noqa: N802 - wslink's name
                ok = token_ok(token, app.token)
                if not ok:
                    app.refused += 1
                return ok

        protocol.registerLinkProtocol(TokenCheck())

    # ------------------------------------------------------------------ UI
    def _build_ui(self) -> None:
        from trame.ui.html import DivLayout
        from trame.widgets import client, html

        w, h = self.live.size
        with DivLayout(self.server) as layout:
            client.Style(PAGE_CSS)
            with html.Div(classes="os-bar"):
                html.Span("organsim · {{ scenario_name }} · {{ trainee }}", classes="os-title")
                for t in TOOLS:
                    html.Button(t, id=f"os-tool-{t}", click=f"trigger('os_tool', ['{t}'])",
                                classes=(f"hud.tool == '{t}' ? 'on' : ''",))
                html.Button("{{ hud.paused ? 'resume' : 'pause' }}", id="os-pause",
                            click="trigger('os_pause')")
                html.Button("reset", id="os-reset", click="trigger('os_reset')")
                html.Span("colour by", classes="os-label")
                for c in COLOR_BY:
                    html.Button(c, id=f"os-color-{c}", click=f"trigger('os_color', ['{c}'])",
                                classes=(f"hud.color_by == '{c}' ? 'on' : ''",))
                html.Span("view", classes="os-label")
                for c in CAMERA_BUTTONS:
                    html.Button("reset view" if c == "reset" else c, id=f"os-cam-{c}",
                                click=f"trigger('os_camera', ['{c}'])",
                                classes=(f"hud.camera == '{c}' ? 'on' : ''",))
                html.Span(classes="os-gap")
                html.Button("finish and score", id="os-finish", click="trigger('os_finish')",
                            disabled=("hud.finished",))
            with html.Div(classes="os-main"):
                html.Canvas(id="os-view", width=w, height=h, title="the live procedure")
                with html.Div(classes="os-hud", id="os-hud"):
                    html.Div("t = {{ hud.time_s.toFixed(2) }} s", classes="os-big", id="os-time")
                    html.Div("grasp force {{ hud.grasp_force_n.toFixed(2) }} N", classes="os-big",
                             id="os-force")
                    html.Div("deviation {{ hud.deviation_mm == null ? '-' : hud.deviation_mm.toFixed(1) + ' mm' }}",
                             id="os-deviation")
                    html.Div("cut {{ hud.cut_mm.toFixed(0) }} mm", id="os-cut")
                    html.Div("{{ fps.toFixed(0) }} fps (server {{ server_ms.toFixed(0) }} ms/frame)", id="os-fps")
                    html.Div("tool: {{ hud.tool }}{{ hud.paused ? ' (paused)' : '' }}", id="os-tool")
                    html.Div("{{ f }}", v_for="f in hud.forces", classes="os-force-line")
                    html.Div("{{ hud.message }}", id="os-message")
                    html.Div("{{ error }}", id="os-error", style="color: #b00020")
                    with html.Div(v_if="hud.color_by == 'stress'", id="os-legend", classes="os-legend"):
                        html.Div("von Mises stress (kPa)")
                        html.Div(classes="os-colorbar")
                        with html.Div(classes="os-colorbar-labels"):
                            html.Span("{{ hud.stress_kpa[0].toFixed(1) }}", id="os-legend-lo")
                            html.Span("{{ hud.stress_kpa[1].toFixed(1) }}", id="os-legend-hi")
                    with html.Div(id="os-instructions", classes="os-instructions"):
                        html.P("{{ instructions }}", id="os-task")
                        html.P("{{ controls }}", id="os-controls")
            with html.Div(classes="os-results", v_if="results", id="os-results"):
                html.Div("score {{ results.score.toFixed(1) }} / 100"
                         "{{ results.proficient ? ' (proficient)' : '' }}", classes="os-score",
                         id="os-score")
                html.Button("new attempt", id="os-again", click="trigger('os_reset')")
                html.Iframe(srcdoc=("results.report_html",), id="os-report",
                            sandbox="", title="report")
            client.Script(PAGE_JS)
        self.layout = layout

    # ------------------------------------------------------------- handlers
    # Every handler only checks its arguments and queues the action: the engine, the renderer
    # and the encoder run in one worker thread (`_work`), one frame at a time, so that the event
    # loop stays free to move websocket messages while a frame is computed, and the engine is
    # only ever touched from that one thread.
    def _safe(self, fn):
        """A trigger handler that answers a bad request with a message in the page, never a traceback."""

        def handler(*args):
            try:
                fn(*args)
            except Exception as exc:  # noqa: BLE001 - a browser must never see a traceback
                log.warning("rejected %s%r: %s", fn.__name__, args[:4], exc)
                self.state.error = f"request refused: {type(exc).__name__}"
        handler.__name__ = fn.__name__
        return handler

    @staticmethod
    def _number(v) -> float:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise ValueError("not a finite number")
        return float(v)

    def _queue(self, fn, *args) -> None:
        with self._lock:
            self._actions.append((fn, args))

    def on_mouse(self, kind, x, y, seq=0) -> None:
        x, y = self._number(x), self._number(y)
        seq = int(self._number(seq))
        fn = {"down": self.live.mouse_down, "move": self.live.mouse_move, "up": self.live.mouse_up}.get(kind)
        if fn is None:
            raise ValueError("unknown mouse event")
        self._queue(fn, x, y)
        self._queue(setattr, self.live, "input_seq", seq)

    def on_hello(self) -> None:
        # a page (re)connected: the simulation starts with the first page; the page repeats its
        # hello until it has drawn a frame, so only the first of a run resets the window
        if not self.connected or self.acked == 0:
            self.sent = self.acked = 0
        self.connected = True
        self._last_seen = time.perf_counter()

    def on_ack(self, frame_id=0) -> None:
        # the id of the frame the page drew: it has all frames up to it (the client's state may
        # skip a frame when two arrive at once; those count as seen)
        n = int(self._number(frame_id))
        self._last_seen = time.perf_counter()
        self.acked = max(self.acked, min(n, self.sent))
        self._ack_times.append(time.perf_counter())
        del self._ack_times[:-30]

    def on_tool(self, tool) -> None:
        if tool not in TOOLS:
            raise ValueError("unknown tool")
        self._queue(self.live.set_tool, tool)

    def on_color(self, mode) -> None:
        if mode not in COLOR_BY:
            raise ValueError("unknown colouring")
        self._queue(self.live.set_color_by, mode)

    def on_camera(self, button) -> None:
        if not isinstance(button, str) or button not in CAMERA_BUTTONS:
            raise ValueError("unknown camera")
        self._queue(self.live.camera, button)

    def on_pause(self) -> None:
        self._queue(lambda: self.live.set_paused(not self.live.paused))

    def on_reset(self) -> None:
        self._queue(self.live.reset)
        self._queue(self._set_results, None)

    def on_finish(self) -> None:
        self._queue(self._finish)

    def _finish(self) -> None:
        if self.live.finished:
            return
        res = self.live.finish()
        self._set_results({k: res[k] for k in ("score", "proficient", "parts", "report_html")})

    def _set_results(self, value) -> None:
        self._results = ("set", value)

    # ---------------------------------------------------------------- loop
    def _on_ready(self, **_kwargs) -> None:
        if self.announce:
            print(f"ORGANSIM_SESSION_READY port={self.server.port}", flush=True)
        self._task = asyncio.ensure_future(self._loop())

    def displayed_fps(self) -> float:
        """Frames the page drew per second, over the last acknowledgements."""
        t = self._ack_times
        if len(t) < 2 or time.perf_counter() - t[-1] > 1.0:
            return 0.0
        return (len(t) - 1) / (t[-1] - t[0])

    def _work(self, send: bool, step: bool = True):
        """One frame, in the worker thread: queued actions, a step, and (if sent) the image."""
        t0 = time.perf_counter()
        with self._lock:
            actions, self._actions = self._actions, []
        error = None
        for fn, args in actions:
            try:
                fn(*args)
            except Exception as exc:  # noqa: BLE001 - one bad action must not stop the session
                log.warning("action %s failed: %s", getattr(fn, "__name__", fn), exc)
                error = f"request refused: {type(exc).__name__}"
        try:
            if step:
                self.live.step()
        except Exception as exc:  # noqa: BLE001 - keep serving; say what stopped
            log.exception("step failed")
            self.live.set_paused(True)
            error = f"simulation stopped: {type(exc).__name__} (reset to go on)"
        jpeg = self.live.jpeg() if send else None
        return jpeg, self.live.hud(), error, (time.perf_counter() - t0) * 1e3

    async def _loop(self) -> None:
        period = 1.0 / self.fps
        loop = asyncio.get_running_loop()
        nxt = time.perf_counter()
        while True:
            idle = time.perf_counter() - self._last_seen > IDLE_AFTER_S
            if not self.connected or (idle and time.perf_counter() - self._last_sent < 1.0):
                # no page (yet, or it was closed): do not step or render for nobody; once a second
                # a frame without a step goes out, so that a page that is still there answers
                await asyncio.sleep(period)
                nxt = time.perf_counter()
                continue
            if self.sent - self.acked >= self.window and time.perf_counter() - self._last_sent > 1.0:
                self.acked = self.sent  # an acknowledgement was lost: go on
            send = self.sent - self.acked < self.window
            try:
                jpeg, hud, error, ms = await loop.run_in_executor(self._pool, self._work, send or idle,
                                                                  not idle)
            except Exception:  # noqa: BLE001 - rendering failed: keep the session alive
                log.exception("frame failed")
                jpeg, hud, error, ms = None, None, "frame failed", 0.0
            with self.state:
                if hud is not None:
                    if jpeg is not None:
                        hud["frame_id"] = self.sent + 1
                    self.state.hud = hud
                if error:
                    self.state.error = error
                if self._results is not None:
                    self.state.results = self._results[1]
                    if self._results[1] is None:
                        self.state.error = ""
                    self._results = None
                if jpeg is not None:
                    # every frame is a new value, even the same image again (a scene at rest, or
                    # paused): trame does not send a value that did not change, and a page that
                    # gets no frames sends no acknowledgements and looks gone
                    self.state.frame = stamp_frame(jpeg, self.sent + 1)
                    self.state.fps = round(self.displayed_fps(), 1)
                    self.frame_ms.append(ms)
                    del self.frame_ms[:-50]
                    self.state.server_ms = round(float(sorted(self.frame_ms)[len(self.frame_ms) // 2]), 1)
                    self.sent += 1
                    self._last_sent = time.perf_counter()
            nxt += period
            delay = nxt - time.perf_counter()
            if delay < 0.002:
                # behind: still leave the event loop a moment for the websocket
                nxt = time.perf_counter() + 0.002
                delay = 0.002
            await asyncio.sleep(delay)

    def close(self) -> None:
        """Release the session's renderer (in the thread that owns it)."""
        self._pool.submit(self.live.close).result()
        self._pool.shutdown(wait=False)

    def start(self, *, host: str = "127.0.0.1", port: int = 0, idle_timeout_s: int = 60, **kwargs):
        """Serve (blocking unless ``exec_mode`` says otherwise)."""
        return self.server.start(host=host, port=port, open_browser=False, show_connection_info=False,
                                 timeout=idle_timeout_s, disable_logging=True, **kwargs)


def quiet_vtk() -> None:
    """Keep VTK's warnings (an X server probe, deprecations) out of a server's or a notebook's output."""
    from vtkmodules.vtkCommonCore import vtkLogger, vtkObject

    vtkLogger.SetStderrVerbosity(vtkLogger.VERBOSITY_ERROR)
    vtkObject.GlobalWarningDisplayOff()


def main() -> int:
    """``python -m organsim.web.app``: one session, configured by ``$ORGANSIM_SESSION`` (JSON)."""
    from ..scenario.exercises import resolve_scenario

    # the configuration holds the session's token: read it, and keep it from child processes
    cfg = json.loads(os.environ.pop("ORGANSIM_SESSION", "{}"))
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    quiet_vtk()
    sys.argv = sys.argv[:1]  # trame parses the command line too: give it nothing of ours
    size = tuple(cfg.get("size", (800, 600)))
    scenario = resolve_scenario(cfg["scenario"])
    app = SessionApp(lambda: LiveSession(scenario, trainee=cfg.get("trainee"), history_path=cfg.get("history"),
                                         outdir=cfg.get("outdir"), size=size),
                     fps=float(cfg.get("fps", 25.0)), token=cfg.get("token"))
    app.start(host=cfg.get("host", "127.0.0.1"), port=int(cfg.get("port", 0)),
              idle_timeout_s=int(cfg.get("idle_timeout_s", 60)))
    app.close()
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
