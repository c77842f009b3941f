"""``organsim serve``: the live procedure in the browser (a skills lab; needs ``organsim[web]``)."""

from __future__ import annotations

import argparse
import importlib.util
import sys

from ..errors import OrganSimError

__all__ = ["register", "web_missing"]

#: Packages of the ``web`` extra that ``organsim serve`` imports.
WEB_MODULES = ("trame", "trame_server", "aiohttp")


def web_missing() -> list[str]:
    """Modules of the ``web`` extra that are not installed."""
    return [m for m in WEB_MODULES if importlib.util.find_spec(m) is None]


def host_warning(host: str) -> str | None:
    """The warning printed when the lab listens beyond this machine (None on loopback).

    Examples
    --------
    >>> host_warning("127.0.0.1") is None
    True
    >>> host_warning("0.0.0.0").startswith("organsim serve: warning")
    True
    """
    from ..web.lab import LOOPBACK

    if host in LOOPBACK:
        return None
    return (f"organsim serve: warning: listening on {host}, not only this machine: anyone who can "
            "reach it can start sessions (there is no login); use a trusted network")


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "serve", help="serve live attempts in the browser (a skills lab: one session per trainee)",
        description="Serve the live procedure in the browser. The start page asks for the trainee's "
                    "name and offers the scenarios and exercises given here (the browser never "
                    "names a file); each trainee gets a session of their own (own simulation, "
                    "rendered on this machine); every attempt is scored into the shared training "
                    "history. Needs: pip install \"organsim[web]\".")
    p.add_argument("scenarios", nargs="*", metavar="SCENARIO",
                   help="scenario .toml files and exercises (pattern-cutting, retraction) to offer "
                        "(default: pattern-cutting)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on; anything but loopback makes the lab reachable from "
                        "the network (no login: use it on a trusted network only)")
    p.add_argument("--port", type=int, default=8080, help="port of the start page")
    p.add_argument("--history", metavar="DB", help="training history database "
                   "(default ~/.organsim/history.sqlite)")
    p.add_argument("-o", "--outdir", default="organsim-lab", help="where each attempt's results go")
    p.add_argument("--max-sessions", type=int, default=8, help="sessions at once")
    p.add_argument("--size", default="800x600", help="image size of each session's view (WxH)")
    p.set_defaults(func=cmd_serve)


def cmd_serve(args: argparse.Namespace) -> int:
    missing = web_missing()
    if missing:
        print('organsim serve needs the web extra: pip install "organsim[web]"', file=sys.stderr)
        return 1
    from ..web.app import quiet_vtk
    from ..web.lab import Lab
    from ..warmup import warm_up

    try:
        w, h = (int(v) for v in args.size.lower().split("x"))
    except ValueError:
        raise OrganSimError(f"--size {args.size!r}: expected WxH, e.g. 800x600") from None
    if not (160 <= w <= 1920 and 120 <= h <= 1440):
        raise OrganSimError("--size: between 160x120 and 1920x1440")
    quiet_vtk()
    lab = Lab(args.scenarios, host=args.host, port=args.port, history_path=args.history,
              outdir=args.outdir, max_sessions=args.max_sessions, size=(w, h))
    warning = host_warning(args.host)
    if warning:
        print(warning, file=sys.stderr)
    warm_up(progress=True)  # compile once here, not in every session

    def ready(port: int) -> None:
        shown = f"[{args.host}]" if ":" in args.host else args.host
        print(f"organsim serve: open http://{shown}:{port}/ "
              f"({', '.join(o.title for o in lab.offers)}); Ctrl-C stops", flush=True)

    lab.serve_forever(ready=ready)
    return 0
