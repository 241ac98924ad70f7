"""Harvested records on disk, and what the catalogue knows of them.

Layout: `<records root>/portal=<id>/dataset=<source_id>/part-NNNNN.parquet` (Hive style;
past 100,000 parts, one more digit per tenfold for all of them: `part_name`),
the records root being `records/` beside the DuckDB file. A pull writes into its own
staging folder (`.records-staging/` beside the root, outside any glob over the root) and
the finished folder replaces the published one whole, in one step where the system swaps two
folders (`RecordsLayout.publish`): a reader sees the previous complete dataset or the new
complete one, never a partial one, and never none.

Names from portals are percent-encoded before they reach a path (`/`, `..`, NUL and
everything outside `[A-Za-z0-9_.-]`), and every path is checked to stay inside the root; a
source id holding a secret names its folder without it (RecordsLayout.segment).
"""
from __future__ import annotations

import errno
import hashlib
import hmac
import json
import os
import re
import shutil
import threading
import logging
import uuid
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import TypeVar
from datetime import datetime
from pathlib import Path

from catalog.files import exchange, sync, writing
from catalog.scratch import ScratchFolder
from catalog.stamps import replace_keeping_stamps
from catalog.lazy import LazyModule
from catalog.transactions import rollback
from catalog import uncut

log = logging.getLogger("civicat.records")
T = TypeVar("T")
duckdb = LazyModule("duckdb")  # imported on first use: the catalogue's mapping workers import this module
pa = LazyModule("pyarrow")

SAFE = re.compile(r"[A-Za-z0-9_.-]")
MAX_SEGMENT = 120
KEYED_DIGEST = 20   # hex digits naming a keyed source id's folder apart (safe_segment's own hash has 16)
KEY_MARKS = "=@%#"   # what a source id holding a key holds, whatever the rules redacting it (_named_otherwise)
TOP_VALUES = 50         # as many as the overlap value signal reads per column
LOW_CARDINALITY = 500  # text columns with at most this many distinct values get top values
PROFILE_MEMORY = "128MB"
# a scan that does not fit its memory is run once more on one thread with this: each DuckDB
# thread holds a row group of the Parquet it reads, bounded by bytes since session 24
# (harvester.records.ROW_GROUP_BYTES; before, 131,072 rows whatever their width: 1,000,000 rows
# of 30 distinct 16-character texts needed 512 MB), and some buffers for each column it reads
# (DuckDB's merge of 1,000 text columns needed 541 MB; the merge is Arrow's since session 26:
# harvester.records_merge, docs/records.md)
SCAN_MEMORY_RETRY = "1GB"
PROFILE_COLUMNS = 250   # columns profiled by one scan
STATISTICS_AT_ONCE = 4096   # column chunks' statistics fetched from DuckDB at once


PART_DIGITS = 5   # part-00000.parquet: the width of part names up to 100,000 parts


def part_name(number: int, count: int = 0) -> str:
    """The name of part `number` in a folder of `count` parts: its number zero-padded to one
    width for the whole folder, PART_DIGITS digits up to 10**PART_DIGITS parts and one more
    per tenfold beyond, so that the names sort as the numbers for any count (DuckDB and front
    ends read a folder's parts in name order). Without `count`: at least PART_DIGITS digits."""
    width = max(PART_DIGITS, len(str(max(count - 1, 0))))
    return f"part-{number:0{width}d}.parquet"


def part_number(path: Path | str) -> int:
    """The number in a part's name (`part-00042.parquet` → 42)."""
    return int(Path(path).name.removeprefix("part-").split(".")[0])


def name_in_order(folder: Path, count: int) -> None:
    """Rename the `count` parts of `folder`, named `part_name(number)`, to names of one width
    (`part_name(number, count)`): past 10**PART_DIGITS parts, `part-100000` sorted between
    `part-10000` and `part-10001`."""
    for number in range(count):
        short, wide = part_name(number), part_name(number, count)
        if short != wide:
            os.rename(folder / short, folder / wide)


# os.link's refusals on a file system without hard links (exFAT, vfat: EPERM; some FUSE and
# network mounts: EOPNOTSUPP, ENOSYS) or for a file at its link limit (EMLINK)
LINKS_REFUSED = (errno.EPERM, errno.EOPNOTSUPP, errno.ENOSYS, errno.EMLINK)


def link_or_copy(source: Path, target: Path) -> None:
    """Hard-link `source` as `target`; a copy (its bytes synced) where the file system refuses
    the link. A copy, not a rename: the caller's `source` may be needed again (a resume)."""
    try:
        os.link(source, target)
    except OSError as exc:
        if exc.errno not in LINKS_REFUSED:
            raise
        with writing(target):
            shutil.copyfile(source, target)
            sync(target)


def _linked(folder: Path, copy: Path) -> bool:
    """Hard-link every file of `folder` (a pull's folder holds files only) into `copy`; False
    where the file system refuses the links (`copy` then holds some of them)."""
    try:
        for part in sorted(folder.iterdir()):
            os.link(part, copy / part.name)
    except OSError as exc:
        if exc.errno in LINKS_REFUSED:
            return False
        raise
    return True


class UnsafePath(ValueError):
    pass


def _encoded(character: str) -> str:
    return character if SAFE.match(character) else "".join(f"%{b:02X}" for b in character.encode("utf-8",
                                                                                               "surrogatepass"))


def safe_segment(name: str) -> str:
    """A portal's id as one path segment: percent-encoded like Hive partition values, no
    leading dot (no `..`, no hidden folder), long names cut and suffixed with a hash."""
    if not name:
        raise UnsafePath("empty name")
    encoded = "".join(map(_encoded, name))
    if encoded.startswith("."):
        encoded = "%2E" + encoded[1:]
    if len(encoded) > MAX_SEGMENT:
        encoded = f"{encoded[:MAX_SEGMENT - 17]}~{hashlib.sha256(name.encode('utf-8', 'surrogatepass')).hexdigest()[:16]}"
    return encoded


def quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


RETIRED = "retired-"   # a published folder set aside while its replacement moves in
# a copy of the new folder made to swap in (then, swapped, the previous folder): never a
# dataset's only copy, as the pull stays staged until the swap is done
SWAPPING = "swapping-"
# what a publish is to record in record_pulls, written before its swap and removed once recorded
# (`intend_record`): a pull killed between the two is recorded by the next writer's start
RECORDING = "recording-"
_PUBLISHING = threading.Lock()   # portals pull in threads: a repair never runs inside a publish


def _remove_empty(*folders: Path) -> None:
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:   # not empty (or gone): kept
            pass


class RecordsLayout:
    """`key`: the catalogue's id (catalog.folder.catalogue_id), which names the folder of a source id holding
    a secret (`keyed_segment`); None (a catalogue before migration 0020, an export's folders, named by uids
    already redacted): every folder named by its id, as before session 46."""

    def __init__(self, root: str | Path, key: str | None = None):
        self.root = Path(root).resolve()
        self.staging_root = self.root.parent / f".{self.root.name}-staging"
        self.key = key

    @classmethod
    def beside(cls, db_path: str | Path, key: str | None = None) -> "RecordsLayout":
        return cls(Path(db_path).resolve().parent / "records", key)

    def relative(self, portal_id: str, source_id: str) -> str:
        return f"portal={safe_segment(portal_id)}/dataset={self.segment(source_id)}"

    def segment(self, source_id: str) -> str:
        """The dataset's folder name: its source id made safe, or for one holding a secret (a data.json
        identifier's `?token=…`), that id redacted as the exports give it and a keyed digest of the id:
        until session 46 the folder's name held the key, and so did every listing of the folder (`ls`,
        `du`, a backup's index). The digest keeps apart two ids differing only in their key; keyed with
        the catalogue's id, so that a name is no test of a guessed key to whoever has not the catalogue
        (which holds the key itself)."""
        from catalog.links import redacted

        shown = redacted(source_id) if self.key is not None and source_id else source_id
        if shown == source_id:
            return safe_segment(source_id)
        return f"{safe_segment(shown)[:MAX_SEGMENT - KEYED_DIGEST - 1]}~{self._digest(source_id)}"

    def _digest(self, source_id: str) -> str:
        """The keyed digest that ends the folder name of a source id holding a secret (`segment`): of the id
        itself, whatever its redacted form."""
        return hmac.new(self.key.encode(), source_id.encode("utf-8", "surrogatepass"),
                        hashlib.sha256).hexdigest()[:KEYED_DIGEST]

    def _named_otherwise(self, base: Path, portal_id: str, source_id: str) -> list[Path]:
        """The dataset's folders under `base` named otherwise than `relative` names it now: as before session 46
        (the key in the name), or by the id as another civicat's rules redacted it. Redacting changes as secrets
        are found in more places (session 45 ran a query key through its `#`): a folder named by the id as one
        civicat redacted it is named otherwise by the next, and only its digest, of the id itself, is the same
        (until r46 such a folder was not found: an export left out its records, the next pull read them all
        again and published them beside it, and it stayed there)."""
        if self.key is None or not source_id:
            return []
        now = self._inside(base, self.relative(portal_id, source_id))
        found = [self._inside(base, self.relative_before(portal_id, source_id))]
        # (a digest is hex: no character a glob reads. Looked for only where an id may hold a key under any rules,
        # a value after '=', a password before '@', an escape: one listing of the portal's folder a missing dataset)
        if now.parent.is_dir() and any(c in source_id for c in KEY_MARKS):
            found += sorted(now.parent.glob(f"dataset=*~{self._digest(source_id)}"))
        return [folder for folder in found if folder != now and folder.is_dir()]

    def relative_before(self, portal_id: str, source_id: str) -> str:
        """The dataset's folder as named before session 46 (a keyed source id's: with its key)."""
        return f"portal={safe_segment(portal_id)}/dataset={safe_segment(source_id)}"

    def _inside(self, base: Path, relative: str) -> Path:
        path = (base / relative).resolve()
        if base.resolve() not in path.parents:
            raise UnsafePath(f"{relative!r} escapes {base}")
        return path

    def folder(self, portal_id: str, source_id: str) -> Path:
        """The dataset's published folder; for a keyed source id whose folder is still named as before
        session 46 (its key in its name: renamed at the next records pull, `rename_keyed`), that one."""
        folder = self._inside(self.root, self.relative(portal_id, source_id))
        if self.key is not None and not folder.exists():
            otherwise = self._named_otherwise(self.root, portal_id, source_id)
            if otherwise:   # (a name before this civicat's, renamed at the next records pull: rename_keyed)
                return otherwise[0]
        return folder

    def where(self, portal_id: str, source_id: str) -> str:
        """The dataset's published folder relative to the root (record_pulls.path)."""
        return self.folder(portal_id, source_id).relative_to(self.root).as_posix()

    def rename_keyed(self, keyed: list[tuple[str, str]]) -> list[tuple[str, str]]:
        """Each folder (published or staged) of `keyed` (portal and source ids holding a secret) still named
        as before session 46, its key in its name, or by its id as another civicat redacted it (_named_otherwise),
        renamed to the name `segment` gives it now: one rename each, the folder whole (a staged pull resumes
        from its parts). One of both names (not made by
        civicat: a folder copied back by hand) is left alone, said so. Returns the datasets whose published
        folder was renamed."""
        if self.key is None:
            return []
        renamed = []
        with _PUBLISHING:
            for portal_id, source_id in keyed:
                for base in (self.root, self.staging_root):
                    new = self._inside(base, self.relative(portal_id, source_id))
                    for old in self._named_otherwise(base, portal_id, source_id):
                        if new.exists():   # (the old name not printed: it may hold the key)
                            log.warning("records: a folder of %s named otherwise before (its key in its name, or by "
                                        "its id as another civicat redacted it) is left beside %s, its folder now: "
                                        "remove it", base, new)
                            continue
                        os.rename(old, new)
                        if base == self.root:
                            renamed.append((portal_id, source_id))
        return renamed

    def staging(self, portal_id: str, source_id: str) -> Path:
        """The dataset's staging folder: the same for every attempt, so a pull cut short
        resumes from the parts it finished."""
        return self._inside(self.staging_root, self.relative(portal_id, source_id))

    def publish(self, ready: Path, portal_id: str, source_id: str) -> Path:
        """Put the complete folder `ready` in place of the previous one, then remove `ready`.

        Where the system swaps two folders in one step (renameat2 RENAME_EXCHANGE, `exchange`)
        a reader of the dataset's folder finds the previous records or the new ones, never no
        folder: a copy of `ready` made of hard links, `swapping-<id>/<relative path>`, is swapped
        with the published folder, which so lands there and is removed. `ready` itself stays a
        staged pull until the swap is done, and the old folder never sits at a staging path a
        resumed pull reads: killed at any step, `repair` removes the swapping folder (a partial
        copy of `ready`, or the previous records) and the next pull publishes `ready` again.
        Elsewhere (no such call, or a file system without hard links) the previous folder is set
        aside in `retired-<id>/<relative path>` and `ready` renamed in: killed between the two,
        `repair` moves the previous one back."""
        final = self._inside(self.root, self.relative(portal_id, source_id))   # (never the name before session 46)
        final.parent.mkdir(parents=True, exist_ok=True)
        with _PUBLISHING:
            if not final.exists():
                os.rename(ready, final)
                return final
            name = uuid.uuid4().hex
            swapping = self.staging_root / f"{SWAPPING}{name}"
            copy = self._inside(swapping, self.relative(portal_id, source_id))
            copy.mkdir(parents=True)
            try:
                swapped = _linked(ready, copy) and exchange(copy, final)
            except BaseException:   # (a copy of `ready`, which stays staged; or, swapped as it was cut, the previous records)
                shutil.rmtree(swapping, ignore_errors=True)
                raise
            shutil.rmtree(swapping)   # swapped: the previous records (inside the lock: a repair would take them for a leftover)
            if swapped:
                shutil.rmtree(ready)
            else:   # (no swap in one step, or no hard links, on this file system: set the previous one aside, move the new one in)
                retired = self.staging_root / f"{RETIRED}{name}"
                aside = self._inside(retired, self.relative(portal_id, source_id))
                aside.parent.mkdir(parents=True)
                os.rename(final, aside)
                os.rename(ready, final)
                shutil.rmtree(retired)
        return final

    def repair(self, pulled: list[tuple[str, str]]) -> list[str]:
        """Put right what publishes cut short (kill -9, power loss) left in the staging
        folder; returns what was done, one sentence each. A dataset set aside and never
        replaced is moved back into place (it is the only copy, and the one `record_pulls`
        describes); one that was replaced is removed. A folder set aside by an older civicat
        (parts without their dataset's path) is removed only when every pulled dataset
        (`pulled`: portal and source ids) has its folder, so it can be no dataset's only copy."""
        done: list[str] = []
        if not self.staging_root.is_dir():
            return done
        with _PUBLISHING:
            for leftover in sorted(self.staging_root.glob(f"{SWAPPING}*")):
                shutil.rmtree(leftover)
                done.append(f"removed {leftover}: left by a publish cut short as it swapped in the new records "
                            "(a copy of them, which stay staged, or the previous records they replaced)")
            for leftover in sorted(self.staging_root.glob(f"{RETIRED}*")):
                for aside in sorted(leftover.glob("portal=*/dataset=*")):
                    relative = aside.relative_to(leftover).as_posix()
                    final = self._inside(self.root, relative)
                    if final.exists():
                        shutil.rmtree(aside)
                        done.append(f"removed {aside}: left by a publish of {relative} cut short while that "
                                    "folder was in place (the previous records, or a copy of the new ones, "
                                    "which stay staged)")
                    else:
                        final.parent.mkdir(parents=True, exist_ok=True)
                        os.rename(aside, final)
                        done.append(f"restored {relative} from {aside}: a publish cut short between its two "
                                    "renames had left the published records aside")
                    _remove_empty(aside.parent, leftover)
                if any(leftover.glob("*.parquet")):
                    missing = [f"{p}:{s}" for p, s in pulled if not self.folder(p, s).is_dir()]
                    if missing:
                        done.append(f"kept {leftover}: records set aside by a publish cut short (an older "
                                    f"civicat's, which names no dataset), and {len(missing)} pulled datasets have "
                                    f"no folder ({', '.join(missing[:5])}); move it back by hand or pull them again")
                        continue
                    shutil.rmtree(leftover)
                    done.append(f"removed {leftover}: records set aside by a publish cut short; every pulled "
                                "dataset has its folder")
                _remove_empty(*leftover.glob("portal=*"), leftover)   # (killed before its rename: empty)
        return done

    def glob(self, portal_id: str, source_id: str) -> str:
        return str(self.folder(portal_id, source_id) / "*.parquet")

    def recording(self, portal_id: str, source_id: str) -> Path:
        """The file that says what a publish of the dataset is to record (`intend_record`): one
        per dataset, named by a hash of its path (outside the staging folders, which a pull
        removes as it publishes)."""
        digest = hashlib.sha256(self.relative(portal_id, source_id).encode()).hexdigest()[:32]
        return self.staging_root / f"{RECORDING}{digest}.json"

    def unrecorded(self) -> list[Path]:
        """The records of publishes whose pull was killed before it recorded them."""
        return sorted(self.staging_root.glob(f"{RECORDING}*.json")) if self.staging_root.is_dir() else []


def parquet_columns(con: duckdb.DuckDBPyConnection, glob: str) -> list[tuple[str, str]]:
    return [(row[0], row[1]) for row in con.execute("DESCRIBE SELECT * FROM read_parquet(?, hive_partitioning = false)", [glob]).fetchall()]


NUMERIC = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT",
           "FLOAT", "DOUBLE", "DECIMAL")


def profile_columns(con: duckdb.DuckDBPyConnection, glob: str, statistics=None) -> list[dict]:
    """Per column of the Parquet at `glob`: type, rows, nulls, approximate distinct count,
    min, max, and the most frequent values of low-cardinality text columns.

    Rows, nulls, min and max come from the Parquet statistics (`parquet_metadata`, no data
    read) where every row group has exact ones; a scan per PROFILE_COLUMNS columns gives the
    distinct estimates (and min/max/nulls of any column without statistics). `statistics`:
    how they are read (`part_statistics`, or a function of the same arguments and answer)."""
    columns = parquet_columns(con, glob)
    if not columns:
        return []
    stats = (statistics or part_statistics)(con, glob, dict(columns))
    scanned: dict[str, tuple] = {}   # column → (distinct, non-null, min, max) from a scan
    total = None
    # a few hundred columns a scan: each approx_count_distinct holds a HyperLogLog per thread,
    # and a scan of them all (2,000 columns) did not fit PROFILE_MEMORY
    for start in range(0, len(columns), PROFILE_COLUMNS):
        chunk = columns[start:start + PROFILE_COLUMNS]
        parts = ["count(*)"]
        for name, kind in chunk:
            column = quote_identifier(name)
            parts.append(f"approx_count_distinct({column})")
            scalar = not kind.endswith("]") and not kind.startswith(("STRUCT", "MAP", "UNION"))
            if not (stats.get(name) and stats[name][1]):
                parts += [f"count({column})", f"CAST(min({column}) AS VARCHAR)" if scalar else "NULL",
                          f"CAST(max({column}) AS VARCHAR)" if scalar else "NULL"]
        row = con.execute(f"SELECT {', '.join(parts)} FROM read_parquet(?, hive_partitioning = false)",
                          [glob]).fetchone()
        total, values = row[0], iter(row[1:])
        for name, _ in chunk:
            distinct = next(values)
            exact = stats.get(name) and stats[name][1]
            scanned[name] = (distinct,) if exact else (distinct, next(values), next(values), next(values))
    profiles = []
    for name, kind in columns:
        distinct, *measured = scanned[name]
        if measured:
            non_null, low, high = measured
        else:
            nulls, _, low, high = stats[name]
            non_null = total - nulls
        top = None
        if kind == "VARCHAR" and 0 < distinct <= LOW_CARDINALITY:
            column = quote_identifier(name)
            top = [r[0] for r in con.execute(
                f"SELECT {column} FROM read_parquet(?, hive_partitioning = false) WHERE {column} IS NOT NULL "
                f"GROUP BY ALL ORDER BY count(*) DESC, {column} LIMIT {TOP_VALUES}", [glob]).fetchall()]
        profiles.append({"column_name": name, "type": kind, "row_count": total, "null_count": total - non_null,
                         "distinct_count": min(distinct, non_null),  # the estimate can overshoot
                         "min_value": low, "max_value": high, "top_values": top})
    return profiles


# a row group's statistics (of a column, a path in the Parquet schema) exact enough to stand for
# a scan: a null count, and min and max unless every value is null
EXACT_STATISTICS = """stats_null_count IS NOT NULL AND (stats_null_count = row_group_num_rows OR
    (stats_min_value IS NOT NULL AND coalesce(min_is_exact, true) AND coalesce(max_is_exact, true)))"""


def part_statistics(con: duckdb.DuckDBPyConnection, glob: str, kinds: dict[str, str]) -> dict[str, list]:
    """Per column (its path in the Parquet schema) of the Parquet at `glob`: [nulls, whether
    every row group has exact statistics, min, max] (min and max as DuckDB shows them, numbers
    compared as numbers: `kinds`, column → DuckDB type), from the parts' footers read one part
    at a time and folded into these running figures. All of them at once (one
    `parquet_metadata` of the folder) held every column chunk's: 510 MB for 100,000 rows of
    1,000 columns, growing with the rows (docs/benchmarks.md, Records memory)."""
    folded: dict[str, list] = {}
    for (path,) in con.execute("SELECT file FROM glob(?) ORDER BY file", [glob]).fetchall():
        # each row group's, in the part's order (a GROUP BY with its lists ordered took the
        # process from 147 to 312 MB at 1,000 columns, this 192 MB)
        rows = con.execute(f"""SELECT path_in_schema, stats_null_count, {EXACT_STATISTICS}, stats_min_value,
                                      stats_max_value FROM parquet_metadata(?)""", [path])
        while chunk := rows.fetchmany(STATISTICS_AT_ONCE):
            for name, nulls, exact, low, high in chunk:
                number = float if kinds.get(name, "").startswith(NUMERIC) else None
                running = folded.setdefault(name, [None, True, None, None])
                if nulls is not None:   # (as SQL's sum: the nulls counted, none if none are)
                    running[0] = (running[0] or 0) + nulls
                running[1] = running[1] and exact
                running[2] = _least(running[2], _unsigned_zero(low, number), number, min)
                running[3] = _least(running[3], _unsigned_zero(high, number), number, max)
    return folded


def _unsigned_zero(value: str | None, number) -> str | None:
    """A zero as "0.0": the statistics write a least 0.0 as -0.0 (Parquet asks it of writers:
    a zero's sign is not kept there), which no row of a column of 0, 1/3, ... holds."""
    return value[1:] if number and value and value.startswith("-0") and float(value) == 0 else value


def _least(running, value, number, least):
    """`least` (min or max) of `running` and `value` (either None: none yet), compared by `number`
    (or as they are): `running` where they are equal, as one `min` over them all in order would."""
    if value is None or running is None:
        return running if value is None else value
    return least(running, value, key=number)


def _profile_schema():
    """column_profiles as Arrow (built on first use: pyarrow is imported lazily here)."""
    return pa.schema([("dataset_uid", pa.string()), ("column_name", pa.string()), ("type", pa.string()),
                      ("row_count", pa.int64()), ("null_count", pa.int64()), ("distinct_count", pa.int64()),
                      ("min_value", pa.string()), ("max_value", pa.string()), ("top_values", pa.list_(pa.string())),
                      ("profiled_at", pa.timestamp("us", tz="UTC"))])


@dataclass
class PreviousPull:
    path: str
    row_count: int
    watermark: str | None
    pulled_at: datetime
    page_size: int | None = None   # the server's own, as the pull learned it (Open311)
    thinning: float | None = None  # the share of an answer cut at it the server left out (Open311)
    whole_days: bool | None = None  # the server was read by whole days: it ignores the times asked (Open311)


def previous_pull(con: duckdb.DuckDBPyConnection, uid: str) -> PreviousPull | None:
    row = con.execute("SELECT path, row_count, watermark, pulled_at, page_size, thinning, whole_days FROM record_pulls "
                      "WHERE dataset_uid = ?", [uid]).fetchone()
    return PreviousPull(*row) if row else None


def vocabulary_type(duckdb_type: str) -> str:
    """A Parquet column's DuckDB type in the shared column vocabulary (`columns.type`)."""
    if duckdb_type.startswith(("TIMESTAMP", "TIME WITH")):
        return "datetime"
    if duckdb_type.startswith(("DECIMAL", "DOUBLE", "FLOAT")):
        return "number"
    if duckdb_type.startswith(NUMERIC):
        return "integer"
    return {"VARCHAR": "text", "BOOLEAN": "boolean", "DATE": "date"}.get(duckdb_type, "other")


@dataclass
class Measured:
    """A dataset's finished folder: its column profiles, rows and bytes."""
    profiles: list[dict]
    rows: int
    bytes: int


@contextmanager
def scratch_duckdb(memory: str, threads: int = 2):
    """A DuckDB of its own for a scan of a pull's Parquet, with a small memory limit, closed
    after it: the scan must not lift the pull's peak (the catalogue's connection would keep
    what it took). It spills to a directory of its own: an in-memory DuckDB's default is the
    working directory. Without DuckDB's cache of the files it reads (a scan reads each once): a
    profile of 1,000 columns, a scan a PROFILE_COLUMNS of them, took the process from 147 to
    493 MB with it, 261 MB without (docs/benchmarks.md, Records memory)."""
    with ScratchFolder("scan") as spill, uncut.connect(   # (left by a kill -9: the next pull removes it)
            config={"memory_limit": memory, "threads": threads, "temp_directory": str(spill),
                    "enable_external_file_cache": False}, interruptible=True) as con:
        yield con   # (a stop interrupts a scan, which may take minutes, through DuckDB: catalog.uncut)


def fitted_scan(scan: Callable[[object], T], memory: str, threads: int = 2, what: str = "a scan") -> T:
    """`scan(con)` on a scratch DuckDB of `memory`; where it does not fit, once more on one
    thread with SCAN_MEMORY_RETRY (a warning says so), rather than fail the pull every night."""
    try:
        with scratch_duckdb(memory, threads) as con:
            return scan(con)
    except duckdb.OutOfMemoryException as exc:
        log.warning("%s did not fit in %s (%s); trying again on one thread with %s", what, memory,
                    str(exc).splitlines()[0], SCAN_MEMORY_RETRY)
    with scratch_duckdb(SCAN_MEMORY_RETRY, threads=1) as con:
        return scan(con)


def measure_folder(folder: Path) -> Measured:
    """Profile the Parquet of `folder`: done before a pull publishes it, so that a profile
    that fails (out of memory, say) leaves the previous dataset in place, as every other
    failure of a pull does."""
    glob = str(folder / "*.parquet")

    def measure(profiler) -> tuple[list[dict], int]:
        profiles = profile_columns(profiler, glob)
        return profiles, profiles[0]["row_count"] if profiles else profiler.execute(
            "SELECT count(*) FROM read_parquet(?, hive_partitioning = false)", [glob]).fetchone()[0]

    profiles, rows = fitted_scan(measure, PROFILE_MEMORY, what=f"the profile of {folder.name}")
    return Measured(profiles, rows, sum(p.stat().st_size for p in folder.glob("*.parquet")))


def record_pull(con: duckdb.DuckDBPyConnection, layout: RecordsLayout, *, uid: str, portal_id: str,
                source_id: str, mode: str, watermark: str | None, run_id: str, now: datetime,
                seconds: float, kinds: dict[str, str] | None = None, measured: Measured | None = None,
                page_size: int | None = None, thinning: float | None = None, whole_days: bool | None = None) -> dict:
    """After a publish: the dataset's pull row and its column profiles, in one transaction.
    A profile's `type` is the column's type in the shared vocabulary, as in `columns`:
    `kinds` (column → type, from the pull), else derived from the Parquet type. `measured`:
    the folder as measured before it was published (else it is measured now)."""
    measured = measured or measure_folder(layout.folder(portal_id, source_id))
    profiles, rows, size = measured.profiles, measured.rows, measured.bytes
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute("DELETE FROM record_pulls WHERE dataset_uid = ?", [uid])
        con.execute("INSERT INTO record_pulls (dataset_uid, portal_id, source_id, path, row_count, column_count, "
                    "bytes, mode, watermark, run_id, pulled_at, seconds, page_size, thinning, whole_days) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [uid, portal_id, source_id, layout.where(portal_id, source_id), rows, len(profiles), size,
                     mode, watermark, run_id, now, seconds, page_size, thinning, whole_days])
        # one insert of them all: a row at a time, each insert kept blocks of its own in the
        # catalogue's 128 MB, and a dataset of ~400 columns or more never fitted. A column profiled
        # as the last pull profiled it keeps that pull's profiled_at: the same records, the same bytes
        schema = _profile_schema()
        con.register("_profiles", pa.Table.from_pylist(
            [{**p, "dataset_uid": uid, "type": (kinds or {}).get(p["column_name"]) or vocabulary_type(p["type"])}
             for p in profiles], schema.remove(schema.get_field_index("profiled_at"))))
        try:
            replace_keeping_stamps(con, "column_profiles", "_profiles", ("dataset_uid", "column_name"),
                                   "profiled_at", now, where="t.dataset_uid = ?", parameters=[uid])
        finally:
            con.unregister("_profiles")
        con.execute("COMMIT")
    except BaseException:
        rollback(con)
        raise
    define_records_macro(con, layout)
    return {"rows": rows, "columns": len(profiles), "bytes": size}


def parts_identity(folder: Path) -> dict[str, list[int]]:
    """A folder's parts as files (name: inode, bytes): a publish moves or hard-links the parts
    it puts in place, so the published folder is the one made by a pull while they are the same."""
    try:
        return {part.name: [(st := part.stat()).st_ino, st.st_size] for part in sorted(folder.glob("*.parquet"))}
    except FileNotFoundError:   # (a part renamed away meanwhile: not that folder)
        return {}


def intend_record(layout: RecordsLayout, ready: Path, **pull) -> Path:
    """Before `ready` is published: what `record_pull(con, layout, **pull)` is to write of it,
    and its parts (`parts_identity`), in the dataset's `recording` file (synced, renamed into
    place). Removed once record_pulls holds the pull (`recorded`); a pull killed between its
    publish and that commit left the folder and the catalogue disagreeing (exports refused the
    folder, queries gave the previous pull's rows and profiles) until the next pull of that very
    dataset: `record_unrecorded`, at the next writer's start, writes the row from this file."""
    path = layout.recording(pull["portal_id"], pull["source_id"])
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, {**pull, "now": pull["now"].isoformat(), "measured": asdict(pull["measured"]),
                             "parts": parts_identity(ready)})
    return path


def recorded(intent: Path) -> None:
    """The pull `intend_record` wrote `intent` for is in record_pulls."""
    intent.unlink(missing_ok=True)


def record_unrecorded(con: duckdb.DuckDBPyConnection, layout: RecordsLayout) -> list[str]:
    """Record in record_pulls each pull killed after its publish and before its record (its
    `recording` file), when its folder is the one it published; returns what was done, one
    sentence each. A folder that is not (killed before the swap: the pull stays staged and the
    next pull publishes it) has its file removed. The caller writes the catalogue alone (at a
    writer's start, under the writer lock)."""
    done: list[str] = []
    for leftover in layout.staging_root.glob(f"{RECORDING}*.json.tmp") if layout.staging_root.is_dir() else ():
        leftover.unlink()   # (killed as it was written: before its publish)
    for intent in layout.unrecorded():
        try:
            pull = json.loads(intent.read_text())
            parts = pull.pop("parts")
            folder = layout.folder(pull["portal_id"], pull["source_id"])
        except (ValueError, KeyError, TypeError, UnsafePath) as exc:
            done.append(f"removed {intent}: not a record of a publish ({exc!r})")
            intent.unlink()
            continue
        if parts and parts_identity(folder) == parts:
            record_pull(con, layout, **{**pull, "now": datetime.fromisoformat(pull["now"]),
                                        "measured": Measured(**pull["measured"])})
            done.append(f"recorded the pull of {pull['uid']} (run {pull['run_id']}, {pull['measured']['rows']} rows) "
                        f"in record_pulls: killed after it published {folder} and before it recorded it")
        else:
            done.append(f"removed {intent}: a pull of {pull['uid']} killed before its records were published "
                        "(they stay staged; its next pull publishes them)")
        recorded(intent)
    return done


def name_keyed_folders(con: duckdb.DuckDBPyConnection, layout: RecordsLayout, portal_id: str) -> list[str]:
    """At a records pull's start (the writer's): the folders of the portal's datasets whose source ids hold a
    secret, named as before session 46 with the key in their name, renamed without it
    (RecordsLayout.rename_keyed), and record_pulls.path with them; returns what was done, one sentence each (the
    key never in it). The portal's alone: portals pulled in parallel write record_pulls each its own rows."""
    from catalog.links import maybe_secret_sql, redacted

    keyed = [(p, s) for p, s in con.execute(f"SELECT portal_id, source_id FROM datasets WHERE portal_id = ? AND "
                                            f"{maybe_secret_sql('source_id')} ORDER BY source_id", [portal_id]).fetchall()
             if redacted(s) != s]
    # (and those pulled whose folder record_pulls names otherwise than this civicat: named by the id as another
    # civicat redacted it, or keyed then and not now)
    keyed += sorted({(p, s) for p, s, path in con.execute("SELECT portal_id, source_id, path FROM record_pulls "
                                                          "WHERE portal_id = ?", [portal_id]).fetchall()
                     if path != layout.relative(p, s)} - set(keyed))
    renamed = layout.rename_keyed(keyed)
    for portal_id, source_id in renamed:
        con.execute("UPDATE record_pulls SET path = ? WHERE portal_id = ? AND source_id = ?",
                    [layout.where(portal_id, source_id), portal_id, source_id])
    return [f"renamed {len(renamed)} records folder{'s' * (len(renamed) != 1)} whose name held the key in its "
            "dataset's source id: named by the id redacted now (record_pulls.path gives each)"] if renamed else []


_MACRO_LOCK = threading.Lock()


def define_records_macro(con: duckdb.DuckDBPyConnection, layout: RecordsLayout) -> None:
    """`SELECT * FROM records('seattle', '3k2p-39jp')`: a harvested dataset from the
    catalogue. The root is absolute; ids with characters outside [A-Za-z0-9_.-] are
    stored percent-encoded, one holding a secret redacted and named apart (RecordsLayout.segment):
    record_pulls.path gives the folder of any id."""
    root = str(layout.root).replace("'", "''")
    # one definition at a time, in a transaction of its own, and only when it is missing or
    # points elsewhere: portals harvested in parallel pull records on cursors of their own,
    # and two transactions that both (re)define the macro fail one of them (DuckDB's
    # "write-write conflict" on the catalogue entry)
    with _MACRO_LOCK:
        defined = con.execute("""SELECT macro_definition FROM duckdb_functions()
                                 WHERE function_name = 'records' AND database_name = current_database()
                                   AND schema_name = current_schema()""").fetchone()
        if defined is None or f"'{root}/portal='" not in defined[0]:
            con.execute(f"""CREATE OR REPLACE MACRO records(portal, dataset) AS TABLE
                            SELECT * FROM read_parquet('{root}/portal=' || portal || '/dataset=' || dataset
                                                       || '/*.parquet', hive_partitioning = false)""")


def write_json_atomic(path: Path, value) -> None:
    """`path` holds the old value or the new one, after a kill or a reboot alike."""
    tmp = path.with_name(path.name + ".tmp")
    with writing(tmp), open(tmp, "w") as file:
        file.write(json.dumps(value))
        file.flush()
        os.fsync(file.fileno())
    os.replace(tmp, path)
