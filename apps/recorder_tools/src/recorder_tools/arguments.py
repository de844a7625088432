"""The command line shared by the tools that read recorded sessions (``recorder-report``,
``recorder-export``): the sessions to read come first, as PATH_OR_URL."""

from __future__ import annotations

import argparse


def sessions_parser(prog: str, description: str) -> argparse.ArgumentParser:
    """An argument parser whose first argument, ``path``, names the sessions to read."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("path", help="session folder, recorder.db, outputs/ tree, or database URL")
    return parser
