"""Host names looked up with a bound: names that do not resolve, resolvers that fail, hang or answer
late (the tests' resolver, no mocked requests)."""
import concurrent.futures
import logging
import os
import re
import socket
import threading
import time

import pytest

from harvester.http import HostNotFound, HostUnavailable, Interrupted, LookupTimedOut, LookupUnanswered, ResolverDown
from harvester.http.resolver import _Lookups
from tests.conftest import fast_client
from tests.harvester.http.conftest import DOC, unbounded_wait_fails
from tests.portals.base import LocalPortal

SYSTEM_RESOLVER = socket.getaddrinfo   # (taken before conftest's _loopback_only stands in for it)


def test_an_invalid_name_resolved_by_the_system_is_a_host_not_found(monkeypatch):
    try:
        SYSTEM_RESOLVER("data.nowhere.invalid", 80)
        pytest.skip("this machine's resolver resolves data.nowhere.invalid")
    except socket.gaierror as exc:
        if exc.errno != socket.EAI_NONAME:
            pytest.skip(f"this machine's resolver answers data.nowhere.invalid with {exc} (not EAI_NONAME)")
    monkeypatch.setattr(socket, "getaddrinfo", SYSTEM_RESOLVER)
    client = fast_client(max_attempts=5)
    with pytest.raises(HostNotFound, match=r"^host name data\.nowhere\.invalid does not resolve \(Name or service"):
        client.get_json("http://data.nowhere.invalid/doc")
    assert (client.stats.requests, client.stats.retries) == (2, 1)


def test_a_name_that_does_not_resolve_is_asked_twice_and_its_host_given_up(tmp_path, resolver):
    """An NXDOMAIN (EAI_NONAME) was retried five times, ~17 s
    with the default backoff, and three requests (~50 s) before its host was given up. Now one
    retry, then no request of the run asks that host again; the error says plainly why."""
    client = fast_client(max_attempts=5, host_failure_limit=3)
    url = "http://data.nowhere.invalid/api/doc"
    with pytest.raises(HostNotFound, match=r"^host name data\.nowhere\.invalid does not resolve \(") as failed:
        client.get_json(url)
    assert url in str(failed.value) and "urllib3" not in str(failed.value) and "ConnectionError" not in str(failed.value)
    assert (client.stats.requests, client.stats.retries) == (2, 1)
    assert resolver.asked["data.nowhere.invalid"] == 2
    with pytest.raises(HostUnavailable, match=r"^host name data\.nowhere\.invalid does not resolve \(.*\); not asked again"):
        client.get_json(url + "/other")
    assert client.stats.requests == 2 and resolver.asked["data.nowhere.invalid"] == 2
    # a download (a records pull) is refused as well (it was asked twice more), and one of a run
    # that has not met the name yet is asked twice, as a page is, its host given up after it
    with pytest.raises(HostUnavailable, match=r"^host name data\.nowhere\.invalid does not resolve \(.*\); not asked"):
        client.download(url, tmp_path / "file.csv")
    assert client.stats.requests == 2 and resolver.asked["data.nowhere.invalid"] == 2
    another_run = fast_client(max_attempts=5, host_failure_limit=3)
    with pytest.raises(HostNotFound):
        another_run.download(url, tmp_path / "file.csv")
    assert resolver.asked["data.nowhere.invalid"] == 4
    with pytest.raises(HostUnavailable, match="does not resolve"):
        another_run.get_json(url)
    assert resolver.asked["data.nowhere.invalid"] == 4


def test_a_name_that_does_not_resolve_for_a_moment_is_asked_once_more(portal, resolver):
    """The one retry is for a resolver that answers NXDOMAIN for a moment (another server of
    its pool, a link that came up)."""
    resolver.answers["flaky.portal.test"] = [socket.gaierror(socket.EAI_NONAME, "Name or service not known"),
                                             "127.0.0.1"]
    client = fast_client(max_attempts=5)
    assert client.get_json(portal.url.replace("127.0.0.1", "flaky.portal.test") + "/doc").data == DOC
    assert (client.stats.requests, client.stats.retries, portal.hits["/doc"]) == (2, 1, 1)


def test_a_redirect_to_a_name_that_does_not_resolve_names_that_name(resolver):
    class Redirecting(LocalPortal):
        def _wsgi(self, environ, start_response):
            self.requests.append((environ["PATH_INFO"], {}, {}))
            start_response("301 Moved Permanently", [("Location", "http://gone.nowhere.invalid/doc"),
                                                     ("Content-Length", "0")])
            return [b""]

    client = fast_client(max_attempts=5, host_failure_limit=3)
    with Redirecting() as origin:
        with pytest.raises(HostNotFound, match=r"^host name gone\.nowhere\.invalid does not resolve"):
            client.get_json(origin.url + "/moved")
        assert len(origin.requests) == 2 and resolver.asked["gone.nowhere.invalid"] == 2
        with pytest.raises(HostUnavailable, match="host name gone.nowhere.invalid does not resolve"):
            client.get_json(origin.url + "/moved")   # (the origin redirects every request there)
        assert len(origin.requests) == 2


def test_a_resolver_that_fails_for_a_while_keeps_the_bounded_retries(portal, resolver):
    """EAI_AGAIN (the resolver timed out, the network is down) is no answer about the name:
    retried as any connection fault, and the host given up only after its failures' limit."""
    again = socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
    resolver.answers["slow.portal.test"] = [again, again, "127.0.0.1"]
    client = fast_client(max_attempts=5, host_failure_limit=2)
    url = portal.url.replace("127.0.0.1", "slow.portal.test") + "/doc"
    assert client.get_json(url).data == DOC
    assert (client.stats.requests, client.stats.retries) == (3, 2)
    resolver.answers["slow.portal.test"] = [again]
    for made in (8, 13):
        with pytest.raises(LookupUnanswered, match=r"^the resolver gave no answer for host name slow\.portal\.test "
                                                   r"\(Temporary failure in name resolution\)") as failed:
            client.get_json(url)
        assert failed.value.host_down is None and client.stats.requests == made
    with pytest.raises(HostUnavailable, match="failed 2 requests in a row"):
        client.get_json(url)
    assert client.stats.requests == 13


def test_a_lookup_that_hangs_is_bounded_and_a_name_unanswered_for_two_connect_timeouts_is_given_up(
        portal, resolver, tmp_path):
    """getaddrinfo has no timeout of its own: each attempt waits the connect timeout for the name,
    and the lookup still hanging is the one every retry waits for (one thread a name, not one an
    attempt). A request was then asked 5 times, ~61 s with a hanging resolver, and 3 requests
    before its host was given up (~183 s for a hub's layers): a name unanswered for twice the
    connect timeout in a row is now down for the run, as a port refused for its limit. The
    lookup here hangs until the test ends it (the dead servers' own give-up)."""
    dropped = threading.Event()
    resolver.answers["slow.portal.test"] = [dropped]
    client = fast_client(max_attempts=5, connect_timeout=0.2, host_failure_limit=3)
    url = portal.url.replace("127.0.0.1", "slow.portal.test")
    try:
        with unbounded_wait_fails(client), pytest.raises(
                LookupTimedOut, match=r"^host name slow\.portal\.test did not resolve within 0\.2 s \(") as failed:
            client.get_json(url + "/doc")
        assert (client.stats.requests, client.stats.retries) == (2, 1)   # two connect timeouts, then down
        assert failed.value.host_down == ("host name slow.portal.test went unanswered by the resolver for 0.4 s "
                                          "in a row; not asked again this run")
        for later in ("/doc", "/other"):
            with pytest.raises(HostUnavailable, match=r"^host name slow\.portal\.test went unanswered by the resolver "
                                                      r"for 0\.4 s in a row; not asked again this run \("):
                client.get_json(url + later)
        assert client.stats.requests == 2
        with pytest.raises(HostUnavailable, match="went unanswered by the resolver"):
            client.download(url + "/doc", tmp_path / "file.csv")   # (a download too: it was asked once more)
        assert client.stats.requests == 2
        assert resolver.asked["slow.portal.test"] == 1 and not dropped.is_set()
    finally:
        dropped.set()


def test_a_resolver_that_answers_slowly_is_waited_for_and_a_late_answer_taken_by_the_retry(portal, resolver, caplog):
    """A resolver that answers within the connect timeout, however slowly, serves every request,
    names looked up in parallel too. One that answers a moment past it (6 names unanswered at
    once: the resolver taken for down) answers the retries, which wait for the lookups under
    way (a transient miss is retried)."""
    names = [f"slow{number}.portal.test" for number in range(6)]
    urls = [portal.url.replace("127.0.0.1", name) + "/doc" for name in names]
    for name in names:
        resolver.answers[name] = [(0.15, "127.0.0.1")]
    client = fast_client(max_attempts=5, connect_timeout=5.0)
    with concurrent.futures.ThreadPoolExecutor(6) as threads:
        assert [response.data for response in threads.map(client.get_json, urls)] == [DOC] * 6
    assert (client.stats.requests, client.stats.retries) == (6, 0)

    answered, waits = threading.Event(), []
    for name in names:
        resolver.answers[name] = [(answered, "127.0.0.1")]
    client = fast_client(max_attempts=5, connect_timeout=1.0)
    retry_wait = client._sleep

    def answered_once_every_name_went_unanswered(seconds):
        waits.append(seconds)
        if len(waits) == len(names):   # (each thread's first retry wait: each name's lookup timed out)
            answered.set()
        retry_wait(seconds)

    client._sleep = answered_once_every_name_went_unanswered
    try:
        with caplog.at_level(logging.WARNING, logger="civicat.http"), \
                concurrent.futures.ThreadPoolExecutor(6) as threads:
            assert [response.data for response in threads.map(client.get_json, urls)] == [DOC] * 6
    finally:
        answered.set()
    assert (client.stats.requests, client.stats.retries) == (12, 6)
    said = [record.getMessage() for record in caplog.records if "resolver" in record.getMessage()]
    assert said[0].startswith("the resolver has answered no lookup of ") and len(said) == 2


def test_a_resolver_that_answers_no_name_is_down_and_no_request_waits_for_it(portal, resolver, caplog):
    """Lookups of 3 different names unanswered, none answered since: the resolver is down, said
    once. Every later request fails at once (not retried, its host not held to blame), one
    lookup at a time runs meanwhile, and the first that answers brings the resolver back. (A
    request waited 2 connect timeouts a name, and 5 attempts.)"""
    dropped, answers_again = threading.Event(), threading.Event()
    for name in ("a", "b", "c"):
        resolver.answers[f"{name}.dead.test"] = [dropped]
    for number in range(20):
        resolver.answers[f"d{number}.portal.test"] = [(answers_again, "127.0.0.1")]
    client = fast_client(max_attempts=5, connect_timeout=0.1, host_failure_limit=1)
    port = portal.url.rsplit(":", 1)[1]
    try:
        with caplog.at_level(logging.WARNING, logger="civicat.http"), unbounded_wait_fails(client):
            for name in ("a", "b", "c"):   # (c's lookup, under way, is waited for by its retry)
                with pytest.raises(LookupTimedOut) as failed:
                    client.get_json(f"http://{name}.dead.test:{port}/doc")
                assert failed.value.host_down is not None   # (2 attempts: 2 connect timeouts)
            # (or 1, when a loaded machine woke the attempt past the name's limit of 2 connect
            # timeouts, 0.2 s here: its first lookup's 0.1 s and a tenth late; seen in session 32)
            dead_names_asked = client.stats.requests
            assert 3 <= dead_names_asked <= 6
            with pytest.raises(ResolverDown, match=r"^the resolver has answered no lookup for \d+ s \(3 host names "
                                                   r"unanswered: a\.dead\.test, b\.dead\.test, c\.dead\.test\); host "
                                                   r"name d0\.portal\.test not waited for until it answers again \("):
                client.get_json(f"http://d0.portal.test:{port}/doc")
            for number in range(1, 20):
                with pytest.raises(ResolverDown, match=rf"host name d{number}\.portal\.test not waited for"):
                    client.get_json(f"http://d{number}.portal.test:{port}/doc")
            assert client.stats.requests == dead_names_asked + 20   # one attempt each, none waited for
            assert sum(resolver.asked[f"d{number}.portal.test"] for number in range(20)) <= 1   # the one probe
            said = [record.getMessage() for record in caplog.records if "resolver" in record.getMessage()]
            assert said == ["the resolver has answered no lookup of 3 host names (a.dead.test, b.dead.test, "
                            "c.dead.test): no lookup starts until it answers again"]
            answers_again.set()
            for _ in range(1000):   # (the probe's answer, told from its thread)
                if not client._resolver._down:
                    break
                time.sleep(0.01)
            assert client.get_json(f"http://d7.portal.test:{port}/doc").data == DOC   # (d7 was not given up)
            assert caplog.records[-1].getMessage() == "the resolver answers again: host names are looked up again"
    finally:
        dropped.set()
        answers_again.set()


def test_a_moment_s_failure_of_the_resolver_for_names_asked_at_once_is_retried(portal, resolver):
    """A resolver that fails for a moment (restarted, the network blinking) fails with EAI_AGAIN
    every lookup under way: three portals' names asked at once, none answered. That is not a
    resolver down: their retries, once it answers again, serve every request (r23: the three
    made it down at once, and each request failed without a retry, its portal for the night)."""
    blinking = threading.Event()
    names = [f"p{number}.portal.test" for number in range(3)]
    for name in names:
        resolver.answers[name] = [(blinking, socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")),
                                  "127.0.0.1"]
    client = fast_client(max_attempts=5, connect_timeout=5.0)
    port = portal.url.rsplit(":", 1)[1]
    with unbounded_wait_fails(client), concurrent.futures.ThreadPoolExecutor(3) as threads:
        fetched = [threads.submit(client.get_json, f"http://{name}:{port}/doc") for name in names]
        while not all(resolver.asked[name] for name in names):   # (all three lookups under way)
            time.sleep(0.01)
        blinking.set()
        assert [future.result().data for future in fetched] == [DOC] * 3
    assert (client.stats.requests, client.stats.retries) == (6, 3)
    assert not client._resolver._down


def test_a_resolver_that_never_answers_holds_a_few_lookup_threads_however_many_names_are_asked(resolver):
    """A lookup that never ends holds its thread for good: a thread a name, every name a harvest
    asked (or a process's runs, each a client). At most _Lookups.AT_ONCE lookups run at a time; a
    name beyond them waits for a place within its connect timeout, and is unanswered."""
    dropped = threading.Event()
    names = [f"host{number}.hanging.test" for number in range(30)]
    for name in names:
        resolver.answers[name] = [dropped]
    try:
        for name in names:   # (a run each: none has seen the resolver down)
            with pytest.raises(LookupTimedOut, match=rf"^host name {re.escape(name)} did not resolve within 0\.05 s"):
                fast_client(max_attempts=1, connect_timeout=0.05).get_json(f"http://{name}/doc")
        lookups = [thread for thread in threading.enumerate() if thread.name == "civicat-lookup"]
        assert len(lookups) <= _Lookups.AT_ONCE == 8
        assert len([name for name in names if resolver.asked[name]]) <= 8
    finally:
        dropped.set()


def test_names_queued_behind_a_slow_resolver_s_lookups_wait_their_turn_and_are_not_given_up(portal, resolver):
    """A resolver that answers every name, slowly (0.3 s a name), asked 40 names at once: 8 are
    looked up at a time and the rest wait for a place. A place freed by an answer is no silence
    of the resolver: a name waited for one within its connect timeout, was counted unanswered,
    and after two such waits (twice the connect timeout) given up for the run, its portal failed
    though the resolver answered it and every other. Now a name waits for its place in turn for
    as long as the resolver answers (it is silent only when none of the lookups under way ends)."""
    names = [f"queued{number}.portal.test" for number in range(40)]
    for name in names:
        resolver.answers[name] = [(0.3, "127.0.0.1")]
    port = portal.url.rsplit(":", 1)[1]
    client = fast_client(max_attempts=5, connect_timeout=0.6)
    with unbounded_wait_fails(client), concurrent.futures.ThreadPoolExecutor(len(names)) as threads:
        fetched = list(threads.map(lambda name: client.get_json(f"http://{name}:{port}/doc").data, names))
    assert fetched == [DOC] * len(names)
    assert (client.stats.requests, client.stats.retries) == (40, 0)   # each name looked up once, in its turn
    assert all(resolver.asked[name] == 1 for name in names)


# the stop's handler (harvester.stopping) runs in the main thread wherever it is, here with the lock of
# the lookups held (as when a request of the main thread's looks up a host name)
STOP_UNDER_THE_LOOKUPS_LOCK = """
import signal, time
from harvester.http import HttpClient
from harvester.http.resolver import _LOOKUPS
client = HttpClient()
signal.signal(signal.SIGALRM, lambda signum, frame: client.cancel())
with _LOOKUPS._lock:
    signal.setitimer(signal.ITIMER_REAL, 0.05)
    time.sleep(0.5)
print("cancelled")
"""


def test_a_stop_that_comes_while_its_thread_holds_the_lookups_lock_cancels_and_goes_on():
    """A stop wakes the lookups waiting for a place (HttpClient.cancel), under their lock. Its
    handler runs in the main thread between any two steps of it, one inside that lock too (the
    main thread's request looking up a name): a lock it could not take again left the main
    thread waiting for itself, and the thread that counts the signals waiting behind it in its
    own cancel, so a third Ctrl-C did not quit either (SIGKILL only)."""
    import subprocess
    import sys

    from tests.conftest import REPO

    ran = subprocess.run([sys.executable, "-c", STOP_UNDER_THE_LOOKUPS_LOCK], capture_output=True, text=True,
                         timeout=30, env={**os.environ, "PYTHONPATH": REPO})
    assert (ran.returncode, ran.stdout) == (0, "cancelled\n"), ran.stderr


def test_a_stop_drops_the_lookups_queued_behind_a_slow_resolver_s(portal, resolver):
    """20 names asked at once of a resolver that answers none yet: 8 looked up, 12 queued for a
    place. After Ctrl-C (the run's requests cancelled) each queued lookup still ran in its turn,
    as the ones under way ended, holding the stop for as long as the resolver took. The queued
    ones are dropped: their requests end Interrupted at once, their names never looked up."""
    answers = threading.Event()
    names = [f"stopped{number}.portal.test" for number in range(20)]
    for name in names:
        resolver.answers[name] = [(answers, "127.0.0.1")]
    port = portal.url.rsplit(":", 1)[1]
    client = fast_client(max_attempts=1, connect_timeout=60.0)
    threads = concurrent.futures.ThreadPoolExecutor(len(names))
    try:
        fetched = [threads.submit(client.get_json, f"http://{name}:{port}/doc") for name in names]
        while sum(resolver.asked[name] for name in names) < _Lookups.AT_ONCE:   # (8 under way, 12 queued)
            time.sleep(0.01)
        time.sleep(0.2)
        client.cancel()
        under_way = {name for name in names if resolver.asked[name]}
        queued = [future for name, future in zip(names, fetched) if name not in under_way]
        concurrent.futures.wait(queued, timeout=30)   # (the lookups under way still hang)
        assert len(queued) == len(names) - _Lookups.AT_ONCE and all(future.done() for future in queued)
        for future in queued:
            with pytest.raises(Interrupted, match=r"^the harvest was interrupted; host name stopped\d+\.portal\.test "
                                                  r"not looked up: http://"):
                future.result()
    finally:
        answers.set()
        threads.shutdown()
    assert {name for name in names if resolver.asked[name]} == under_way
