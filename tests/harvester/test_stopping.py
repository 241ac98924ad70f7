"""How a command is stopped: a third Ctrl-C or SIGTERM quits at once."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# a command whose main thread is held in C code where no Python signal handler runs, as DuckDB
# 1.5.5 holds it now and then in the statement after one a signal interrupted (2 runs in 24
# under load): the signals blocked in the main thread, so that another thread takes them (the
# first signal's handler may still run in the main thread before it is held: its stop ignored)
HELD_IN_C = """
import ctypes, signal
from harvester.stopping import stop_on_signals
stop_on_signals()
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
said = False
while True:
    try:
        if not said:
            said = print("held", flush=True) or True
        ctypes.CDLL(None).sleep(600)
    except KeyboardInterrupt:
        pass
"""


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_third_signal_quits_while_the_main_thread_is_held_in_c_code(sig):
    """The third signal's quit ran in the main thread's Python handler: with the main thread held
    in DuckDB, no handler ran, and no number of Ctrl-C or SIGTERM ended the process (kill -9
    did). A thread of their own counts the signals and quits after the third."""
    held = subprocess.Popen([sys.executable, "-c", HELD_IN_C], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        assert held.stdout.readline() == b"held\n"
        for _ in range(3):
            held.send_signal(sig)
            time.sleep(0.2)   # (pacing, not a measure: a signal sent while the one before is pending is merged with it)
        _, err = held.communicate(timeout=30)
    finally:
        held.kill()
        held.wait()
    said = "SIGTERM" if sig == signal.SIGTERM else "Ctrl-C"
    assert held.returncode == 128 + sig, err.decode()[-2000:]
    assert f"{said} a third time: quitting at once" in err.decode()


# a command whose requests run in other threads and whose main thread is held in C code where no
# Python signal handler runs (a long C call under load: the main thread's handler runs only when
# it returns): signals blocked in the main thread, as above
CANCEL_WHILE_HELD = """
import ctypes, signal, sys, threading, time
from harvester.stopping import cancelled_on_stop, stop_on_signals, stop_requested, stopped_by
stop_on_signals()
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
cancelled, sleep, main = threading.Event(), ctypes.CDLL(None).sleep, threading.main_thread().ident

def watch():
    while sys._current_frames()[main].f_code.co_name != "held":
        time.sleep(0.01)
    time.sleep(0.2)   # (inside the C call by now: a signal before it would run the handler in the main thread)
    print("held", flush=True)
    deadline = time.monotonic() + 30
    while not cancelled.is_set() and time.monotonic() < deadline:
        time.sleep(0.05)
    print("cancelled" if cancelled.is_set() else "not cancelled", stop_requested(), stopped_by(), flush=True)

def held():
    sleep(600)

with cancelled_on_stop(cancelled.set):
    threading.Thread(target=watch, daemon=True).start()
    held()
"""


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_the_first_signal_cancels_the_requests_while_the_main_thread_is_held_in_c_code(sig):
    """The run's requests were cancelled by the main thread's Python handler only: while the main
    thread was held in a C call (a harvest at load 11), the listing's page threads went on asking
    for every page (17 after Ctrl-C where at most the 4 in flight were allowed). The thread that
    counts the signals cancels them at the first, and the stop is requested from then on. A portal
    thread so stopped names the signal before the handler has run: SIGTERM was said "Ctrl-C" (its
    run's message, in CI)."""
    held = subprocess.Popen([sys.executable, "-c", CANCEL_WHILE_HELD], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        assert held.stdout.readline() == b"held\n"
        held.send_signal(sig)
        said = held.stdout.readline()
    finally:
        held.kill()
        _, err = held.communicate()
    name = "SIGTERM" if sig == signal.SIGTERM else "Ctrl-C"
    assert said == f"cancelled True {name}\n".encode(), (held.returncode, err.decode()[-2000:])
