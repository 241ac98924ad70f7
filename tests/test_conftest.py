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



def test_the_suite_s_python_processes_keep_their_bytecode(tmp_path, monkeypatch):
    """Under PYTHONDONTWRITEBYTECODE each process the suite starts compiled civicat's modules again
    (compiled_code_kept): the variable is taken out of the environment the processes inherit, and a
    module a process imports leaves its bytecode for the next."""
    import os
    import subprocess
    import sys

    from tests.conftest import compiled_code_kept

    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")
    monkeypatch.delenv("PYTHONPYCACHEPREFIX", raising=False)
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    compiled_code_kept()
    assert "PYTHONDONTWRITEBYTECODE" not in os.environ and not sys.dont_write_bytecode
    (tmp_path / "a_module.py").write_text("ANSWER = 42\n")
    child = subprocess.run([sys.executable, "-c", "import a_module; print(a_module.ANSWER)"], cwd=tmp_path,
                           capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(tmp_path)})
    assert child.stdout == "42\n", child.stderr
    assert [path.name for path in (tmp_path / "__pycache__").iterdir()] == ["a_module.cpython-311.pyc".replace(
        "311", f"{sys.version_info.major}{sys.version_info.minor}")]
