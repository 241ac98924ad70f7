"""One catalogue a folder: the files beside a catalogue (FOLDER_FILES: the records pulls, their
staging, the HTTP validators) are named for its folder, not its file, so a second catalogue in the
same folder (`data/civicat.duckdb` and `data/other.duckdb`) would share them: its records pull of a
dataset replaced the first's without a word, and its writers' repairs could remove or record the
first's pulls under way. The folder says whose its files are in MARKER: the id the catalogue holds
(migration 0020, `catalogue_identity`) and its file's name when it claimed them. A writer
(harvester.cli.writer_lock, open_for_writing) and an export (which reads records/) refuse a
catalogue whose folder's files are another's, before any request or write.

By the catalogue's id, not its file's name: a catalogue renamed (`mv civicat.duckdb main.duckdb`)
or restored from a backup copy holds the same id, and still owns its folder (the marker then
names it anew). A copy beside the catalogue it copies holds the same id too, and would share its
files: refused while the file the marker names is there. A folder made before this (no marker, its
files there) is adopted by its one catalogue; two catalogues that already share one are both
refused, each told to move to a folder of its own."""
from __future__ import annotations

import json
import logging
import os
import uuid
from datetime import UTC, datetime
from pathlib import Path

MARKER = "civicat-folder.json"
FOLDER_FILES = ("http_cache", "records", ".records-staging")
MARKER_MAX_BYTES = 64 << 10   # civicat writes ~150 bytes; anything longer is not its marker
FOLDER_ENTRIES_READ = 10_000   # of the folder, looked through for other catalogues (the upgrade case)
DUCKDB_MAGIC = (8, b"DUCK")   # a DuckDB database file's first block: its magic at offset 8
UNKNOWN = "unknown"   # a catalogue file DuckDB cannot open now (a notebook writing it): checked once opened


class FolderOfAnother(Exception):
    """The files beside a catalogue belong to another catalogue (or are shared with one): the
    message names both and the fix."""


def catalogue_id(con) -> str | None:
    """The id the catalogue on `con` holds (migration 0020), or None before that migration."""
    import duckdb

    try:
        row = con.execute("SELECT id FROM catalogue_identity LIMIT 1").fetchone()
    except duckdb.CatalogException:
        return None
    return row[0] if row else None


def file_catalogue_id(db_path: Path) -> str | None:
    """catalogue_id of the DuckDB file at `db_path` opened read-only; None when there is no file or
    it holds none yet, UNKNOWN when DuckDB cannot open it now."""
    from catalog.versions import read_from_file

    return read_from_file(db_path, catalogue_id, unopened=UNKNOWN)


def _read_marker(folder: Path) -> dict | None:
    path = folder / MARKER
    try:
        with open(path, "rb") as f:
            data = f.read(MARKER_MAX_BYTES + 1)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise FolderOfAnother(f"{path} (which says whose the files beside the catalogue are) cannot be read: "
                              f"{exc.strerror or exc}") from None
    try:
        marker = json.loads(data) if len(data) <= MARKER_MAX_BYTES else None
    except ValueError:
        marker = None
    name = marker.get("catalogue") if isinstance(marker, dict) else None
    if not (isinstance(name, str) and isinstance(marker.get("catalogue_id"), str)
            and name == Path(name).name and name not in ("", ".", "..")):   # (a plain file name: never a path)
        raise FolderOfAnother(f"{path} is not civicat's record of whose the files beside it are (JSON with "
                              "`catalogue_id` and `catalogue`, a file name): put it back, or remove it if this "
                              "folder holds one catalogue alone (its next writer claims the folder)")
    return marker


def _shared_files(folder: Path) -> list[str]:
    return [name + "/" for name in FOLDER_FILES if (folder / name).exists()]


def _other_catalogues(db_path: Path) -> list[Path]:
    """The civicat catalogues in `db_path`'s folder other than it (its read copy excepted): DuckDB
    files (their magic read, nothing else opened) that a civicat writer has held (their lock file
    beside them: catalog.lock.kept_by_a_writer) and that are civicat's (_is_a_catalogue), or whose read
    copy beside them is a civicat catalogue (_copy_is_a_catalogue: the catalogue itself unopened, its
    `.lock` gone or not civicat's). Another program's DuckDB file is never opened: a look at it (a
    read-only open, for a moment) kept out its own program's writable open of that moment, and one that
    program was writing then was taken for a catalogue (DuckDB could not open it), the folder refused.
    A catalogue that has shared the folder's files has had a writer, whose lock file stays and whose
    read copy it published as it ended; one with neither (both removed, or the catalogue renamed
    without them) cannot be told from another program's database unopened: it is not counted, and the
    catalogue looking adopts the folder (that one's writers are then refused as another's, naming the
    fix: a folder of its own), but every such DuckDB file is named in a warning (_say_unseen; until
    session 44 nothing was said)."""
    from catalog.lock import kept_by_a_writer
    from catalog.read_copy import catalogue_of, read_copy_path

    found, unseen = [], []
    with os.scandir(db_path.parent) as entries:
        for count, entry in enumerate(entries):
            if count >= FOLDER_ENTRIES_READ:
                break
            path = Path(entry.path)
            if entry.name.startswith(".") or not entry.is_file() or path.name == db_path.name \
                    or catalogue_of(path) is not None or not _is_duckdb(path):
                continue
            held = kept_by_a_writer(path)
            if not (held or read_copy_path(path).is_file()):
                unseen.append(path)
            elif _is_a_catalogue(path) if held else _copy_is_a_catalogue(read_copy_path(path)):
                found.append(path)
    _say_unseen(db_path, sorted(unseen))
    return sorted(found)


_said_unseen: set[tuple[str, str]] = set()


def _say_unseen(db_path: Path, unseen: list[Path]) -> None:
    """A warning, once a process, naming the DuckDB files beside the catalogue that nothing of civicat's
    names (no writer's `.lock` record, no read copy): the folder's files are taken for this catalogue's
    alone, and one of them that is a catalogue that shared them would have its pulls taken for this one's."""
    for path in unseen:
        if (str(db_path), str(path)) in _said_unseen:
            continue
        _said_unseen.add((str(db_path), str(path)))
        logging.getLogger("civicat").warning(
            "%s is a DuckDB file beside %s with neither a civicat writer's lock file nor a read copy, so it is not "
            "opened to see whether it is a catalogue (another program's database would be kept from its writes "
            "for that moment): the files beside them (%s) are taken for %s's. If %s is a civicat catalogue that "
            "shared them, move it into a folder of its own now: %s's pulls and repairs may replace or remove its "
            "records pulls there, and its writers are refused once %s has claimed the folder", path, db_path.name,
            ", ".join(_shared_files(db_path.parent)), db_path.name, path.name, db_path.name, db_path.name)


def _is_duckdb(path: Path) -> bool:
    """Whether the file at `path` is a DuckDB database, by its magic alone (nothing opened in DuckDB)."""
    try:
        with open(path, "rb") as f:
            head = f.read(DUCKDB_MAGIC[0] + len(DUCKDB_MAGIC[1]))
    except OSError:
        return False
    return head[DUCKDB_MAGIC[0]:] == DUCKDB_MAGIC[1]


def _copy_is_a_catalogue(copy: Path) -> bool:
    """Whether the read copy `copy` (`<stem>.read<suffix>`, which every civicat writer publishes as it
    ends beside its catalogue) is a civicat catalogue: opened read-only, it and not the file it copies,
    which no civicat writer holds (its `.lock` gone or another's) and another program may be writing.
    A copy is only ever replaced whole (renamed into place), never written where it is."""
    from catalog.versions import not_a_catalogue, read_from_file

    return _is_duckdb(copy) and read_from_file(copy, lambda con: not_a_catalogue(con, copy) is None,
                                               unopened=False) is True


def _is_a_catalogue(path: Path) -> bool:
    """Whether the DuckDB file at `path` is civicat's, opened read-only for it under its writer lock
    (catalog.lock.held_for_a_look: a writer of it starting meanwhile waits, not refused as the file
    held); one that a civicat writer holds now is taken for one, unopened. A file DuckDB cannot open
    now (another process writing it) is taken for one too (file_not_a_catalogue: None)."""
    from catalog.lock import held_for_a_look
    from catalog.versions import file_not_a_catalogue

    with held_for_a_look(path) as alone:
        return alone is False or file_not_a_catalogue(path) is None


def _one_folder_each(db_path: Path) -> str:
    return (f"one folder per catalogue: give --db a folder of its own (e.g. --db "
            f"{db_path.parent / db_path.stem / db_path.name})")


def why_not_its_folder(db_path: Path, cid: str | None) -> str | None:
    """Why the files beside the catalogue at `db_path`, whose id is `cid` (None: not made yet, or
    made before migration 0020; UNKNOWN: not read), are not its own, or None when they are, or
    are no one's yet (its writer claims them: claim)."""
    db_path = Path(db_path).absolute()
    folder = db_path.parent
    marker = _read_marker(folder)
    shared = ", ".join(_shared_files(folder)) or "none made yet"
    if marker is not None:
        owner = folder / marker["catalogue"]
        if cid == UNKNOWN:
            return None   # (checked again once opened)
        if cid != marker["catalogue_id"]:
            gone = not owner.exists()
            return (f"{db_path} cannot use the files beside it in {folder} ({shared}): they belong to the catalogue "
                    f"{owner}{' (no longer there)' if gone else ''}, as {folder / MARKER} says, and two catalogues "
                    "in one folder replace each other's records pulls; "
                    + _one_folder_each(db_path)
                    + (f"; or, if {owner.name} is gone for good, remove {MARKER} and {shared} from {folder}"
                       if gone and _shared_files(folder) else
                       f"; or, if {owner.name} is gone for good, remove {MARKER} from {folder}" if gone else ""))
        if owner.name != db_path.name and owner.is_file() and file_catalogue_id(owner) in (cid, UNKNOWN):
            return (f"{db_path} and {owner} are copies of one catalogue in one folder ({folder}): the files beside "
                    f"them ({shared}) are {owner.name}'s, and a writer of the copy would replace its records pulls; "
                    f"remove the copy, or move it into a folder of its own")
        return None
    if not _shared_files(folder):
        return None
    others = _other_catalogues(db_path)
    if others:   # (a folder made before one catalogue a folder, two catalogues sharing it since)
        named = ", ".join(str(p) for p in others)
        return (f"{db_path} and {named} are catalogues in one folder ({folder}) that share the files beside them "
                f"({shared}): a records pull of one replaced the other's pull of the same dataset. Move every "
                "catalogue but one into a folder of its own (its next `harvest --records` pulls its records there "
                "anew); the one left then adopts the folder (a records pull of its that another replaced, its "
                "export names: pull it again with `civicat records ID --full`)")
    return None


def claim(db_path: Path, cid: str) -> None:
    """The files beside the catalogue at `db_path` (id `cid`, its writer open) recorded as its own:
    FolderOfAnother when they are another's (a catalogue that claimed them meanwhile included:
    the marker is made only where there is none). The marker names the file anew when the
    catalogue was renamed."""
    db_path = Path(db_path).absolute()
    why_not = why_not_its_folder(db_path, cid)
    if why_not:
        raise FolderOfAnother(why_not)
    marker_path = db_path.parent / MARKER
    marker = _read_marker(db_path.parent)
    if marker is not None and marker["catalogue"] == db_path.name:
        return
    written = json.dumps({"catalogue_id": cid, "catalogue": db_path.name,
                          "claimed_at": datetime.now(UTC).isoformat()}) + "\n"
    temporary = marker_path.with_name(f".{MARKER}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        temporary.write_text(written)
        if marker is None:
            try:   # (two writers of two new catalogues claiming at once: one wins)
                _made_only_where_none(marker_path, temporary, written)
            except FileExistsError:
                why_not = why_not_its_folder(db_path, cid)
                if why_not:
                    raise FolderOfAnother(why_not) from None
        else:   # (the same catalogue, renamed or restored under another name: the marker names it now)
            os.replace(temporary, marker_path)
    finally:
        temporary.unlink(missing_ok=True)


def _made_only_where_none(path: Path, temporary: Path, text: str) -> None:
    """`path` made holding `text` (written to `temporary`), FileExistsError where it is: linked,
    whole at once; made in place on a file system without hard links (exFAT, vfat: EPERM)."""
    try:
        os.link(temporary, path)
    except FileExistsError:
        raise
    except OSError:
        with open(path, "x") as f:
            f.write(text)


def check_reader(db_path: Path, con) -> None:
    """An export, which reads the records folders beside the catalogue: FolderOfAnother when the
    folder's marker is another catalogue's (its records pulls there are not this one's). No marker:
    a folder no writer has claimed yet is read as it is."""
    db_path = Path(db_path).absolute()
    marker = _read_marker(db_path.parent)
    if marker is not None and marker["catalogue_id"] != catalogue_id(con):
        raise FolderOfAnother(why_not_its_folder(db_path, None))
