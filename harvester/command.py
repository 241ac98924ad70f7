"""The `civicat` console command's entry point (pyproject.toml): the stop handlers first. `python -m
harvester` (harvester/__main__.py) and `python -m harvester.cli` start here too.

Every call imports the command layer (harvester.cli: click and what it imports) before it does
anything, a tenth of a second of CPU and more than a second of wall time on a loaded machine. A
Ctrl-C or SIGTERM then met Python's defaults: a KeyboardInterrupt traceback (a failure, to cron),
or for SIGTERM the process ended without a word. Installed before that import, civicat's own
handlers make it a stop as anywhere: the stop's message, exit 130 / 143. What is left before them
is the interpreter's start and harvester.stopping's import (logging, threading).
"""
from __future__ import annotations

import sys

from harvester.stopping import stop_message, stop_on_signals, stopped_exit_code


def main() -> None:
    stop_on_signals()
    try:
        from harvester.cli import main as run_command
        run_command()
    except KeyboardInterrupt:   # (in the import, or before click's context: a command's own stops are said there)
        print(stop_message(), file=sys.stderr)
        sys.exit(stopped_exit_code())


if __name__ == "__main__":
    main()
