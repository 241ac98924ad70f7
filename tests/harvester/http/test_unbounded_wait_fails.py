"""The tests' bound on a wait, unbounded_wait_fails (conftest): a wait it cuts fails that test alone.
Before session 36 the Interrupted of its cancel, a KeyboardInterrupt, ended the whole pytest session."""
import time

import pytest

from harvester.http import Interrupted
from tests.conftest import fast_client
from tests.harvester.http.conftest import accepting_and_never_answering, unbounded_wait_fails


@pytest.fixture
def unanswered():
    """A URL on 127.0.0.1 whose server reads the request and never answers."""
    with accepting_and_never_answering() as (server, _, _):
        yield f"http://127.0.0.1:{server.getsockname()[1]}/doc"


def test_a_wait_it_cuts_fails_the_test_saying_the_wait_was_not_bounded(unanswered):
    client = fast_client(timeout=300.0, max_attempts=1)   # (the headers waited for 5 minutes)
    with pytest.raises(pytest.fail.Exception) as failed:
        with unbounded_wait_fails(client, seconds=0.3):
            client.get_json(unanswered)
    assert str(failed.value) == ("the wait was not bounded: still waiting after 0.3 s (unbounded_wait_fails cancelled "
                                 "the client, which raised Interrupted)")
    assert isinstance(failed.value.__context__, Interrupted)   # (shown with the failure)


def test_a_wait_it_cuts_fails_the_test_even_when_the_test_caught_the_interrupted(unanswered):
    """A test that asserts on what a call raised (test_client's `outcome`) would pass an Interrupted
    it expected for its own reason, after the minute's wait: the cut is the failure."""
    client = fast_client(timeout=300.0, max_attempts=1)
    with pytest.raises(pytest.fail.Exception, match="the wait was not bounded"):
        with unbounded_wait_fails(client, seconds=0.3):
            with pytest.raises(Interrupted):
                client.get_json(unanswered)


def test_a_keyboard_interrupt_it_did_not_cause_goes_on_as_it_was():
    """A guard: a Ctrl-C of the run, or an Interrupted the test made itself, is not its to turn."""
    client = fast_client()
    with pytest.raises(Interrupted, match="the test's own"):
        with unbounded_wait_fails(client, seconds=60):
            raise Interrupted("the test's own")


def test_a_wait_that_ends_in_time_is_left_alone_and_the_cut_called_off(portal):
    client = fast_client()
    with unbounded_wait_fails(client, seconds=0.5):
        assert client.get_json(portal.url + "/doc").data["resultSetSize"] == 200
    time.sleep(1)
    assert not client.cancelled   # (its timer stopped as the wait ended)
    assert client.get_json(portal.url + "/doc").data["resultSetSize"] == 200
