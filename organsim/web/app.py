"""One trainee's page: a trame application around a :class:`~organsim.web.live.LiveSession`.

The simulation steps and renders on the server (off-screen, the desktop
viewer's scene); each frame goes to the page as JPEG bytes in trame's shared
state (a binary websocket message, no base64), with the HUD beside it. The
page's own script (:data:`PAGE_JS`) shows the frames, sends the mouse (left
drag, coalesced to one move per browser frame) and acknowledges every frame
it has drawn: the server sends a frame only while fewer than ``window`` are
undrawn, so a slow client drops frames instead of queueing them, and the
simulation keeps its pace either way.

A session is a process of its own (``python -m organsim.web.app``, started by
:mod:`organsim.web.lab`): trame applications hold one shared state, so
isolation between trainees is a process each, which also spreads sessions
over the cores. Its configuration comes as JSON in the ``ORGANSIM_SESSION``
environment variable (scenario, trainee, history, output folder, host); it
prints ``ORGANSIM_SESSION_READY port=N`` once it listens, and exits
``idle_timeout_s`` seconds after its last browser left.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import sys
import time

from .live import TOOLS, LiveSession

__all__ = ["SessionApp", "PAGE_JS", "PAGE_CSS", "main"]

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
    window.trame.state.watch(['hud'], (h) => { if (h) st.hudSeq = h.input_seq || 0; });
    const ctx = img.getContext('2d');
    window.trame.state.watch(['frame'], (f) => {
      if (!f || !f.byteLength) return;
      const seq = st.hudSeq;
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
        window.trame.trigger('os_ack', [st.drawn.length]);
      }, () => window.trame.trigger('os_ack', [st.drawn.length]));
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
"""


class SessionApp:
    """The trame server of one session.

    Parameters
    ----------
    live : LiveSession
    server : trame server, optional
        Default: a new one (``trame.app.get_server``).
    fps : float
        Steps per second the simulation is driven at (its real-time pace is 1/dt).
    """

    def __init__(self, live: LiveSession, *, server=None, fps: float = 25.0, window: int = 4) -> None:
        from trame.app import get_server

        self.live = live
        self.server = server or get_server(f"organsim-{id(self)}", client_type="vue3")
        self.fps = float(fps)
        #: frames sent and not yet drawn by the page before the server waits (drops) frames
        self.window = int(window)
        self.sent = 0
        self.acked = 0
        self._ack_times: list[float] = []
        self._task = None
        self._last_sent = 0.0
        #: print the ready line (the lab reads it); off in a notebook
        self.announce = True
        #: server time (ms) of the last frames: step, render, encode
        self.frame_ms: list[float] = []
        self.state.trame__title = "organsim"
        self.state.update({"frame": b"", "hud": live.hud(), "results": None,
                           "trainee": live.trainee or "", "scenario_name": live.scenario.name,
                           "description": live.scenario.description, "fps": 0.0, "server_ms": 0.0,
                           "error": ""})
        ctrl = self.server.controller
        self.server.trigger("os_mouse")(self._safe(self.on_mouse))
        self.server.trigger("os_ack")(self._safe(self.on_ack))
        self.server.trigger("os_tool")(self._safe(self.on_tool))
        self.server.trigger("os_pause")(self._safe(self.on_pause))
        self.server.trigger("os_reset")(self._safe(self.on_reset))
        self.server.trigger("os_finish")(self._safe(self.on_finish))
        ctrl.on_server_ready.add(self._on_ready)
        self._build_ui()

    @property
    def state(self):
        return self.server.state

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
                    html.P("{{ description }}", style="max-width: 22em; color: #555")
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

    def on_mouse(self, kind, x, y, seq=0) -> None:
        x, y = self._number(x), self._number(y)
        seq = int(self._number(seq))
        if kind == "down":
            self.live.mouse_down(x, y)
        elif kind == "move":
            self.live.mouse_move(x, y)
        elif kind == "up":
            self.live.mouse_up(x, y)
        else:
            raise ValueError("unknown mouse event")
        self.live.input_seq = seq

    def on_ack(self, n=0) -> None:
        # n: frames the page has drawn since it connected (a reload starts again from 0)
        n = int(self._number(n))
        self.acked = n if n <= self.sent else self.sent
        now = time.perf_counter()
        self._ack_times.append(now)
        del self._ack_times[:-30]

    def on_tool(self, tool) -> None:
        if tool not in TOOLS:
            raise ValueError("unknown tool")
        self.live.set_tool(tool)
        self.state.hud = self.live.hud()

    def on_pause(self) -> None:
        self.live.set_paused(not self.live.paused)
        self.state.hud = self.live.hud()

    def on_reset(self) -> None:
        self.live.reset()
        self.state.results = None
        self.state.error = ""
        self.state.hud = self.live.hud()

    def on_finish(self) -> None:
        if self.live.finished:
            return
        res = self.live.finish()
        self.state.results = {k: res[k] for k in ("score", "proficient", "parts", "report_html")}
        self.state.hud = self.live.hud()

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

    async def _loop(self) -> None:
        period = 1.0 / self.fps
        nxt = time.perf_counter()
        while True:
            t0 = time.perf_counter()
            try:
                self.live.step()
                if self.sent - self.acked >= self.window and time.perf_counter() - self._last_sent > 1.0:
                    self.acked = self.sent  # an acknowledgement was lost: go on
                if self.sent - self.acked < self.window:
                    jpeg = self.live.jpeg()
                    with self.state:
                        self.state.frame = jpeg
                        self.state.hud = self.live.hud()
                        self.state.fps = round(self.displayed_fps(), 1)
                        self.state.server_ms = round(float(sorted(self.frame_ms)[len(self.frame_ms) // 2]), 1) \
                            if self.frame_ms else 0.0
                    self.sent += 1
                    self.frame_ms.append((time.perf_counter() - t0) * 1e3)
                    del self.frame_ms[:-50]
                    self._last_sent = time.perf_counter()
            except Exception as exc:  # noqa: BLE001 - keep serving; say what stopped
                log.exception("frame failed")
                self.state.error = f"simulation stopped: {type(exc).__name__} (reset to go on)"
                self.live.set_paused(True)
            nxt += period
            delay = nxt - time.perf_counter()
            if delay < 0:
                nxt = time.perf_counter()
                delay = 0.0
            await asyncio.sleep(delay)

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

    cfg = json.loads(os.environ.get("ORGANSIM_SESSION", "{}"))
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    quiet_vtk()
    sys.argv = sys.argv[:1]  # trame parses the command line too: give it nothing of ours
    size = tuple(cfg.get("size", (800, 600)))
    live = LiveSession(resolve_scenario(cfg["scenario"]), trainee=cfg.get("trainee"),
                       history_path=cfg.get("history"), outdir=cfg.get("outdir"), size=size)
    app = SessionApp(live, fps=float(cfg.get("fps", 25.0)))
    app.start(host=cfg.get("host", "127.0.0.1"), port=int(cfg.get("port", 0)),
              idle_timeout_s=int(cfg.get("idle_timeout_s", 60)))
    live.close()
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
