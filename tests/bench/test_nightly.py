"""bench.nightly: how it measures a night's harvest process."""
import sys

from bench.nightly import run_measured


def test_the_largest_process_is_the_harvests_own_peak_not_the_benchs():
    """wait4's ru_maxrss of a process Python starts keeps the starting process's high-water mark
    (vfork, then exec): night 2's "largest process" (~540 MB) was the bench's own peak, the harvest's
    ~260 MB. A child of 30 MB started by a process that held 300 MB measures as the child."""
    held = bytearray(300 * 2**20)
    held[::4096] = b"\1" * len(held[::4096])   # (touched: resident)
    child, out, usage, figures = run_measured(
        [sys.executable, "-c", "import sys; x = bytearray(30 * 2**20); x[::4096] = b'1' * len(x[::4096]); "
                               "print(len(x)); sys.exit(3)"])
    del held
    assert child.returncode == 3 and out.strip() == str(30 * 2**20).encode()
    assert usage.ru_maxrss / 1024 > 300   # (what the bench printed)
    assert 30 < figures["own_peak_mb"] < 100
    assert figures["max_rss_mb"] == figures["own_peak_mb"]   # (no descendant)
