"""`civicat export`: the unified catalogue as versioned Parquet files (SPEC "Parquet
export"), for portal front ends and analysts.

Layout of OUT: `manifest.json`, one file per table, harvested records under
`records/portal=<id>/dataset=<source_id>/part-*.parquet`. The export is written into a
temporary folder beside OUT, which becomes that export's own folder, and OUT a link to it
replaced in one step: a reader finds the previous complete export or the new one, never a
half-written one, and one that resolves OUT once reads one export, never two mixed. The columns and types of every
file are the contract of SCHEMA_VERSION (docs/export.md, pinned by a test): a change to
them is a new schema version.
"""
from __future__ import annotations

import errno
import fcntl
import glob
import hashlib
import json
import logging
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

import duckdb
import pyarrow.parquet as pq

from catalog.files import exchange, writing
from catalog.folder import catalogue_id, check_reader, file_catalogue_id, why_not_its_folder
from catalog.links import (COLUMN_TEXTS, DISTRIBUTION_LINKS, DISTRIBUTION_TEXTS, RECORD_LINKS, RECORD_TEXT_LISTS,
                           RECORD_TEXTS, WordsReplaced, exported_uids, maybe_secret_sql, named_as_exported, redacted,
                           redacted_text)
from catalog.lock import CatalogueBeingWritten, WriterLock, current_writer, describe_holder, pulls_records
from catalog.read_copy import (as_of, catalogue_of, catalogue_or_read_copy, has_wal, is_current, iso_utc, publish,
                               put_right, read_copy_path, read_log)
from catalog.records import RecordsLayout, link_or_copy
from catalog import uncut
from catalog.store import CatalogueReplaced, connect, migrate
from catalog.versions import file_not_a_catalogue

log = logging.getLogger("civicat.export")

SCHEMA_VERSION = "1.1"
GENERATOR = "civicat"
MANIFEST = "manifest.json"
VERSION = ".v-"   # an export's own folder beside OUT: `.OUT.v-<number>-<created_at>-<random>` (versions)
# what symlink(2) answers on a file system that makes no symbolic links (exFAT, vfat: EPERM)
NO_SYMLINKS = (errno.EPERM, errno.EOPNOTSUPP, errno.ENOSYS)
RECORDS = "records"
EXPORT_MEMORY = "512MB"

# table: (columns in file order, sort key) - the contract, not whatever the table holds
TABLES: dict[str, tuple[tuple[str, ...], str]] = {
    "datasets": (("uid", "portal_id", "city", "portal_kind", "source_id", "identifier", "title", "description",
                  "keywords", "themes", "publisher", "contact_name", "contact_email", "issued", "modified",
                  "accrual_periodicity", "license", "access_level", "landing_page", "spatial", "temporal_start",
                  "temporal_end", "asset_type", "parent_uid", "row_count", "first_seen", "last_seen",
                  "last_changed", "deleted_at", "missing_since", "raw_hash"), "uid"),
    "distributions": (("dataset_uid", "position", "title", "format", "media_type", "download_url", "access_url"),
                      "dataset_uid, position"),
    "columns": (("dataset_uid", "position", "name", "field_name", "type", "source_type", "description"),
                "dataset_uid, position"),
    "overlap_pairs": (("uid_a", "uid_b", "score", "title_score", "description_score", "keywords_score",
                       "columns_score", "values_score", "embedding_score", "concept_score", "shape_factor", "explanation",
                       "computed_at"), "uid_a, uid_b"),
    "overlap_groups": (("group_id", "uid", "label", "computed_at"), "group_id, uid"),
    "column_profiles": (("dataset_uid", "column_name", "type", "row_count", "null_count", "distinct_count",
                         "min_value", "max_value", "top_values", "profiled_at"), "dataset_uid, column_name"),
}


# the links exported with the value of a secret query parameter REDACTED (catalog.links): the catalogue keeps
# them as the portal published them
REDACTED_LINKS = {"datasets": RECORD_LINKS, "distributions": DISTRIBUTION_LINKS}
# the texts exported with the links they paste redacted (a description's `https://…?api_key=…`), and the lists of
# texts (keywords, themes), each of theirs
REDACTED_TEXTS = {"datasets": RECORD_TEXTS, "distributions": DISTRIBUTION_TEXTS, "columns": COLUMN_TEXTS}
REDACTED_TEXT_LISTS = {"datasets": RECORD_TEXT_LISTS}
# the columns naming a dataset by its uid, exported as exported_uids gives it (a source id holding a secret:
# a data.json's identifier, a URL, is its dataset's source id); the datasets' source_id with them
UID_COLUMNS = {"datasets": ("uid", "parent_uid"), "distributions": ("dataset_uid",), "columns": ("dataset_uid",),
               "overlap_pairs": ("uid_a", "uid_b"), "overlap_groups": ("uid",), "column_profiles": ("dataset_uid",)}
EXPORTED_UID = "exported_uid"   # (the SQL function of a export whose uids are redacted: _exported_uids_in_sql)
EXPORTED_TEXT = "exported_text"   # (and of a text naming uids, each as exported, its links redacted)
# the texts naming datasets by their uids: an overlap explanation ("but p:… is a boundary file", "but only p:…
# names …"), exported (and printed) with a uid holding a key whole until session 46, each uid as exported now
NAMING_UIDS = {"overlap_pairs": ("explanation",)}


class ExportRefused(Exception):
    pass


class RecordsChanged(Exception):
    """A records folder is not the pull the read copy describes: a records pull replaced it
    after the copy was published (it started while the export ran, or the copy is older than
    the folder), or it was changed by hand. The export is not published: it would mix two
    pulls. `uid`: the dataset's, as the export gives it (exported_uids: a key in its source id is
    not printed); `redacted`: it is not the catalogue's."""

    def __init__(self, message: str, uid: str, redacted: bool = False):
        super().__init__(message)
        self.uid, self.redacted = uid, redacted


@dataclass(frozen=True)
class Opened:
    """The catalogue an export reads: the catalogue itself, or its read copy while a writer
    holds it (`open_for_export`), as of `copy_written` (the time of the last write it holds, ns)."""
    con: duckdb.DuckDBPyConnection
    copy_written: int | None


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def is_export(folder: Path) -> bool:
    """A folder this command wrote (so it may be replaced), judged by its manifest."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(manifest, dict) and manifest.get("generator") == GENERATOR


def check_target(out: Path) -> None:
    """OUT is replaced whole: refuse anything but a missing folder, an empty one or an
    earlier export (`civicat export --out ~` must not delete a home directory)."""
    if not out.exists():
        return
    if not out.is_dir():
        raise ExportRefused(f"{out} is a file, not a folder")
    # a data.json alone is an earlier `--format data.json` export, which the new one keeps
    if any(entry.name != "data.json" or not entry.is_file() for entry in out.iterdir()) and not is_export(out):
        raise ExportRefused(f"{out} is not empty and holds no civicat {MANIFEST}: choose a new or empty folder "
                            "(an export replaces its folder whole)")


@contextmanager
def export_folder(out: Path) -> Iterator[None]:
    """The block writes OUT: one export into a folder at a time (a lock on the folder that
    holds it, released by the kernel when its holder dies, kill -9 included), what an export
    cut short left put right first (`repair_leftovers`), and logged."""
    out.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(out.parent, os.O_RDONLY | os.O_CLOEXEC)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError as exc:   # a file system without locks (some NFS mounts): another export's folders
            # cannot be told from leftovers, so none is touched
            log.warning("export: %s cannot be locked (%s): leftovers of exports cut short are not looked for",
                        out.parent, exc)
        else:
            for done in repair_leftovers(out):
                log.warning("export: %s", done)
        yield
    finally:
        os.close(fd)


def repair_leftovers(out: Path) -> list[str]:
    """What an export into OUT cut short (kill -9, power loss) left beside it or in it; returns
    what was done, one sentence each. Killed between the two renames of `_publish`, OUT is
    gone and the previous export, set aside, is its only copy: it is moved back. A previous
    export set aside while OUT is in place, an unfinished export, a link not put in place, a
    version folder OUT does not name (but the one before it) and a data.json not renamed into
    place are removed."""
    done: list[str] = []
    pattern = glob.escape(f".{out.name}")
    if out.is_symlink() and not out.exists():   # (its version folder deleted by hand)
        out.unlink()
        done.append(f"removed {out}: a link to an export folder that is gone")
    retired = sorted(out.parent.glob(f"{pattern}.retired-*"), key=lambda p: p.stat().st_mtime)
    if not out.exists():
        exports = [folder for folder in retired if is_export(folder)]
        if exports:
            os.rename(exports[-1], out)
            retired.remove(exports[-1])
            done.append(f"restored {out} from {exports[-1].name}: an export cut short between its two renames "
                        "had left the previous export aside")
    for link in sorted(out.parent.glob(f"{pattern}.link-*")):
        link.unlink()
        done.append(f"removed {link}: a link to an export not put in place, left by an export cut short")
    if is_export(out):   # (not a folder made since: the one set aside would be the only copy)
        for folder in retired:
            shutil.rmtree(folder)
            done.append(f"removed {folder}: the previous export, left by an export cut short")
    if out.is_dir():
        for unfinished in sorted(out.glob(".data.json.*.tmp")):
            unfinished.unlink()
            done.append(f"removed {unfinished}: an unfinished data.json, left by an export cut short")
    for unfinished in sorted(out.parent.glob(f"{pattern}.export-*")):
        shutil.rmtree(unfinished)
        done.append(f"removed {unfinished}: an unfinished export, left by an export cut short")
    for version in prune_versions(out):
        done.append(f"removed {version}: an export no link names, left by an export cut short")
    return done


def open_catalogue(db_path: str | Path) -> duckdb.DuckDBPyConnection:
    con = connect(db_path, read_only=True)
    con.execute(f"SET memory_limit = '{EXPORT_MEMORY}'")
    con.execute("SET enable_progress_bar = false")
    return con


def open_for_export(db_path: str | Path) -> Opened:
    """The catalogue's read copy, as every reader reads it: a harvest, a retire or an overlap run
    that starts meanwhile writes the catalogue beside it (an export that opened the catalogue
    itself kept them out: exit 2 when the nightly harvest and a front end's export collided). A
    copy not of the catalogue's last write (its writer stopped or killed, a records pull killed
    before it recorded what it published) is made current first when no writer runs
    (`_copy_made_current`). While a records pull runs, which replaces records folders as it
    goes, the export is refused (CatalogueBeingWritten, naming it): the copy beside its folders would mix
    two pulls; cron tries again after it. A copy that cannot be made current (the disk full, a
    notebook holding the catalogue) leaves the catalogue itself to open. The read copy given as
    the catalogue (`--db data/civicat.read.duckdb`) is read as it is, beside the same records
    folders: refused as well during a records pull of its catalogue, and its folders checked."""
    db_path = Path(db_path)
    catalogue = catalogue_of(db_path)
    if catalogue is not None:
        return _read_copy_itself(db_path, catalogue)
    _copy_made_current(db_path)
    writer = current_writer(db_path)
    why_not = _records_pull(writer)
    if why_not:
        raise CatalogueBeingWritten(f"{db_path} is being written by {describe_holder(writer)}: {why_not}")
    # (a writer as it starts, the copy not current yet: the copy all the same, or the writer's
    # open of the catalogue would find it held by the export)
    copy = read_copy_path(db_path)
    if (writer is not None and copy.exists()) or (is_current(db_path) and not has_wal(db_path)):
        try:
            written = os.stat(copy).st_mtime_ns   # (before the open: a copy published meanwhile is newer)
            con = open_catalogue(copy)
        except (OSError, duckdb.Error):   # (replaced or removed meanwhile: as below)
            pass
        else:
            if writer:
                read_log.warning("%s is being written by %s: exporting its read copy %s, the catalogue as of %s "
                                 "(when the last writer ended)", db_path, describe_holder(writer), copy, as_of(db_path))
            return Opened(con, written)
    return Opened(*catalogue_or_read_copy(db_path, open_catalogue, reading="exporting", refuse=_records_pull))


def _read_copy_itself(copy: Path, catalogue: Path) -> Opened:
    """The read copy `copy` of `catalogue`, given as the catalogue to export: as it is (nothing
    is put right or written beside it: its lock is no writer's), unless a records pull writes
    its catalogue (CatalogueBeingWritten), and as of its time, so that each records folder is checked to
    be the pull it describes (catalog.export._copy_records)."""
    writer = current_writer(catalogue)
    why_not = _records_pull(writer)
    if why_not:
        raise CatalogueBeingWritten(f"{copy} is the read copy of {catalogue}, which is being written by "
                            f"{describe_holder(writer)}: {why_not}")
    written = os.stat(copy).st_mtime_ns   # (before the open: a copy published meanwhile is newer, never older)
    return Opened(open_catalogue(copy), written)


def _copy_made_current(db_path: Path) -> None:
    """When the read copy is not of the catalogue's last write, or a records pull was killed
    before it recorded a folder it published, and no writer runs: what was left put right and
    the copy published (catalog.read_copy.put_right, publish), as a writer does as it starts,
    under the writer lock held `brief` (a writer starting meanwhile waits for it). A writer
    running puts them right itself as it started or ends. Not for a read copy given as the
    catalogue (_read_copy_itself): its lock is no writer's, and the records folders beside it are
    its catalogue's (a pull under way there would be put right from here, and the copy copied again)."""
    if is_current(db_path) and not has_wal(db_path) and not RecordsLayout.beside(db_path).unrecorded():
        return
    try:
        lock = WriterLock(db_path, brief=True)
        lock.acquire()
    except (CatalogueBeingWritten, OSError):   # (a writer; a catalogue's folder we may not write: read as it is)
        return
    refused = None
    try:   # (its steps shown: a writer waits for it as long as it gets on, catalog.lock.BRIEF_HOLD_SECONDS)
        # the file the checks below read (its stat before them): put right and copied, no other put at the path
        # since (until session 46 the path was, whatever file it held by then)
        try:
            checked = os.stat(db_path)
        except FileNotFoundError:   # (none: the export's own open says so)
            return
        # another program's DuckDB file: no copy of it made, nothing left beside it (its reader refuses it)
        refused = file_not_a_catalogue(db_path)
        if refused is not None:
            return
        if why_not_its_folder(db_path, file_catalogue_id(db_path)):
            return   # (the records beside it another catalogue's: never recorded as its own; the export refuses)
        put_right(db_path, lock.progressed, checked=checked)
        if not is_current(db_path):
            # (a copy that cannot be made is a warning: the catalogue itself is read; so is one of a file replaced)
            publish(db_path, lock.progressed, checked=checked)
    except CatalogueReplaced as exc:   # (the file at the path read as it is, by the export's own open)
        log.warning("export: the read copy of %s was not made current (%s: nothing written)", db_path, exc)
    except duckdb.Error as exc:   # (a notebook holding the file: the copy as it is, or the catalogue)
        log.warning("export: the read copy of %s was not made current (%s)", db_path, exc)
    finally:
        lock.release(remove=refused is not None)


def _records_pull(writer: dict | None) -> str | None:
    if writer is None or not pulls_records(writer):
        return None
    return ("a records pull replaces records folders as it runs, and an export of the catalogue as of the last "
            "writer (its read copy) beside them would mix two pulls: try again when it ends")


def export_parquet(db_path: str | Path, out: str | Path, *, opened: Opened | None = None) -> dict:
    """Write the Parquet export of the catalogue at `db_path` to `out` (read through `opened`,
    else the catalogue itself); returns the manifest."""
    out = Path(out).absolute()
    # the catalogue's records folder, even before a pull makes it: the pulls would write into
    # the export, and the next export, replacing it whole, delete them
    records = RecordsLayout.beside(db_path).root
    if out.resolve().is_relative_to(records):
        raise ExportRefused(f"{out} is the records folder of the catalogue ({records}) or inside it: choose "
                            "another folder (an export replaces its folder whole)")
    with export_folder(out):
        check_target(out)
        return _export_parquet(db_path, out, opened)


def _export_parquet(db_path: str | Path, out: Path, opened: Opened | None) -> dict:
    staging = out.parent / f".{out.name}.export-{uuid.uuid4().hex[:12]}"
    staging.mkdir()
    try:
        con = opened.con if opened else open_catalogue(db_path)
        try:
            existing = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
            uids = exported_uids(con) if "datasets" in existing else {}
            with _exported_uids_in_sql(con, uids):
                files = [_write_table(con, staging, table, existing, bool(uids)) for table in TABLES]
            pulls = _pulls(con, existing)
            if pulls:   # (the records beside it another catalogue's: its own replaced, or never there)
                check_reader(db_path, con)
            # the read copy keeps no writer out: a records pull that started since may publish a
            # dataset's folder as its parts are linked, so each folder is checked to be the pull the
            # copy describes (the parts, the profiles and the manifest of one pull). The catalogue
            # itself, kept open meanwhile, admits no writer beside it
            files += _copy_records(RecordsLayout.beside(db_path, catalogue_id(con)), staging, pulls,
                                   opened and opened.copy_written, uids)
        finally:
            if opened is None:
                con.close()
        manifest = {
            "generator": GENERATOR,
            "schema_version": SCHEMA_VERSION,
            "created_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            "row_counts": {table: next(f["rows"] for f in files if f["path"] == f"{table}.parquet") for table in TABLES},
            # the datasets whose parts are in the export: a pull whose folder is gone has none
            "records": {"datasets": len({f["path"].rsplit("/", 1)[0] for f in files if f["path"].startswith(RECORDS)}),
                        "rows": sum(f["rows"] for f in files if f["path"].startswith(RECORDS))},
            "files": files,
        }
        with writing(staging / MANIFEST):
            (staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        _publish(staging, out, manifest["created_at"])
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return manifest


# an unchanged dataset's row is not rewritten by a harvest (issue 7): the last time its
# portal's listing named it is that listing's time, kept in portal_listings
SOURCES = {"datasets": """(SELECT * REPLACE (CASE WHEN d.deleted_at IS NULL AND d.missing_since IS NULL
                                                  THEN greatest(d.last_seen, coalesce(l.listed_at, d.last_seen))
                                                  ELSE d.last_seen END AS last_seen)
                           FROM datasets d LEFT JOIN portal_listings l USING (portal_id))"""}


def _write_table(con: duckdb.DuckDBPyConnection, folder: Path, table: str, existing: set[str],
                 uids_redacted: bool = False) -> dict:
    """One table as one Parquet file, sorted by its key; a table that a catalogue has not
    made yet (no overlap run) is written empty with its contract's columns. `uids_redacted`: its
    uids as exported_uids gives them (_exported_uids_in_sql)."""
    columns, order = TABLES[table]
    names = ", ".join(_exported_column(con, table, c, uids_redacted) for c in columns)  # constants of this module
    limit = "" if table in existing else " LIMIT 0"
    source = _source(con, table, existing)
    path = folder / f"{table}.parquet"
    con.execute(f"COPY (SELECT {names} FROM {source} ORDER BY {order}{limit}) TO $path "
                "(FORMAT parquet, COMPRESSION zstd)", {"path": str(path)})
    return _file_entry(folder, path)


def _exported_column(con: duckdb.DuckDBPyConnection, table: str, column: str, uids_redacted: bool) -> str:
    """The SQL of `column` of `table` as exported: a link's or a text's secrets REDACTED, a uid as
    exported_uids gives it (`uids_redacted`), else as it is."""
    if column in REDACTED_LINKS.get(table, ()):
        return _exported(con, column)
    if uids_redacted and column in NAMING_UIDS.get(table, ()):
        return f'CASE WHEN {maybe_secret_sql(column, text=True)} THEN {EXPORTED_TEXT}("{column}") ELSE "{column}" END AS "{column}"'
    if column in REDACTED_TEXTS.get(table, ()):
        return _exported(con, column, text=True)
    if column in REDACTED_TEXT_LISTS.get(table, ()):
        return _exported(con, column, texts=True)
    if uids_redacted and column in UID_COLUMNS.get(table, ()):
        return f'{EXPORTED_UID}("{column}") AS "{column}"'
    if uids_redacted and (table, column) == ("datasets", "source_id"):   # (the uid is `portal_id:source_id`)
        return f'substr({EXPORTED_UID}("uid"), length("portal_id") + 2) AS "source_id"'
    return f'"{column}"'


def _exported(con: duckdb.DuckDBPyConnection, column: str, text: bool = False, texts: bool = False) -> str:
    """The SQL of a link `column` as exported (`text`: of a text, its links'; `texts`: of a list of texts, each
    one's): a secret's value REDACTED (catalog.links.redacted, redacted_text, called for the values that may
    hold one)."""
    function, redact = ("redacted_text", redacted_text) if text or texts else ("redacted_link", redacted)
    if not con.execute("SELECT count(*) FROM duckdb_functions() WHERE function_name = ?", [function]).fetchone()[0]:
        con.create_function(function, redact, ["VARCHAR"], "VARCHAR")   # (once a connection)
    value = f"list_transform(\"{column}\", lambda k: {function}(k))" if texts else f"{function}(\"{column}\")"
    return f"CASE WHEN {maybe_secret_sql(column, text, texts)} THEN {value} ELSE \"{column}\" END AS \"{column}\""


@contextmanager
def _exported_uids_in_sql(con: duckdb.DuckDBPyConnection, uids: dict[str, str]) -> Iterator[None]:
    """EXPORTED_UID(uid) in `con`'s SQL, `uids`' exported uid of a uid (the uid itself if it has
    none), while the block runs; nothing where `uids` is empty (a catalogue's usual case)."""
    if not uids:
        yield
        return
    words = WordsReplaced(uids)
    con.create_function(EXPORTED_UID, lambda uid: uids.get(uid, uid), ["VARCHAR"], "VARCHAR")
    con.create_function(EXPORTED_TEXT, lambda text: named_as_exported(text, words), ["VARCHAR"], "VARCHAR")
    try:
        yield
    finally:
        con.remove_function(EXPORTED_UID)
        con.remove_function(EXPORTED_TEXT)


def _source(con: duckdb.DuckDBPyConnection, table: str, existing: set[str]) -> str:
    """What a table's file is read from: the table (through SOURCES), with the columns of
    the contract that an older catalogue lacks as typed nulls (it is opened read-only, so
    it cannot be migrated)."""
    if table not in existing:
        return _empty_source(table)
    present = {name for (name,) in con.execute("SELECT column_name FROM duckdb_columns() WHERE table_name = ?",
                                               [table]).fetchall()}
    base = SOURCES[table] if table in SOURCES and "missing_since" in present and "portal_listings" in existing \
        else table
    absent = [(name, sql_type) for name, sql_type in _contract_types(table) if name not in present]
    if not absent:
        return base
    nulls = ", ".join(f'NULL::{sql_type} AS "{name}"' for name, sql_type in absent)
    return f"(SELECT *, {nulls} FROM {base})"


def _contract_types(table: str) -> list[tuple[str, str]]:
    """The table's columns and types as the migrations define them (names are constants)."""
    with uncut.connect() as scratch:   # (held: a stop lets its few statements end, see catalog.uncut)
        migrate(scratch)
        return [(name, sql_type) for name, sql_type, *_ in scratch.execute(f"DESCRIBE {table}").fetchall()]


def _empty_source(table: str) -> str:
    """The table as the migrations define it, for a catalogue that does not have it yet."""
    return "(SELECT " + ", ".join(f'NULL::{sql_type} AS "{name}"' for name, sql_type in _contract_types(table)) + ")"


def _file_entry(folder: Path, path: Path) -> dict:
    relative = path.relative_to(folder).as_posix()
    # `url`: the path as a relative URL. A records folder's name holds the percent-encoding of an
    # id (`dataset=a%20b`), which a web server decodes once: a front end that fetched `path` as
    # written got a 404 (its `%` must be sent as `%25`)
    return {"path": relative, "url": quote(relative, safe="/="), "rows": pq.read_metadata(path).num_rows,
            "bytes": path.stat().st_size, "sha256": sha256_of(path)}


def _pulls(con: duckdb.DuckDBPyConnection, existing: set[str]) -> list[tuple[str, str, int, int | None]]:
    """Each pulled dataset: its ids, rows and bytes (None: a table from before 0004 had them)."""
    if "record_pulls" not in existing:
        return []
    has_bytes = con.execute("SELECT count(*) FROM duckdb_columns() WHERE table_name = 'record_pulls' "
                            "AND column_name = 'bytes'").fetchone()[0]
    return con.execute(f"SELECT portal_id, source_id, row_count, {'bytes' if has_bytes else 'NULL'} "
                       "FROM record_pulls ORDER BY portal_id, source_id").fetchall()


def _copy_records(layout: RecordsLayout, staging: Path, pulls: list[tuple[str, str, int, int | None]],
                  copy_written: int | None = None, uids: dict[str, str] | None = None) -> list[dict]:
    """Each pulled dataset's parts, into the same Hive layout under `records/`. Paths are
    rebuilt from the ids through the records layout (sanitised, checked to stay inside),
    never taken from a stored path. Hard links where the file system allows: a pull
    replaces a folder by renaming, never writes into a published part. `copy_written`: the
    pulls are the read copy's, as of that time (ns): the parts linked must be the pull it
    describes (else RecordsChanged), their rows and bytes, and their folder published before
    it. Rows and bytes alone do not tell two pulls apart (a value edited in place may keep
    the bytes), but a folder published since the copy is another pull: a pull publishes a
    folder made as it publishes (or as it wrote it), and the catalogue's last write, the
    copy's time, comes after every publish of the pulls it records. `uids`: the exported uid of
    each dataset whose uid is redacted (exported_uids), its folder named by it."""
    checked = copy_written is not None
    target = RecordsLayout(staging / RECORDS)
    entries = []
    for portal_id, source_id, rows, size in pulls:
        source = layout.folder(portal_id, source_id)
        parts = sorted(source.glob("part-*.parquet"))
        exported = (uids or {}).get(f"{portal_id}:{source_id}")
        # (named in a warning or an error as the export names it: a log is published too, and a key in a
        # source id is in its folder's name; the catalogue's own uid is the datasets row of its source id)
        named, folder = (exported, f"its folder in {layout.root}") if exported else (f"{portal_id}:{source_id}", source)
        if not parts:
            if rows:   # its folder removed by hand: the export goes on without it, saying so
                log.warning("export: records of %s left out: record_pulls lists %d rows but %s holds no part "
                            "(pull them again: civicat records %s)", named, rows, folder,
                            "with its uid, its source id's key not printed here" if exported else named)
            continue
        destination = target.folder(portal_id, exported.removeprefix(f"{portal_id}:") if exported else source_id)
        destination.mkdir(parents=True, exist_ok=True)
        try:
            linked = [_link_part(part, destination / part.name, staging) for part in parts]
        except FileNotFoundError:
            if not checked:
                raise
            linked = None   # (its folder replaced as its parts were linked)
        # (the folder's time looked at once its parts are linked: replaced before or meanwhile, it is the new one's)
        mismatch = checked and _mismatch(linked, rows, size, _modified(source), copy_written)
        if mismatch:
            raise RecordsChanged(f"the records of {named} in {folder} are not the pull the read copy describes "
                                 f"({rows} rows, {size} bytes): {mismatch}", named, redacted=bool(exported))
        entries += linked
    return entries


def _mismatch(linked: list[dict] | None, rows: int, size: int | None, modified: int, copy_written: int) -> str | None:
    """What of a records folder's parts (`linked`, None: they went as they were linked) is not
    the pull record_pulls gives (`rows`, `size`) as of the read copy's time, in words; None: it is."""
    if linked is None:
        return "its parts were replaced as they were linked"
    found = [f"{what} {sum(e[what] for e in linked)}" for what, expected in (("rows", rows), ("bytes", size))
             if expected is not None and sum(e[what] for e in linked) != expected]
    if found:
        return f"its parts hold {' and '.join(found)}"
    if modified > copy_written:
        when = "as it was linked" if modified == _BEING_REPLACED else f"at {iso_utc(modified)}"
        return f"the folder was changed {when}, after the read copy's time ({iso_utc(copy_written)})"
    return None


def records_pull_running(db_path: str | Path) -> bool:
    """Whether a records pull holds the catalogue at `db_path` (that of the read copy given as one)."""
    writer = current_writer(catalogue_of(db_path) or db_path)
    return writer is not None and pulls_records(writer)


def copy_published_since(db_path: str | Path, copy_written: int | None) -> bool:
    """Whether a writer published the read copy of the catalogue at `db_path` (the read copy
    itself, given as one) since the copy of `copy_written` an export read: one that ended as the
    export ran (a records pull that replaced a folder then is described by the copy now)."""
    copy = Path(db_path) if catalogue_of(db_path) is not None else read_copy_path(db_path)
    try:
        return copy_written is not None and os.stat(copy).st_mtime_ns != copy_written
    except FileNotFoundError:
        return False


def _modified(folder: Path) -> int:
    try:
        return folder.stat().st_mtime_ns
    except FileNotFoundError:   # (being replaced, where folders are not swapped in one step)
        return _BEING_REPLACED


_BEING_REPLACED = 2**63


def _link_part(part: Path, copy: Path, staging: Path) -> dict:
    try:
        os.link(part, copy)
    except OSError:   # (a part gone: the copy's FileNotFoundError too)
        with writing(copy):
            shutil.copy2(part, copy)
    return _file_entry(staging, copy)


def _publish(staging: Path, out: Path, created_at: str) -> None:
    """Put the finished export in place: it becomes a version folder of its own beside OUT
    (`.OUT.v-<created_at>-…`) and OUT a symbolic link naming it, replaced in one step (a
    rename). A reader that resolves OUT once reads one export whole, never two mixed (its
    files were swapped into OUT itself: a reader of the manifest then the files it lists could
    get some of each), and its folder stays until the export after next lands (`prune_versions`).
    OUT as a folder of its own (an export before versions, or a `--format data.json` one) is
    swapped with the link in one step where the system allows (Linux), two renames elsewhere.
    The data.json of an earlier export in OUT is kept (it is written on its own)."""
    kept = out / "data.json"
    if kept.is_file() and not (staging / "data.json").exists():
        link_or_copy(kept, staging / "data.json")   # (OUT keeps its own until the swap)
    stamp = datetime.fromisoformat(created_at).strftime("%Y%m%dT%H%M%S%fZ")
    number = max((version_number(v) for v in versions(out)), default=0) + 1
    version = out.parent / f".{out.name}{VERSION}{number:06d}-{stamp}-{uuid.uuid4().hex[:8]}"
    os.rename(staging, version)   # (killed after this, the next export removes it: no link names it)
    link = out.parent / f".{out.name}.link-{uuid.uuid4().hex[:12]}"
    try:
        os.symlink(version.name, link)   # (relative: the folder that holds both can move)
    except OSError as exc:
        if exc.errno not in NO_SYMLINKS:
            raise
        # exFAT, vfat, some FUSE and SMB mounts make none: the export swapped into OUT itself
        log.warning("export: the file system of %s makes no symbolic links (%s): the export is put in its place "
                    "whole, and a reader of several files may get some of two exports (docs/export.md)", out, exc)
        link = version
    if out.is_symlink() or not out.exists():
        os.rename(link, out)
    else:   # OUT a folder of its own
        retired = out.parent / f".{out.name}.retired-{uuid.uuid4().hex[:12]}"
        if exchange(link, out):
            os.rename(link, retired)   # (the previous export; killed before this, repair_leftovers removes it)
        else:   # (OUT missing between the two: killed there, repair_leftovers puts the previous one back)
            os.rename(out, retired)
            os.rename(link, out)
        shutil.rmtree(retired, ignore_errors=True)
    prune_versions(out)


def versions(out: Path) -> list[Path]:
    """The version folders of OUT's exports, oldest first: by their number, which each export
    takes one above the highest beside OUT. By their names' time they were ordered by the clock,
    which can step back (NTP, a VM restored): an export after a step back more than the time between
    two exports took the one before it for older than the previous one, and pruned the folder a
    reader had just resolved."""
    return sorted(out.parent.glob(f"{glob.escape('.' + out.name)}{VERSION}*"), key=lambda v: (version_number(v), v.name))


def version_number(version: Path) -> int:
    """A version folder's number; 0 for one an export before session 30 named by its time alone
    (`.OUT.v-<created_at>-…`): older than every numbered one."""
    number = version.name.rpartition(VERSION)[2].split("-", 1)[0]
    return int(number) if number.isdigit() else 0   # (a time, `20261205T230539123157Z`: no number)


def stale_versions(out: Path) -> list[Path]:
    """The version folders beside OUT but the one OUT names and the one before it (a reader
    that resolved OUT before the last export landed reads it to its end). A version newer than
    OUT's is an export killed before its link was put in place."""
    current = out.resolve() if out.is_symlink() else None
    every = versions(out)
    older = every[:every.index(current)] if current in every else []
    keep = {current, older[-1] if older else None}
    return [v for v in every if v not in keep]


def prune_versions(out: Path) -> list[Path]:
    """Remove `stale_versions(out)`; returns them."""
    removed = stale_versions(out)
    for folder in removed:
        shutil.rmtree(folder, ignore_errors=True)
    return removed
