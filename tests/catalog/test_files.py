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


def test_buffers_are_written_whole_past_the_kernel_s_limit_and_after_a_write_cut_short(tmp_path, monkeypatch):
    """write_buffers hands its buffers to writev, at most IOV_MAX a call: a part of more lines than
    that, or a writev that took only some bytes (a signal, a full pipe), must still give the file
    every byte once, in order."""
    import os

    import catalog.files as files

    buffers = [b"line %d\t" % n * (n % 7) + b"\n" for n in range(2 * files._IOV_MAX + 5)]
    files.write_buffers(tmp_path / "many", buffers)
    assert (tmp_path / "many").read_bytes() == b"".join(buffers)

    calls, writev = [], os.writev

    def writev_cut_short(fd, pieces):   # takes at most 5 bytes a call, within a buffer or across two
        calls.append(len(pieces))
        whole = b"".join(bytes(piece) for piece in pieces)[:5]
        return writev(fd, [whole])

    monkeypatch.setattr(files.os, "writev", writev_cut_short)
    buffers = [b"abc", b"", b"defghij", b"k\n", b"", b"lmnopqrstuvwxyz\n"]
    files.write_buffers(tmp_path / "cut", buffers)
    assert (tmp_path / "cut").read_bytes() == b"".join(buffers)
    assert len(calls) == 6   # (29 bytes, 5 a call)
    files.write_buffers(tmp_path / "none", [])
    assert (tmp_path / "none").read_bytes() == b""


def test_a_writev_that_takes_nothing_fails_naming_the_file(tmp_path, monkeypatch):
    import catalog.files as files

    monkeypatch.setattr(files.os, "writev", lambda fd, pieces: 0)
    with pytest.raises(OSError) as failed:
        files.write_buffers(tmp_path / "stuck", [b"x\n"])
    assert failed.value.errno == errno.EIO and str(tmp_path / "stuck") in str(failed.value)
