"""tests.small_disk run by a user who may not mount: the test run by a pytest of its own in a user
namespace (root there, its tmpfs mounted), its outcome made the calling run's, failures and skips
with their words. Made to run here whoever runs the suite: in_user_namespace called directly."""
import os
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.small_disk import in_user_namespace, user_namespace_refused, uses_small_disk

REPO = str(Path(__file__).resolve().parents[1])

TESTS = f"""
import os, sys
sys.path.insert(0, {REPO!r})
import pytest
from tests.small_disk import fill, free, small_disk


def test_a_small_disk_mounts(tmp_path):
    with small_disk(tmp_path / "disk", 4 << 20) as disk:
        assert os.geteuid() == 0   # (root in its user namespace)
        fill(disk, 1 << 20)
        with pytest.raises(OSError) as full:
            (disk / "more").write_bytes(bytes(2 << 20))
        assert full.value.errno == 28


def test_fails():
    assert 1 + 1 == 3, "the child's own words"


def test_skips():
    pytest.skip("the child's reason")


def test_hangs():
    print("the child's last words", flush=True)
    import time
    time.sleep(600)
"""


@pytest.fixture
def project(tmp_path):
    if user_namespace_refused():
        pytest.skip(user_namespace_refused())
    (tmp_path / "test_child.py").write_text(textwrap.dedent(TESTS))
    return tmp_path


def item(project, name):
    return SimpleNamespace(nodeid=f"test_child.py::{name}", config=SimpleNamespace(rootpath=project))


def test_a_small_disk_test_passes_in_a_user_namespace(project):
    in_user_namespace(item(project, "test_a_small_disk_mounts"))   # (returns: it passed there)


def test_a_failure_in_the_user_namespace_fails_the_test_with_its_words(project):
    with pytest.raises(pytest.fail.Exception, match="the child's own words"):
        in_user_namespace(item(project, "test_fails"))


def test_a_skip_in_the_user_namespace_skips_the_test_with_its_reason(project):
    with pytest.raises(pytest.skip.Exception, match="in a user namespace: the child's reason"):
        in_user_namespace(item(project, "test_skips"))


def test_a_test_that_names_small_disk_is_found_and_one_that_does_not_is_not():
    def mounts():
        from tests.small_disk import small_disk
        return small_disk

    def does_not():
        return os.getcwd()

    assert uses_small_disk(mounts) and not uses_small_disk(does_not)


def test_a_hung_test_in_the_user_namespace_fails_the_test_saying_so(project, monkeypatch):
    """Session 41 (r41): a hung child ended in subprocess.TimeoutExpired's traceback."""
    import tests.small_disk

    monkeypatch.setattr(tests.small_disk, "USER_NAMESPACE_RUN_SECONDS", 8)
    with pytest.raises(pytest.fail.Exception, match="in a user namespace took over 8 s"):
        in_user_namespace(item(project, "test_hangs"))
