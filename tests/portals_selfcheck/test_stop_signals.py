"""Self-check: the suite, and what it starts, take Ctrl-C as a terminal's foreground process does,
however the suite was started (tests/conftest.py: a shell's background job ignores SIGINT)."""
import signal
import subprocess
import sys


def test_sigint_raises_keyboard_interrupt_in_the_suite_and_in_the_processes_it_starts():
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler   # (no earlier test left one of its own)
    child = subprocess.run([sys.executable, "-c", "import signal; print(signal.getsignal(signal.SIGINT) is "
                            "signal.default_int_handler)"], capture_output=True, text=True, timeout=60)
    assert child.stdout == "True\n", child.stderr
