"""What the tests of harvester/http/ share: the local portal, its client calls, large-body settings."""
import contextlib
import threading

import pytest

from tests.portals.base import LocalPortal

DOC = {"results": [{"id": i, "name": f"dataset {i}"} for i in range(200)], "resultSetSize": 200}


@pytest.fixture
def portal():
    with LocalPortal() as p:
        p.serve_json("/doc", DOC)
        yield p


def get(client, portal, path="/doc", **kw):
    return client.get_json(portal.url + path, **kw)


@contextlib.contextmanager
def cut_short_after(client, seconds=60):
    """Waits the test expects to end in well under a second, ended after `seconds` (far beyond
    any load) by cancelling the run: a test that then sees Interrupted, not the outcome it
    expects, waited where it should not have (no elapsed time is asserted)."""
    timer = threading.Timer(seconds, client.cancel)
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


def asked_in_a_thread(client, asked: str, url: str, destination) -> tuple[threading.Thread, list]:
    """`url` asked by `client` in a thread started here, as a page (get_json) or a "download" to
    `destination`: the thread, and the list that gets what the call gave back or raised."""
    outcomes: list = []

    def ask():
        try:
            if asked == "download":
                outcomes.append(client.download(url, destination))
            else:
                outcomes.append(client.get_json(url))
        except BaseException as exc:
            outcomes.append(exc)

    asking = threading.Thread(target=ask)
    asking.start()
    return asking, outcomes


@pytest.fixture
def streamed_from_1_mb(monkeypatch):
    """Documents of 1 MB and more read a value at a time (in place of 16 MB): test bodies stay small."""
    monkeypatch.setattr("harvester.http.json_parsing.STREAMED_JSON_BYTES", 1 << 20)


@pytest.fixture
def spooled_bodies(monkeypatch):
    """Every body spooled to a temporary file, recorded (its file closed or not); with
    `interrupt_at` set, a KeyboardInterrupt raised as a body reaches that size."""
    import harvester.http.bodies

    class Made(list):
        interrupt_at = None

    made = Made()

    class Recorded(harvester.http.bodies._SpooledBody):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self)

        def write(self, data):
            super().write(data)
            if made.interrupt_at is not None and self.size >= made.interrupt_at:
                raise KeyboardInterrupt

    monkeypatch.setattr(harvester.http.bodies, "_SpooledBody", Recorded)
    return made


def left_unclosed_by_ctrl_c(client, url: str, waiting) -> list[str]:
    """`url` asked by `client` in this thread, the main one, as a one-worker harvest asks (pytest's
    workers run their tests in it), and SIGINT sent to it once `waiting()`, in another thread, has
    returned: its handler cancels the client and raises KeyboardInterrupt, as the stop's does
    (harvester.stopping). The ResourceWarnings of what the request left to the garbage collector."""
    import gc
    import signal
    import warnings

    assert threading.current_thread() is threading.main_thread(), "signals are taken by the main thread only"
    interrupted = []

    def ctrl_c(signum, frame):
        interrupted.append(signum)
        client.cancel()
        raise KeyboardInterrupt

    def interrupt():
        waiting()
        signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)

    previous = signal.signal(signal.SIGINT, ctrl_c)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ResourceWarning)
            interrupting = threading.Thread(target=interrupt)
            interrupting.start()
            try:
                with cut_short_after(client):
                    client.get_json(url)
            except KeyboardInterrupt:
                pass
            interrupting.join(60)
            gc.collect()   # (what the exception's frames held, freed as it was let go or here)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert interrupted, "the request ended before the Ctrl-C"
    return [str(warning.message) for warning in caught if issubclass(warning.category, ResourceWarning)]
