"""Options and checks shared by the subcommands of the ``klom`` command line."""

from __future__ import annotations

import argparse
import re
from pathlib import Path


def device_arg(text: str) -> str:
    """``auto``, ``cpu``, ``cuda`` or ``cuda:N``."""
    if text in ("auto", "cpu", "cuda") or re.fullmatch(r"cuda:\d+", text):
        return text
    raise argparse.ArgumentTypeError(f"expected auto, cpu, cuda or cuda:N, got {text!r}")


def add_device_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto", type=device_arg, metavar="auto|cpu|cuda[:N]",
                   help="default: cuda when available")


def add_progress_options(p: argparse.ArgumentParser) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument("--progress", dest="progress", action="store_const", const=True,
                   help="progress bars even when output is not a terminal")
    g.add_argument("--quiet", dest="progress", action="store_const", const=False,
                   help="no progress output")
    p.set_defaults(progress=None)  # bars on a terminal, plain lines in logs


def add_metrics_option(p: argparse.ArgumentParser, where: str) -> None:
    """``--metrics``: the lenses besides KLOM (checked by ``lenses.parse_metrics`` in the
    command, so that a bad list is the command's one-line error)."""
    p.add_argument("--metrics", default="klom", metavar="LIST",
                   help=f"lenses {where}: klom alone (default), 'all', or a comma list among "
                        "klom, ulira, accuracy, ks (each with its interval and its null at the "
                        "same N)")


def writable_json(path: str):
    """``path`` as a Path whose folder exists or can be made, checked before any work."""
    out = Path(path)
    if out.is_dir():
        raise ValueError(f"--json {path}: is a folder; give a file name")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise ValueError(f"--json {path}: {out.parent} is a file, not a folder") from None
    return out
