"""tests/children.py: a child that never prints the line awaited, or never ends, is killed and the
test fails at the deadline saying what it printed; one that answers is read as before."""
import subprocess
import sys
import time

import psutil
import pytest

from tests.children import ended, line_of, output_of, run

# (it says when it has printed: the deadline is then counted from there, whatever the load)
HANGS = "import pathlib, sys, time; print('half a line', end='', flush=True); print('why', file=sys.stderr, " \
        "flush=True); pathlib.Path(sys.argv[1]).touch(); time.sleep(300)"


def child(script: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", script, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def printed(said) -> None:
    deadline = time.monotonic() + 60   # (far beyond any load for a child's start)
    while not said.exists() and time.monotonic() < deadline:
        time.sleep(0.05)


@pytest.mark.parametrize("awaited", ["a line", "its end", "its output", "run"])
def test_a_child_that_hangs_is_killed_and_the_test_fails_saying_what_it_printed(tmp_path, awaited):
    process, said = None, tmp_path / "printed"
    with pytest.raises(pytest.fail.Exception) as failed:
        if awaited == "run":   # (its deadline counted from its start: a generous one)
            run([sys.executable, "-c", HANGS, str(said)], 10, capture_output=True, text=True)
        else:
            process = child(HANGS, str(said))
            printed(said)
            {"a line": line_of, "its end": ended, "its output": output_of}[awaited](process, seconds=1)
    message = str(failed.value)
    assert ("no line on its stdout within 1 s; killed" if awaited == "a line" else
            f"not ended within {10 if awaited == 'run' else 1} s; killed") in message, message
    assert "'half a line'" in message and "'why\\n'" in message, message
    if process is not None:
        assert process.returncode == -9 and not psutil.pid_exists(process.pid)


def test_a_child_that_answers_is_read_as_before():
    process = child("print('ready', flush=True); print('done')")
    assert line_of(process) == "ready\n" and line_of(process) == "done\n" and line_of(process) == ""
    assert ended(process) == 0
    process = child("import sys; print('out'); print('err', file=sys.stderr)")
    assert output_of(process) == ("out\n", "err\n") and process.returncode == 0
    assert run([sys.executable, "-c", "print(42)"], capture_output=True, text=True).stdout == "42\n"
