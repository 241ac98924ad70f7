"""bench.serve: the portal server's process, as the benchmarks start and stop it."""
import os
import signal

import psutil
import pytest

import bench.serve
from bench.serve import serving
from tests.children import line_of


def test_a_server_slow_to_stop_is_stopped_without_losing_the_benchmark(monkeypatch, capfd):
    """Under heavy load the server's stop took over the 60 s it was given and raised
    TimeoutExpired as the block ended, before bench.harvest_catalog printed its figures: now it
    says so and stops the server's process outright."""
    monkeypatch.setattr(bench.serve, "STOP_SECONDS", 1, raising=False)
    figures = []
    with serving("socrata", 10) as server:
        assert line_of(server).startswith("http://127.0.0.1:")
        os.kill(server.pid, signal.SIGSTOP)   # (a server that cannot stop in time, as on a machine at load 60)
        figures.append("measured")
    figures.append("printed")
    assert figures == ["measured", "printed"]
    assert server.returncode == -signal.SIGKILL
    assert not psutil.pid_exists(server.pid)
    assert "did not stop within 1 s" in capfd.readouterr().err


def test_a_server_stops_when_the_block_ends():
    with serving("socrata", 10) as server:
        assert line_of(server).startswith("http://127.0.0.1:")
    assert server.returncode == 0


@pytest.mark.parametrize("args, code", [(["--help"], 0), ([], 2), (["socrata"], 2)])
def test_its_help_and_a_call_without_its_two_arguments_say_how_it_is_called(args, code):
    """Session 41: `python -m bench.serve --help` (or no arguments) ended in an IndexError."""
    import subprocess
    import sys

    ran = subprocess.run([sys.executable, "-m", "bench.serve", *args], capture_output=True, text=True, timeout=120)
    assert ran.returncode == code, ran.stderr
    said = ran.stdout if code == 0 else ran.stderr
    assert "python -m bench.serve socrata 100000" in said and "Traceback" not in ran.stderr
