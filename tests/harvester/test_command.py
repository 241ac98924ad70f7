"""The `civicat` console command as pip installs it: the entry point pyproject.toml declares."""
import os
import signal
import subprocess
import sys
import tomllib

import pytest

from tests.conftest import stopped_at_its_first_line

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def console_script() -> str:
    """The script pip writes for `civicat` (its import of the entry point at the top, as pip's)."""
    with open(os.path.join(REPO, "pyproject.toml"), "rb") as file:
        module, _, function = tomllib.load(file)["project"]["scripts"]["civicat"].partition(":")
    return f"import sys\nfrom {module} import {function}\nsys.exit({function}())\n"


# click's import (harvester.cli's first) made slow: a stop signal lands while the command imports
# what it runs (tenths of a second on a loaded machine, every call); slow as Python's work is, which
# looks for signals at every step (see tests.conftest.stopped_at_its_first_line)
IMPORTING_SLOWLY = """
import sys, time

class SlowClick:
    def find_spec(self, name, path=None, target=None):
        if name == "click":
            print("importing", flush=True)
            for _ in range(600):
                time.sleep(0.1)
        return None

sys.meta_path.insert(0, SlowClick())
sys.argv = ["civicat", "--help"]
"""


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_stop_while_the_command_imports_exits_as_every_stop_does(sig):
    """Ctrl-C there ended in a KeyboardInterrupt traceback and exit 1 (a failure, to cron);
    SIGTERM ended the process without a word (Python's default): 130 / 143 and the stop's message."""
    importing = stopped_at_its_first_line(IMPORTING_SLOWLY + console_script(), sig, "importing\n")
    said = "SIGTERM" if sig == signal.SIGTERM else "Ctrl-C"
    assert importing.returncode == 128 + sig, importing.err
    assert importing.err == f"Interrupted ({said}): stopped before its end; nothing half-written was published\n"
    assert importing.out == ""   # (no help: the command never began)


def test_the_console_script_runs_the_command():
    result = subprocess.run([sys.executable, "-c", console_script(), "--version"], cwd=REPO, capture_output=True,
                            text=True, timeout=60, env={**os.environ, "PYTHONPATH": REPO})
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("civicat, version ")


def test_help_imports_none_of_what_the_commands_use():
    """`civicat --help` (and every call, before its command) pays for what harvester.cli imports:
    the table printer and the config's reader are imported by the commands that use them."""
    result = subprocess.run([sys.executable, "-X", "importtime", "-c", console_script(), "--help"], cwd=REPO,
                            capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONPATH": REPO})
    assert result.returncode == 0, result.stderr
    assert "Commands:" in result.stdout
    imported = {line.split("|")[-1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")}
    assert "click" in imported   # (what the help needs)
    unneeded = imported & {"tabulate", "tomllib", "duckdb", "pyarrow", "pandas", "requests", "jsonschema",
                           "catalog.store", "harvester.http"}
    assert not unneeded, sorted(unneeded)


# `python -m MODULE`, as runpy runs it (what `-m` does), after the slow import is set up
AS_MODULE = "import runpy\nrunpy.run_module({module!r}, run_name='__main__', alter_sys=True)\n"


@pytest.mark.parametrize("module", ["harvester", "harvester.cli"])
def test_a_stop_while_python_m_imports_exits_as_every_stop_does(module):
    """`python -m harvester.cli` (the tests' and benches' way) imported click and the command layer
    before its handlers: a SIGTERM there ended the process without a word (-15); `python -m harvester`
    did not exist. Both now take the console command's path: the handlers first."""
    importing = stopped_at_its_first_line(IMPORTING_SLOWLY + AS_MODULE.format(module=module), signal.SIGTERM,
                                          "importing\n")
    assert importing.returncode == 143, importing.err
    assert importing.err == "Interrupted (SIGTERM): stopped before its end; nothing half-written was published\n"
    assert importing.out == ""


@pytest.mark.parametrize("module", ["harvester", "harvester.cli"])
def test_python_m_runs_the_command(module):
    result = subprocess.run([sys.executable, "-m", module, "--version"], cwd=REPO, capture_output=True,
                            text=True, timeout=60, env={**os.environ, "PYTHONPATH": REPO})
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("civicat, version ")
