"""The shared test helpers of tests/conftest.py that could end more than their test."""
import pytest

from harvester.http import Interrupted
from tests.conftest import fail_pull_after


class Source:
    def batches(self, resume):
        yield from ("a", "b", "c")


@pytest.mark.parametrize("error", [Interrupted("killed"), KeyboardInterrupt()])
def test_fail_pull_after_refuses_a_keyboard_interrupt_which_would_end_the_whole_session(error):
    source = Source()
    with pytest.raises(TypeError, match=rf"not {type(error).__name__} \(.*\): uncaught, it would end the whole pytest "
                                        "session"):
        fail_pull_after(source, 1, error)
    assert list(source.batches(None)) == ["a", "b", "c"]   # (left as it was)


def test_fail_pull_after_fails_the_pull_with_the_exception_given():
    source = Source()
    fail_pull_after(source, 2, LookupError("killed"))
    pulled = []
    with pytest.raises(LookupError, match="killed"):
        for batch in source.batches(None):
            pulled.append(batch)
    assert pulled == ["a", "b"]
