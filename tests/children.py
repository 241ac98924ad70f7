"""A test's child processes waited for with a deadline: a line read from a pipe, the end, the
output. A child that hangs, or never prints what is awaited, is killed, and the test fails saying
what it had printed (a read or wait without one held a test, and the suite, for good)."""
import subprocess
import threading

SECONDS = 120   # (far beyond any load for a child's line or end; a caller may give its own)


def line_of(process: subprocess.Popen, stream: str = "stdout", seconds: float = SECONDS) -> str:
    """The next line `process` writes on its `stream` pipe ("" at its end), within `seconds`."""
    pipe = getattr(process, stream)
    read: list = []
    reader = threading.Thread(target=lambda: read.append(pipe.readline()), daemon=True)
    reader.start()
    reader.join(seconds)
    if not read:
        stopped = _killed(process, reader)   # (its pipe ended: what the reader had of the line)
        _fail(process, f"no line on its {stream} within {seconds:g} s", {stream: _text(read[0])} if stopped and read
              else {})
    return read[0]


def ended(process: subprocess.Popen, seconds: float = SECONDS) -> int:
    """`process`'s exit status, once it ends within `seconds`."""
    return _within(process, seconds, process.wait)


def output_of(process: subprocess.Popen, seconds: float = SECONDS) -> tuple:
    """`process.communicate()`: its output to its end, within `seconds`."""
    return _within(process, seconds, process.communicate)


def _within(process: subprocess.Popen, seconds: float, call):
    try:
        return call(timeout=seconds)
    except subprocess.TimeoutExpired:
        _killed(process)
        _fail(process, f"not ended within {seconds:g} s")


def run(args, seconds: float = SECONDS, **kwargs) -> subprocess.CompletedProcess:
    """`subprocess.run(args, **kwargs)` within `seconds` (the child then killed by run)."""
    try:
        return subprocess.run(args, timeout=seconds, **kwargs)
    except subprocess.TimeoutExpired as exc:
        import pytest   # (here: tests/portals, which the benchmarks import, use this module)
        pytest.fail(f"{args[:4]}... not ended within {seconds:g} s; killed. It printed: stdout {_tail(exc.stdout)}, "
                    f"stderr {_tail(exc.stderr)}", pytrace=False)


def _killed(process: subprocess.Popen, reader: threading.Thread | None = None) -> bool:
    """`process` killed (its pipes then end); whether `reader`, a thread reading one, has stopped."""
    process.kill()
    if reader is not None:
        reader.join(10)
        return not reader.is_alive()
    return True


def _fail(process: subprocess.Popen, why: str, read: dict | None = None) -> None:
    printed = dict(read or {})
    try:   # (the rest of what it printed; a pipe a grandchild holds open does not end: not waited for)
        out, err = process.communicate(timeout=10)
        for name, text in (("stdout", out), ("stderr", err)):
            if text:
                printed[name] = printed.get(name, "") + _text(text)
    except (subprocess.TimeoutExpired, ValueError, OSError):
        pass
    said = ", ".join(f"{name} {_tail(text)}" for name, text in printed.items()) or "nothing read"
    import pytest
    pytest.fail(f"{process.args[:4]}... {why}; killed. It printed: {said}", pytrace=False)


def _text(data) -> str:
    return data.decode(errors="replace") if isinstance(data, bytes) else (data or "")


def _tail(text) -> str:
    return repr(_text(text)[-2000:])
