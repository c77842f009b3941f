"""The ``organsim`` command.

Each subcommand lives in a module of this package that exposes
``register(subparsers)``; this module builds the parser, dispatches, and turns
any :class:`~organsim.errors.OrganSimError` into one line on stderr and a
non-zero exit status.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from ..errors import OrganSimError
from ..memory import retain_freed_memory

__all__ = ["main", "build_parser", "HelpFormatter"]


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows an option's default in its help, unless it has none (None)."""

    def _get_help_string(self, action):
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)

#: Modules of this package that each register subcommands, in help order.
COMMAND_MODULES = ["meshing", "procedure", "sweep", "dataset", "serve"]


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = argparse.ArgumentParser(
        prog="organsim",
        description="organsim: 3D organ surgical simulation. Mesh a patient's organ, "
                    "simulate tissue, cut it, and watch it.",
    )
    parser.add_argument("--version", action="version", version=f"organsim {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    parser.add_argument("--debug", action="store_true",
                        help="show full tracebacks instead of one-line errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as exc:  # a command module not written yet
            if exc.name == f"{__name__}.{name}":
                continue
            raise
        module.register(sub)
    return parser


def _quiet_vtk(verbose: bool) -> None:
    """Keep VTK's own warnings (e.g. an X server probe before falling back to
    off-screen EGL) off the terminal unless ``--verbose``; errors still show."""
    if verbose:
        return
    try:
        from vtkmodules.vtkCommonCore import vtkLogger
    except ImportError:  # pragma: no cover - vtk is a dependency
        return
    vtkLogger.SetStderrVerbosity(vtkLogger.VERBOSITY_ERROR)


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    _quiet_vtk(args.verbose)
    retain_freed_memory()   # cut increments and steps reuse freed arrays (organsim.memory)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except OrganSimError as exc:
        if args.debug:
            raise
        print(f"organsim {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"organsim {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - last line of defence for the CLI
        if args.debug:
            raise
        msg = str(exc).splitlines()[0] if str(exc) else ""
        print(f"organsim {args.command}: internal error: {type(exc).__name__}: {msg} "
              "(rerun with --debug for the traceback and please report it)", file=sys.stderr)
        return 3


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
