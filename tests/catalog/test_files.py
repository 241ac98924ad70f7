"""A write that fails names its file: the one that failed, once."""
import errno

import pytest

from catalog.files import writing
from catalog.records import write_json_atomic


def test_a_failed_write_inside_another_file_s_block_names_the_file_that_failed(tmp_path):
    """A records part's block closes the part and writes the pull's progress file: a progress file
    the full disk refused was reported as "could not write …/part-00000.parquet.tmp: could not write
    …/progress.json.tmp: …", the part (written whole) named first, as if it had failed."""
    part, progress = tmp_path / "part-00000.parquet.tmp", tmp_path / "progress.json"
    progress.with_name("progress.json.tmp").symlink_to("/dev/full")   # (a write there: ENOSPC, no file named)
    with pytest.raises(OSError) as failed, writing(part):
        write_json_atomic(progress, {"rows": 1})
    assert failed.value.errno == errno.ENOSPC
    assert str(failed.value) == f"[Errno {errno.ENOSPC}] could not write {tmp_path / 'progress.json.tmp'}: No space left on device"


def test_a_failed_write_names_its_file_and_keeps_its_errno(tmp_path):
    with pytest.raises(OSError) as failed, writing(tmp_path / "a.parquet"):
        raise OSError(errno.ENOSPC, "No space left on device")
    assert failed.value.errno == errno.ENOSPC
    assert str(failed.value) == f"[Errno {errno.ENOSPC}] could not write {tmp_path / 'a.parquet'}: No space left on device"
