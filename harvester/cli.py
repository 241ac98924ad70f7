"""`civicat`: a thin command layer over the library functions.

Exit codes: 0 success; 1 at least one portal failed (the others stored); 2 bad usage or
config, or the catalogue is being written by another civicat process (nothing was requested);
130 / 143 a command stopped by Ctrl-C / SIGTERM (harvester.stopping: nothing half-written is
published; the portals a harvest had not stored keep their catalogue); 74 (sysexits' EX_IOERR)
the report could not be written to stdout (the disk full, `ulimit -f`): what the command did
is done, its report is lost; or a writer whose work is stored (a harvest every portal, `records`
every pull, `retire`, `overlap`) found no room for the catalogue's checkpoint (its commits in the
log) or its read copy (its readers read the previous one); 141
(128 + SIGPIPE, no message) its reader closed the pipe early.
"""
from __future__ import annotations

if __name__ == "__main__":   # `python -m harvester.cli`: the stop handlers before the imports below (harvester.command)
    from harvester.command import main as _command

    _command()
    raise SystemExit(0)

import base64
import csv
import errno
import functools
import io
import itertools
import json
import logging
import math
import os
import re
import shlex
import signal
import shutil
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import NoReturn

import click
from click.core import ParameterSource

from catalog import EMBEDDINGS_INSTALL
from catalog.disk import disk_full
from catalog.links import redacted_text
from catalog.lazy import pandas_kept_out
from harvester import __version__
from harvester.stopping import finished, stop_message, stop_on_signals, stop_requested, stopped_by, stopped_exit_code

DEFAULT_DB = "data/civicat.duckdb"
DEFAULT_CONFIG = "configs/g7.toml"

DB_PATH = "civicat.db_path"   # (ctx.meta, shared by the group and its command: for CommandGroup.invoke)


def _db_given(ctx: click.Context, param: click.Parameter, db_path: Path) -> Path:
    """--db, once it is known to name a DuckDB file or none: a file of another kind (`--db README.md`)
    is refused here, before a writer takes its lock (`README.md.lock`, left behind) or reads a copy
    of it (`README.read.md`), and before DuckDB's "not a valid DuckDB database file", which named
    neither what the file is nor what --db is for."""
    what = not_a_duckdb_file(db_path)
    if what is not None:
        raise Refused(f"--db {db_path} is not a DuckDB catalogue: it is {what}; --db names the catalogue's DuckDB "
                      f"file (default {DEFAULT_DB}; the first harvest makes it)")
    return ctx.meta.setdefault(DB_PATH, db_path)


db_option = click.option("--db", "db_path", default=DEFAULT_DB, show_default=True,
                         type=click.Path(dir_okay=False, path_type=Path), help="DuckDB catalogue file.",
                         callback=_db_given)
config_option = click.option("--config", "config_path", default=DEFAULT_CONFIG, show_default=True,
                             type=click.Path(dir_okay=False, path_type=Path), help="Portal list (TOML).")
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")


def read_config(config_path: Path):
    """The portal list, a bad one refused (exit 2) naming what is wrong, with no usage line: the
    command line was right, the file is not (a cron mail's "Try --help" was noise). (harvester.config
    imported here: TOML's reader is for the commands that read a config, not every call.)"""
    from harvester.config import ConfigError, load_config

    try:
        return load_config(config_path)
    except ConfigError as exc:
        # (a first user outside the checkout: "configs/g7.toml: ... No such file or directory" said not where)
        lost = not config_path.is_absolute() and not config_path.exists()
        where = f"; {config_path} is read from the current folder, {Path.cwd()}"
        if lost and str(config_path) == DEFAULT_CONFIG:
            where += " (the default --config: run civicat in its checkout, or give --config FILE)"
        raise Refused(str(exc) + (where if lost else "")) from None


def refuse_unusable_keys(portals) -> None:
    """Exit 2 before any request where a key `portals` name in the environment (app_token_env) is
    one no header can carry (harvester.config.unusable_keys)."""
    from harvester.config import unusable_keys

    wrong = unusable_keys(portals, os.environ)
    if wrong:
        raise Refused("; ".join(wrong))


def _json_default(value):
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    return str(value)


def echo_json(value) -> None:
    click.echo(json.dumps(value, default=_json_default, ensure_ascii=False, indent=2))


def counted(n: int, noun: str) -> str:
    """`1 dataset`, `2 datasets`."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def json_safe(value):
    """A value DuckDB gives as JSON a front end reads, in lists, structs and maps too: NaN and
    ±Infinity as None (JSON has no word for them: Python writes `NaN`, which JavaScript's, Go's
    and orjson's parsers refuse); BLOB as base64 text and INTERVAL as an ISO 8601 duration
    (Python's `b'...'` and `1 day, 2:00:00` were no text a reader could parse); DECIMAL as a
    number; a MAP's keys that are not text (an integer, a date, a BLOB) as their JSON text."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, timedelta):
        return iso_duration(value)
    if isinstance(value, Decimal):
        return json_safe(float(value))
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    if isinstance(value, dict):
        return {key if isinstance(key, str) else _json_key(json_safe(key)): json_safe(item)
                for key, item in value.items()}
    return value


def _json_key(key) -> str:
    """A MAP key made JSON (json_safe) as an object's key: text as it is, a number as JSON writes it."""
    if isinstance(key, str):
        return key
    if key is None or isinstance(key, (bool, int, float)):
        return json.dumps(key)
    return _json_default(key)


def iso_duration(interval: timedelta) -> str:
    """An INTERVAL as DuckDB gives it to Python (a timedelta: a month counted as 30 days) in ISO 8601:
    `P423DT4H5M6.5S`, `-P1D`, `PT0S`; days never folded into months or years, which have no fixed length."""
    sign = "-" if interval < timedelta(0) else ""
    interval = abs(interval)
    hours, rest = divmod(interval.seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    second_part = f"{seconds}.{interval.microseconds:06d}".rstrip("0") if interval.microseconds else str(seconds)
    time_part = "".join(f"{n}{unit}" for n, unit in ((hours, "H"), (minutes, "M")) if n)
    if seconds or interval.microseconds:
        time_part += f"{second_part}S"
    days = f"{interval.days}D" if interval.days else ""
    if not days and not time_part:
        return "PT0S"
    return f"{sign}P{days}" + (f"T{time_part}" if time_part else "")


def text_cell(value):
    """A value of `sql` for a CSV or table cell: a list, struct or map as JSON text (`["a", "b"]`,
    which a reader can parse; Python's repr, `['a', 'b']`, is no JSON); a BLOB and an INTERVAL as
    in JSON (base64, ISO 8601: the table showed Python's `b'\xff'` and `-1 day, 2:00:00`, which is
    -22 hours); any other value as it is."""
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(json_safe(value), default=_json_default, ensure_ascii=False)
    if isinstance(value, (bytes, bytearray, memoryview, timedelta)):
        return json_safe(value)
    return value


def csv_lines(rows) -> Iterator[str]:
    """Each row as a CSV line ended by "\n" (RFC 4180 allows it; every Unix tool expects it,
    where "\r\n" leaves a "\r" on the last value), a value holding a "\r" quoted all the
    same: csv quotes the characters of its line ending, so it writes "\r\n" and the ending is
    swapped."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    for row in rows:
        writer.writerow(row)
        yield buffer.getvalue()[:-2] + "\n"
        buffer.seek(0)
        buffer.truncate()


def echo_json_streamed(head: dict, key: str, items: Iterator[dict]) -> None:
    """echo_json({**head, key: list(items)}), the same text, printed an item at a time: a list as
    long as a portal (a night's warnings) is never held whole."""
    def indented(value, level: int) -> str:
        return json.dumps(value, default=_json_default, ensure_ascii=False, indent=2).replace("\n", "\n" + "  " * level)

    click.echo("{")
    for name, value in head.items():
        click.echo(f"  {json.dumps(name, ensure_ascii=False)}: {indented(value, 1)},")
    opened = False
    for item in items:
        click.echo((",\n" if opened else f"  {json.dumps(key, ensure_ascii=False)}: [\n") + "    " + indented(item, 2),
                   nl=False)
        opened = True
    click.echo("\n  ]\n}" if opened else f"  {json.dumps(key, ensure_ascii=False)}: []\n}}")


# control characters but the line break and the tab: C0, DEL and C1 (0x9b is a CSI too); and
# Unicode's bidirectional embeddings, overrides and isolates, which a terminal or viewer that lays
# text out both ways obeys: a title "Budget \u202egpj.exe" read "Budget exe.jpg", and an override
# left open turned the rest of the table's line around. Not the marks (U+200E, U+200F, U+061C):
# ordinary Hebrew and Arabic titles hold them, and a mark alone reorders no text around it
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def printable(value):
    """Text for the terminal: a control character that came from a portal (an escape
    sequence that clears the screen or retitles the window, a NUL, a right-to-left override)
    is shown as `\\x1b` (`\\u202e`), not obeyed. The catalogue and the JSON and CSV outputs
    keep the text as it was sent."""
    if isinstance(value, str) and _CONTROL.search(value):
        return _CONTROL.sub(lambda match: f"\\x{ord(match.group()):02x}" if match.group() < "\u0100"
                            else f"\\u{ord(match.group()):04x}", value)
    return value


def table_text(rows: list[list] | list[tuple], headers) -> str:
    from tabulate import tabulate   # (here: every call, `--help` too, imported it, a third of the CLI's imports)

    rows = [[printable(cell) for cell in row] for row in rows]
    return tabulate(rows, headers=[printable(h) for h in headers], tablefmt="simple", disable_numparse=True,
                    missingval="")


def echo_table(rows: list[list] | list[tuple], headers) -> None:
    click.echo(table_text(rows, headers))


def one_line(text) -> str:
    """A portal's text (a title, a label) for a line of its own: control characters escaped (printable)
    and its line breaks and tabs a space each, before it is cut to fit (cut first, a title could end in
    half an escape, `\\x1`, or run on to a line of its own past the width promised)."""
    return printable(re.sub(r"[\t\n\r\v\f]+", " ", text or ""))


def output_width() -> int | None:
    """The columns every command's text may take, one rule for all (runs, harvest, records, sql, overlap,
    similar, search): $COLUMNS, else stdout's terminal's (80 where it says none: script(1), a container's tty
    before its first resize). None piped (to a file, grep, a pager, a cron job's mail): every value whole and
    nothing wrapped, a row or an item a line, as a file and grep want them and `less -S` scrolls them. (Until
    session 44 `overlap`, `similar` and `search` took 120 piped and cut their titles to it, and a terminal
    that said no size 120; `runs` and `records` cut a failure at 80 characters piped, an error at 100, unmarked.)"""
    columns = os.environ.get("COLUMNS", "").strip()
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    if not sys.stdout.isatty():
        return None
    try:
        return os.get_terminal_size(sys.stdout.fileno()).columns or 80
    except (OSError, ValueError):
        return 80


def wrapped(text: str) -> str:
    """A sentence (never a command to copy) broken at spaces to the width (output_width), a uid in it whole;
    piped, one line."""
    import textwrap

    width = output_width()
    return text if width is None else textwrap.fill(text, width, break_long_words=False, break_on_hyphens=False)


def _widest_line(text: str) -> int:
    return max(map(len, text.splitlines()), default=0)


def _close_table(cells: list[list[str]], headers: list[str], gap: str = "  ") -> str:
    """`cells` as tabulate's simple table draws them, each column as wide as its widest cell or header
    (tabulate's are 2 wider than the header: 14 columns of `runs`, 28 characters), `gap` between them."""
    widths = [max(len(header), *(len(row[i]) for row in cells)) for i, header in enumerate(headers)]
    lines = [[header.ljust(w) for header, w in zip(headers, widths)], ["-" * w for w in widths]]
    lines += [[cell.ljust(w) for cell, w in zip(row, widths)] for row in cells]
    return "\n".join(gap.join(line).rstrip() for line in lines)


def _piped_table(rows: list[list], headers: list[str], alone: int | None) -> str:
    """Rows piped: tabulate's table, every value whole and a row a line (a value's line breaks a space), for a
    file, grep and `less -S`; the rule under a last column `alone` (a failure, a message, a folder) as long as
    its header, not its longest value (a 2 KB message drew 2 KB of dashes)."""
    text = table_text([[one_line(cell) if isinstance(cell, str) else cell for cell in row] for row in rows],
                      [one_line(h) for h in headers])
    if alone is None or alone != len(headers) - 1:
        return text
    header, rule, *lines = text.split("\n")
    return "\n".join([header, rule[:len(header)], *lines])


def _echo_alone(header: str, value: str, can_cut: bool, width: int) -> None:
    """A row's `alone` column (a failure, a message, a folder) on a line of its own below it: cut to the width
    where it may be, else whole (a path: copied, never cut), on a line of its own where it runs past."""
    line = f"  {header}: {value}"
    if can_cut or len(line) <= width:
        click.echo(cut_to(line, width))
    else:
        click.echo(f"  {header}:\n    {value}")


def echo_rows(rows: list[list], headers: list[str], *, first: int, alone: int | None = None,
              cut: bool | list[bool] = False, narrow: list[int] | None = None, heading: int | None = None,
              wider: list[int] | None = None) -> None:
    """Rows (a run's portals, the pulls of `records`, errors) as a table that fits the terminal (output_width):
    as tabulate draws it where it fits; else each column as wide as its widest cell; else with column `alone`
    (a failure, a message) cut to the room the others leave ('…' where cut, 20 characters at least) in the rows
    `cut` says (a folder's path is never cut: it is copied); else, given `narrow` (the columns that say most), a
    row a line of those, a space between, `alone` on a line of its own below a row that has one, column
    `heading` (a run's id) a line `header value` above the rows it heads (first as a column of its own), the
    columns `narrow` leaves out added back in the order of `wider` as the width allows (_narrower), and a last line
    naming the columns left out; and where even that runs past, each row on lines of its own: its `first`
    columns (the ids: whole, as a user copies them), the others `header value`, wrapped, then `alone` on its own
    line. Piped (no width): _piped_table, every value whole."""
    import textwrap

    width = output_width()
    cuttable = cut if isinstance(cut, list) else [cut] * len(rows)
    if width is None:
        click.echo(_piped_table(rows, headers, alone))
        return
    text = table_text(rows, headers)
    if _widest_line(text) <= width:
        click.echo(text)
        return
    cells = [["" if cell is None else str(one_line(str(cell))) for cell in row] for row in rows]
    headers = [str(one_line(h)) for h in headers]
    if alone is not None and cells:
        others = sum(max(len(h), *(len(row[i]) for row in cells)) + 2 for i, h in enumerate(headers) if i != alone)
        room = max(20, len(headers[alone]), width - others)
        fitted_cells = [row[:alone] + [cut_to(row[alone], room) if can else row[alone]] + row[alone + 1:]
                        for row, can in zip(cells, cuttable)]
    else:
        fitted_cells = cells
    for candidate in (cells, fitted_cells):
        text = _close_table(candidate, headers)
        if _widest_line(text) <= width:
            click.echo(text)
            return
    for columns, headed_by in _narrower(len(headers), narrow, alone, heading, wider) if cells else ():
        text = _close_table([[row[i] for i in columns] for row in cells], [headers[i] for i in columns], gap=" ")
        if _widest_line(text) <= width:
            head_and_rule, lines = text.split("\n")[:2], text.split("\n")[2:]
            click.echo("\n".join(head_and_rule))
            headed = None
            for line, row, can in zip(lines, cells, cuttable):
                if headed_by is not None and row[headed_by] != headed:
                    headed = row[headed_by]
                    click.echo(f"{headers[headed_by]} {headed}")
                click.echo(line)
                if alone is not None and row[alone]:
                    _echo_alone(headers[alone], row[alone], can, width)
            left_out = [h for i, h in enumerate(headers) if i not in columns and i not in (alone, headed_by)]
            if left_out:
                click.echo(wrapped(f"(left out: {', '.join(left_out)})"))   # (wider, piped or --json: every column)
            return
    for row, can in zip(cells, cuttable):
        click.echo("  ".join(cell for cell in row[:first] if cell))
        pairs = ", ".join(f"{h} {cell}" for i, (h, cell) in enumerate(zip(headers, row))
                          if i >= first and i != alone and cell)
        if pairs:
            click.echo(textwrap.fill(pairs, width, initial_indent="  ", subsequent_indent="  ",
                                     break_long_words=False, break_on_hyphens=False))
        if alone is not None and row[alone]:
            _echo_alone(headers[alone], row[alone], can, width)


# how a value piped as a tab-separated field writes what would end it or its line (mysql's batch form)
TAB_SEPARATED_ESCAPES = {"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"}


def tab_separated_field(value) -> str:
    """A value of `sql` piped: as the table shows it (None empty), its backslashes, tabs and line breaks written
    `\\`, `\t`, `\n`, `\r`, then its other control characters escaped (printable)."""
    text = "" if value is None else str(value)
    return str(printable(re.sub(r"[\\\t\n\r]", lambda found: TAB_SEPARATED_ESCAPES[found.group()], text)))


def echo_tab_separated(rows: list[list], columns: list[str]) -> None:
    """`sql`'s rows piped, and `overlap`'s groups (to a file, cut, sort, a TSV reader, `column -t -s $'\t'`), as mysql
    prints them when its output is no terminal: the column names, then a row a line, its values a tab apart, never
    padded, a value's tab or line break escaped (tab_separated_field). Until session 45 piped `sql` printed the
    terminal's table: middle columns padded to their widest value, and a value's line breaks kept, a row over
    several lines."""
    lines = ("\t".join(map(tab_separated_field, row)) for row in [columns, *rows])
    for batch in iter(lambda: list(itertools.islice(lines, 1000)), []):
        click.echo("\n".join(batch))


def _narrower(count: int, narrow: list[int] | None, alone: int | None, heading: int | None,
              wider: list[int] | None) -> Iterator[tuple[list[int], int | None]]:
    """The forms echo_rows tries, widest first, where a row's columns but `alone` (on a line of its own) may fit:
    (the columns shown, the column heading the rows it shows or None). Every column but `alone`, `heading` a
    column; then `heading` a line above its rows, and the columns `narrow` leaves out added back in the order of
    `wider` (else their own) as many as fit (a terminal of 80 to ~200 columns: until session 45 `runs` showed
    `narrow` alone at any width its table did not fit, 120 as 80); `narrow` alone last."""
    if not narrow:
        return
    if heading is not None:
        yield [i for i in range(count) if i != alone], None
    left = [i for i in range(count) if i not in narrow and i not in (alone, heading)]
    extras = [i for i in wider or [] if i in left] + [i for i in left if i not in (wider or [])]
    for added in range(len(extras), -1, -1):
        yield sorted(narrow + extras[:added]), heading


def echo_expanded(rows: list[list], columns: list[str], piped_as_table: bool = False) -> None:
    """`sql`'s rows where its table runs past the terminal (output_width), as psql's expanded display shows
    them: each row a block, a line a column, its value wrapped at spaces to the width, never cut (they are
    the query's answer: `--format csv` or `json` for a script); piped, tab-separated (echo_tab_separated), or
    `piped_as_table` (`--format table` given) the table whole."""
    import textwrap

    width = output_width()
    if width is None:
        if piped_as_table:
            click.echo(table_text(rows, columns))
        else:
            echo_tab_separated(rows, columns)
        return
    text = table_text(rows, columns)
    if _widest_line(text) <= width:
        click.echo(text)
        return
    names = [str(printable(c)) for c in columns]
    name_width = min(max(map(len, names), default=0), max(8, width // 3))
    room = max(20, width - name_width - 2)
    for n, row in enumerate(rows, start=1):
        click.echo(f"-[ row {n} ]".ljust(min(width, 40), "-"))
        for name, value in zip(names, row):
            lines = [piece for paragraph in str(printable("" if value is None else value)).split("\n")
                     for piece in (textwrap.wrap(paragraph, room, break_long_words=False, break_on_hyphens=False)
                                   or [""])]
            for i, line in enumerate(lines):
                click.echo(f"{(name if i == 0 else '').ljust(name_width)}  {line}".rstrip())


class JsonLogFormatter(logging.Formatter):
    """One JSON object a line, for log collectors: time (UTC), level, logger, message (and
    the exit code of an error that ended the command)."""

    def format(self, record: logging.LogRecord) -> str:
        line = {"time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
                "level": record.levelname.lower(), "logger": record.name, "message": redacted_text(record.getMessage())}
        if record.exc_info:
            line["exception"] = redacted_text(self.formatException(record.exc_info))
        if hasattr(record, "exit_code"):
            line["exit_code"] = record.exit_code
        return json.dumps(line, ensure_ascii=False)


LOG_FORMAT = "civicat.log_format"   # the --log-format of this command, in click's ctx.meta


def echo_error(message: str, exit_code: int | None = None, exc_info=None) -> None:
    """An error for stderr: a JSON log line with --log-format json (a JSON log stays JSON to
    its last line, the text as it was sent; `exc_info`'s traceback in it), else a plain line
    (see printable)."""
    ctx = click.get_current_context(silent=True)
    if ctx is None or ctx.meta.get(LOG_FORMAT) != "json":
        click.echo(printable(message), err=True)
        return
    record = logging.LogRecord("civicat", logging.ERROR, __file__, 0, message, None, exc_info)
    if exit_code is not None:
        record.exit_code = exit_code
    click.echo(JsonLogFormatter().format(record), err=True)


REPORT_LOST = 74   # sysexits' EX_IOERR: apart from 1 (a portal failed) and 2 (nothing done)
NO_ROOM_AFTER_STORING = REPORT_LOST   # (the work stored; its checkpoint or its read copy lost to a full disk)
READER_GONE = 128 + signal.SIGPIPE   # 141, as a shell shows a tool that `| head` closed on


class ReportLost(Exception):
    """stdout refused the report (not an OSError: no command's `except OSError` may take it for
    its own work's)."""

    def __init__(self, cause: OSError):
        super().__init__(f"could not write the report to stdout: {cause.strerror or cause}")
        # `civicat sql ... | head`: the reader stopped reading, by choice; no error to print
        self.reader_gone = cause.errno == errno.EPIPE

    @property
    def exit_code(self) -> int:
        return READER_GONE if self.reader_gone else REPORT_LOST


class ReportStream(io.RawIOBase):
    """fd 1, each write whole or a ReportLost. Python's unbuffered stdout (PYTHONUNBUFFERED, -u)
    took what the kernel took of a large write and dropped the rest unsaid: under `ulimit -f` a
    report lost its tail with exit 0. After a failure it takes everything unwritten, so that
    Python's own flush at exit neither fails again nor turns the exit code into 120."""

    def __init__(self, fd: int):
        super().__init__()
        self._fd, self._lost = fd, False

    def writable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._fd

    def isatty(self) -> bool:
        return os.isatty(self._fd)

    def write(self, data) -> int:
        if self._lost:
            return len(data)
        view = memoryview(data).cast("B")
        try:
            while view:
                view = view[os.write(self._fd, view):]
        except OSError as exc:
            self._lost = True
            raise ReportLost(exc) from exc
        return len(data)


def report_stdout(stdout):
    """`stdout` (sys.stdout) writing through a ReportStream, its encoding and line buffering kept."""
    return io.TextIOWrapper(io.BufferedWriter(ReportStream(stdout.fileno())), encoding=stdout.encoding,
                            errors=stdout.errors, line_buffering=stdout.line_buffering)


def report_lost(exc: ReportLost) -> None:
    """Say so on stderr, if stderr takes it (`> /dev/full 2>&1`: the exit code alone says it),
    unless the reader closed the pipe."""
    if exc.reader_gone:
        return
    try:
        echo_error(str(exc), exc.exit_code)
    except OSError:
        pass


class Refused(click.ClickException):
    """Exit 2, `Error: message` with no usage line: the command was refused before it began."""
    exit_code = 2


class KeptOut(click.ClickException):
    """Exit 1: a reader kept out of the catalogue by a writer, for now (a records pull keeps an
    export out); `export --wait` waits it out."""


class RecordsNotThePull(KeptOut):
    """Exit 1: a records folder is not the pull the catalogue read describes (catalog.export's
    RecordsChanged): a records pull replaced it, or it was changed by hand. `uid`: its dataset."""

    def __init__(self, message: str, uid: str, redacted: bool = False):
        super().__init__(message)
        self.uid, self.redacted = uid, redacted


def stopped() -> NoReturn:
    """A command stopped by Ctrl-C or SIGTERM: said, and exit 130 / 143."""
    echo_error(stop_message(), stopped_exit_code())
    sys.exit(stopped_exit_code())


class ValueMayBeLeftOut(click.Option):
    """An option whose value may be left out (`export --wait [SECONDS]`). click reads a word
    after it that starts with '-' as the next option, not as its value: `--wait -5` said
    "No such option '-5'", neither the option nor what was wrong. Command.parse_args gives it
    the negative number that follows it: a class of ours marks such an option, as click's own
    mark is private (an upgrade that renamed it would have lost the explanation unsaid)."""


class WaitFlag(click.Option):
    """A writer's --wait: a flag (wait for the catalogue as long as it takes), where export's
    --wait takes seconds; a number after it is refused naming --wait-minutes (Command.parse_args)."""


class Command(click.Command):
    """A civicat command: numbers after --wait read as the user meant them (see ValueMayBeLeftOut,
    WaitFlag); free text given unquoted, as several words, said so."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        args = _numbers_after_wait(self, ctx, args)
        if _help_as_a_word(self, args):   # (click: "Got unexpected extra argument (help)")
            raise click.UsageError(f"{self.name} takes no argument, and `help` is none of its options: for its help, "
                                   f"{ctx.command_path} --help (or civicat help {self.name})", ctx=ctx)
        text = next((param for param in self.params if isinstance(param, click.Argument)
                     and param.human_readable_name in TEXT_ARGUMENTS), None)
        if text is None:
            return super().parse_args(ctx, args)
        # `civicat search building permits`: click's "Got unexpected extra argument (permits)"
        # named neither the argument nor the quotes; the extra words kept to be said
        ctx.allow_extra_args = True
        rest = super().parse_args(ctx, args)
        if ctx.args:
            words = shlex.quote(" ".join([ctx.params[text.name], *ctx.args]))
            raise click.UsageError(f"{text.human_readable_name} is one argument, and {len(ctx.args) + 1} words were "
                                   f"given: quote them as one ({ctx.command_path} [OPTIONS] {words})", ctx=ctx)
        return rest


def _numbers_after_wait(command: click.Command, ctx: click.Context, args: list[str]) -> list[str]:
    """`args` with a negative number after an option whose value may be left out, or attached
    to it, read as its value (`--wait -5`, `--wait=-5`: out of range, said as for any option;
    `--wait -0` is 0), where click read it as the next option; a number
    given to a WaitFlag (`harvest --wait 5`: click's "Got unexpected extra argument (5)") refused
    naming --wait-minutes, unless it may be an argument of the command not given yet (`retire
    --wait 311`: the portal whose id is 311; a UID of records' is never a bare number). Option
    values are stepped over, and nothing after `--` is read."""
    options = {opt: param for param in command.params if isinstance(param, click.Option) for opt in param.opts}
    # the words a command's arguments of a fixed count take (retire's PORTAL_ID), less those given so far
    arguments_left = sum(param.nargs for param in command.params if isinstance(param, click.Argument)
                         and param.nargs > 0)
    read, at = [], 0
    while at < len(args):
        word = args[at]
        if word == "--":
            return read + args[at:]
        option, attached, value = word.partition("=") if word.startswith("--") else (word, "", "")
        param = options.get(option)
        following = args[at + 1] if at + 1 < len(args) else None
        at += 1
        if param is None and not word.startswith("-"):
            arguments_left -= 1
        if isinstance(param, WaitFlag) and (attached or following is not None and _a_number(following)
                                            and arguments_left <= 0):
            raise click.UsageError(_wait_flag_given(option, value if attached else following, ctx), ctx=ctx)
        given = value if attached else following
        if isinstance(param, ValueMayBeLeftOut) and given is not None and given.startswith("-") and _a_number(given):
            param.type.convert(given, param, ctx)   # (out of range: click's BadParameter, as for any option)
            # in range with a '-', a zero (the ranges of ours start at 0): given as 0, which click's
            # parser takes for a value (`--wait=-0` too was "No such option '-0'")
            read.append(f"{option}=0")
            at += 0 if attached else 1
            continue
        read.append(word)
        takes_the_next = not (param is None or param.is_flag or param.count or attached or following is None
                              or isinstance(param, ValueMayBeLeftOut) and following.startswith("-"))
        if takes_the_next:   # (its value, whatever it looks like: `--db --wait` names a file)
            read.append(following)
            at += 1
    return read


def _help_as_a_word(command: click.Command, args: list[str]) -> bool:
    """`civicat harvest help`: the word `help` given to a command that takes no argument, as no
    option's value (`harvest --portal help` names a portal) and before any `--`."""
    if any(isinstance(param, click.Argument) for param in command.params):
        return False   # (retire help: the portal whose id is help)
    options = {opt: param for param in command.params if isinstance(param, click.Option) for opt in param.opts}
    for before, word in zip([None, *args], args):
        if word == "--":
            return False
        option = options.get(before)
        if word == HELP and (option is None or option.is_flag or option.count):
            return True
    return False


def _wait_flag_given(option: str, value: str, ctx: click.Context) -> str:
    """What to type instead of `harvest --wait 5`: --wait-minutes 5, when 5 is a bound it takes."""
    minutes = float(value) if _a_number(value) else math.nan
    bound = value if 0 < minutes <= MAX_WAIT_MINUTES else f"N (0 < N <= {MAX_WAIT_MINUTES})"
    return f"{option} takes no value on {ctx.info_name}; to bound the wait use --wait-minutes {bound}"


class CommandGroup(click.Group):
    """The commands; with --log-format json, the error that ends one (bad usage, a bad config,
    a failure: exit 2 or 1; one not expected: exit 1, its traceback in `exception`) is a JSON
    log line too. Errors in the options before the command
    (a --log-format that is neither plain nor json) come before the format is known: click
    prints them as plain text."""

    command_class = Command

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        """civicat's own options; a command's option given before the command (`civicat --db X runs`,
        `civicat --json runs`) said so (click: "No such option '--json'. Did you mean '--version'?")."""
        try:
            return super().parse_args(ctx, args)
        except click.NoSuchOption as exc:
            raise _command_option_before_the_command(exc, self, args) from None

    def get_command(self, ctx: click.Context, cmd_name: str):
        """The command named; `help` as --help is (`civicat help`, `civicat help harvest`: "No such
        command 'help'"), unless a command of that name is added one day. Not one of the commands
        listed (nor of group.commands): the group's --help says it in its last line."""
        command = super().get_command(ctx, cmd_name)
        return help_command if command is None and cmd_name == HELP else command

    def resolve_command(self, ctx: click.Context, args: list[str]):
        """The command, its own arguments kept as given (ctx.meta): click's parser keeps no word it
        took for an option, and the explanation of one names it (_explain_no_such_option)."""
        name, command, rest = super().resolve_command(ctx, args)
        ctx.meta[COMMAND_ARGS] = list(rest)
        return name, command, rest

    def make_context(self, info_name, args, parent=None, **extra) -> click.Context:
        """The group's options read (before any command): a stop then is a stop as everywhere
        (click's own "Aborted!" and exit 1 said the command had failed)."""
        try:
            return super().make_context(info_name, args, parent, **extra)
        except KeyboardInterrupt:
            stopped()

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except click.exceptions.Exit:
            raise
        except (Exception, KeyboardInterrupt) as exc:
            if isinstance(exc, ReportLost):
                report_lost(exc)
                ctx.exit(exc.exit_code)
            # Ctrl-C or SIGTERM (click's own: "Aborted!", exit 1, as if the command had failed); in a
            # DuckDB query, DuckDB's "Query interrupted" error
            if isinstance(exc, KeyboardInterrupt) or stop_requested():
                stopped()
            full = None if isinstance(exc, click.ClickException) else disk_full(exc, ctx.meta.get(DB_PATH))
            if full is not None:   # (no bug: said as a failure, which file system and how much free, no traceback)
                echo_error(f"{ctx.invoked_subcommand} failed: {full}", 1)
                ctx.exit(1)
            if isinstance(exc, click.NoSuchOption):
                exc = _explain_no_such_option(exc, ctx)
                if ctx.meta.get(LOG_FORMAT) != "json":
                    raise exc from None
            if ctx.meta.get(LOG_FORMAT) != "json":
                raise
            if not isinstance(exc, click.ClickException):   # (a bug: Python's traceback was plain text)
                echo_error(f"{ctx.invoked_subcommand} failed on an error civicat did not expect: "
                           f"{type(exc).__name__}: {exc}", 1, (type(exc), exc, exc.__traceback__))
                ctx.exit(1)
            message = exc.format_message()
            if isinstance(exc, click.UsageError) and exc.ctx is not None:
                message += f" (see: {exc.ctx.command_path} --help)"
            echo_error(message, exc.exit_code)
            ctx.exit(exc.exit_code)


def _command_option_before_the_command(exc: click.NoSuchOption, group: click.Group,
                                       args: list[str]) -> click.NoSuchOption:
    """`exc` for an option of civicat's commands given before the command, said where it goes
    (the command named after it, else the commands that take it); any other `exc` as it is."""
    having = [name for name, command in group.commands.items()
              if any(exc.option_name in param.opts for param in command.params if isinstance(param, click.Option))]
    if not having:
        return exc
    named = next((arg for arg in args if arg in group.commands), None)
    commands = "every command" if len(having) == len(group.commands) else ", ".join(having)
    where = (f"an option of the command: it goes after it (civicat {named} {exc.option_name} ...)" if named in having
             else f"an option of {commands}, after the command (civicat {having[0]} {exc.option_name} ...)")
    return click.NoSuchOption(exc.option_name, f"No such option {exc.option_name!r}: {exc.option_name} is {where}",
                              ctx=exc.ctx)


OPTIONS_BEFORE_THE_COMMAND = ("-v", "--verbose", "--log-format", "-V", "--version")   # civicat's own, before the command
COMMAND_ARGS = "civicat.command_args"   # (ctx.meta: the command's arguments as given, CommandGroup.resolve_command)
TEXT_ARGUMENTS = ("QUERY", "TEXT")   # the arguments that are free text (sql, search), which may start with '-'


def _explain_no_such_option(exc: click.NoSuchOption, ctx: click.Context) -> click.UsageError:
    """click's bare "No such option" for the ways a new user meets it after the command, said
    (the error to show: `exc`, added to, or one in its place):
    - one of civicat's own options (`civicat harvest -v`);
    - text that starts with '-' (a query pasted with its leading SQL comment, `-- what changed...`;
      `search "-x y"`, whose "-x" click took for a short option), which goes after `--`;
    - a negative number after a flag (`--full -5`, as if it took a value)."""
    name, command = exc.option_name, ctx.invoked_subcommand
    if name in OPTIONS_BEFORE_THE_COMMAND:
        exc.message += (f" {name} is an option of civicat itself: it goes before the command "
                        f"(civicat {name}{' json' if name == '--log-format' else ''} {command} ...)")
        return exc
    if exc.ctx is None:
        return exc
    given = ctx.meta.get(COMMAND_ARGS, [])
    given = given[:given.index("--")] if "--" in given else given   # (after `--`, no option is read)
    options = {opt: param for param in exc.ctx.command.params if isinstance(param, click.Option)
               for opt in param.opts}
    # the word the option came from: click names its first letter alone (`-x y`: '-x'; `-0.5`: '-0')
    word = next((text for arg in given for text in (arg, arg.partition("=")[2]) if text.startswith(name)), name)
    for before, arg in zip([None, *given], given) if _a_number(word) else ():
        if arg == word and before in options and options[before].is_flag:   # (--wait's: Command.parse_args)
            exc.message = f"{before} takes no value, and {word!r} is no option"
            return exc
    if "-" + word.partition("=")[0] in options:   # (`-limit`: one dash short)
        exc.message = f"No such option {word.partition('=')[0]!r}: did you mean -{word.partition('=')[0]}?"
        return exc
    arguments = [param.human_readable_name for param in exc.ctx.command.params if isinstance(param, click.Argument)]
    # no option holds a space, and no option of a command is one dash and a word
    looks_like_text = any(character.isspace() for character in word) or not word.startswith("--")
    if arguments and arguments[0] in TEXT_ARGUMENTS and looks_like_text:
        text = word if len(word) <= 40 else word[:40] + "..."
        comment = " (an SQL comment?)" if command == "sql" else ""
        # (no "Did you mean '--help'?" either: it is no option)
        return click.NoSuchOption(name, f"{text!r} is no option but text that starts with '-'{comment}: put `--` "
                                        f"before it, after the options ({exc.ctx.command_path} [OPTIONS] -- "
                                        f"{arguments[0]})", ctx=exc.ctx)
    return exc


def _a_number(text: str) -> bool:
    """Python's (and click's FloatRange's) float() reads it: `-0`, `-inf`, `-1e400`, `nan` too."""
    try:
        float(text)
        return True
    except ValueError:
        return False


class PlainLogFormatter(logging.Formatter):
    """The plain log lines, control characters from portals shown escaped (see printable), and a key in
    a link they name REDACTED, as JsonLogFormatter's (a log is published as an export is: a dataset whose
    source id holds a key is named in the lines of its pull; the catalogue's own rows keep it)."""

    def format(self, record: logging.LogRecord) -> str:
        return printable(redacted_text(super().format(record)))


HELP = "help"   # (the word of `civicat help [COMMAND]`: CommandGroup.get_command)


@click.group(cls=CommandGroup, context_settings={"help_option_names": ["-h", "--help"]},
             epilog=f"`civicat {HELP} COMMAND` (or `civicat COMMAND --help`): a command's options.")
@click.version_option(__version__, "-V", "--version", prog_name="civicat")
@click.option("-v", "--verbose", count=True, help="More log output on stderr (-v info, -vv debug).")
@click.option("--log-format", type=click.Choice(["plain", "json"]), default="plain", show_default=True,
              help="Logs on stderr as plain lines or one JSON object a line.")
def cli(verbose: int, log_format: str) -> None:
    """civicat: harvest city open-data portals into one DuckDB catalogue."""
    click.get_current_context().meta[LOG_FORMAT] = log_format
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    formatter = (JsonLogFormatter() if log_format == "json"
                 else PlainLogFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    # as logging.basicConfig: a host that set up logging (a test runner, a caller) keeps it
    logging.basicConfig(stream=sys.stderr, level=level)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler) and handler.stream is sys.stderr:
            handler.setFormatter(formatter)


@click.command(HELP)
@click.argument("command_name", required=False, metavar="[COMMAND]")
@click.pass_context
def help_command(ctx: click.Context, command_name: str | None) -> None:
    """civicat's help, or a command's: the same as `civicat --help`, `civicat COMMAND --help`."""
    group = ctx.find_root()
    if command_name is None:
        click.echo(group.get_help())
        return
    command = group.command.get_command(group, command_name)
    if command is None:
        import difflib

        names = group.command.list_commands(group)
        near = difflib.get_close_matches(command_name, names, n=1)
        raise click.UsageError(f"No such command {command_name!r}" + (f" (did you mean {near[0]!r}?)" if near else "")
                               + f": civicat's commands are {', '.join(names)}", ctx=ctx)
    click.echo(command.get_help(click.Context(command, info_name=command_name, parent=group)))


MAX_WAIT_MINUTES = 10080   # a week, as a portal's max_minutes


class NumberRange(click.FloatRange):
    """click's FloatRange, NaN refused as out of it: click let `nan` through every bound (each
    comparison with it is false), and a wait of `--wait-minutes nan` had a deadline that never
    came: it waited as long as it took, the bound the user asked for lost."""

    def convert(self, value, param, ctx):
        number = super().convert(value, param, ctx)
        if math.isnan(number):
            self.fail(f"{value} is not in the range {self._describe_range()}.", param, ctx)
        return number


@dataclass(frozen=True)
class Wait:
    """How long a writing command waits for the catalogue (another writer, a process holding
    the DuckDB file): `until` a time.monotonic() deadline (-inf: not at all, inf: as long as it
    takes); `minutes` as asked with --wait-minutes."""
    until: float
    minutes: float | None = None


def wait_options(command):
    """--wait and --wait-minutes N, given to `command` as one `wait` (a Wait), its deadline
    counted from the start: the lock and the DuckDB file share the bound."""
    @functools.wraps(command)
    def with_wait(*args, wait: bool, wait_minutes: float | None, **kwargs):
        if wait and wait_minutes is not None:   # (--wait-minutes won, unsaid: a bound the user thought lifted)
            raise click.UsageError("--wait and --wait-minutes contradict each other: --wait waits as long as it "
                                   "takes, --wait-minutes N N minutes at most; give one")
        until = (time.monotonic() + wait_minutes * 60 if wait_minutes is not None
                 else math.inf if wait else -math.inf)
        return command(*args, wait=Wait(until, wait_minutes), **kwargs)

    with_wait = click.option(
        "--wait-minutes", type=NumberRange(0, MAX_WAIT_MINUTES, min_open=True), metavar="N",
        help="Wait as --wait does, for N minutes at most (from the start), then exit 2 naming the holder.")(with_wait)
    return click.option(
        "--wait", cls=WaitFlag, is_flag=True,
        help="If another process holds the catalogue (a civicat writer, a notebook), wait for it instead of "
             "exiting 2, as long as it takes.")(with_wait)


def writer_lock(db_path: Path, wait: Wait, *, pulls_records: bool = False, makes_the_catalogue: bool = False):
    """The catalogue's single-writer lock; another writer → exit 2 with who holds it; a DuckDB
    file that is no civicat catalogue (another program's database; an empty one, unless the writer
    `makes_the_catalogue`: a harvest) → exit 2 saying what it lacks, before the writer opens it (its
    migrations would add civicat's tables to it). `pulls_records`: the writer replaces records
    folders (an export waits for it, or refuses)."""
    from catalog.folder import UNKNOWN, FolderOfAnother, why_not_its_folder
    from catalog.lock import CatalogueBeingWritten, WriterLock
    from catalog.read_copy import catalogue_of
    from catalog.versions import read_from_file

    catalogue = catalogue_of(db_path)
    if catalogue is not None:   # (what a writer wrote there, the catalogue's next writer would replace unread)
        raise Refused(f"{db_path} is the read copy of {catalogue}, replaced whole by the catalogue's next writer: "
                      f"write into the catalogue itself (--db {catalogue})")
    lock = WriterLock(db_path, wait_until=wait.until, pulls_records=pulls_records)
    try:
        lock.acquire()
    except CatalogueBeingWritten as exc:
        raise Refused(str(exc)) from None
    except OSError as exc:   # its folder cannot be made or written (a file in the way, no permission)
        raise _cannot_open(db_path, in_words(exc, db_path.parent)) from None
    # (checked under the lock: a read-only open as another civicat writer opens the file would keep it
    # out; one open for both checks, ~50 ms each)
    try:   # (before the check reads it: a file put there meanwhile is another than the one checked)
        lock.checked_file = os.stat(db_path)
    except FileNotFoundError:
        lock.checked_file = None
    lock.found_no_file = not (lock.checked_file or _wal_path(db_path).exists())
    refused, identity = read_from_file(db_path, lambda con: _refused_or_id(con, db_path),
                                       unopened=(None, UNKNOWN)) or (None, None)
    if refused is not None and not (refused.empty and makes_the_catalogue):
        lock.release(remove=True)
        raise Refused(str(refused))
    # the files beside it another catalogue's (one folder, two catalogues): refused before its
    # repairs, requests or pulls touch them (claimed in its name once it is open: open_for_writing)
    try:
        why_not = why_not_its_folder(db_path, identity)
    except FolderOfAnother as exc:
        why_not = str(exc)
    if why_not:
        lock.release(remove=True)
        raise Refused(why_not)
    return lock


def _refused_or_id(con, db_path: Path):
    """(why the database on `con` is no civicat catalogue, None), or (None, its id: catalog.folder)."""
    from catalog.folder import catalogue_id
    from catalog.versions import not_a_catalogue

    refused = not_a_catalogue(con, db_path)
    return refused, None if refused else catalogue_id(con)


def replaced_as_it_ran(lock, exc: Exception) -> Refused:
    """The refusal (exit 2) of a writer whose catalogue file another process replaced as it ran,
    found as the store attached it again (catalog.store.CatalogueReplaced): that file never written;
    said in the lock's record as a crash (the runs it leaves unfinished are closed by the next harvest)."""
    note_crash(lock, exc)
    return Refused(f"{exc}; this run stopped there: run again once the file at that path is the catalogue to "
                   "write, or give --db a path of its own")


def note_crash(lock, exc: Exception) -> None:
    """An error civicat did not expect ends a writer (the catalogue's disk full, a bug): said in
    its lock's record, so that the next harvest closes the runs it left unfinished naming it
    (catalog.lock.WriterLock.note_crash). A refusal of click's is no crash."""
    if not isinstance(exc, click.ClickException):
        lock.note_crash(exc)


def open_for_writing(opener, db_path: Path, wait: Wait, lock):
    """`opener(db_path)` (a Store, a connection) once no other process holds the DuckDB file:
    a notebook or script with the catalogue open (even read-only) keeps a writer out. `lock`: the
    writer's (writer_lock), let go with what this run made where the folder is refused (_claimed_folder)."""
    import duckdb

    from catalog.lock import file_holder, file_locked
    from catalog.store import CatalogueReplaced, CatalogueTooNew

    waiting_for, copy_done, made = None, False, None
    # (none at writer_lock's check: this run makes it, and a file there since, made by another program
    # between that check and this one, is never opened as the catalogue; until session 44 it was)
    to_make = lock.found_no_file
    _remove_left_by_dead_runs(db_path)
    while True:
        try:
            # (once: a notebook writing it would be warned of every 2 s)
            if not (copy_done or to_make) and db_path.exists():
                # (the file held: waited for as the opener's refusal is; only the file checked is copied)
                bring_read_copy_up_to_date(db_path, lock.checked_file)
                copy_done = True
            try:
                made = made or _made_new(db_path, none_found=to_make)
            except FileExistsError:   # (not there a moment before: another program's, never opened as the catalogue)
                lock.release(remove=True)
                raise Refused(f"{db_path} was made by another process as this run was making the catalogue there "
                              "(no file was there a moment before): nothing done, that file left as it is; run "
                              "again if it is the catalogue, or give --db a path of its own") from None
            to_make = False
            # (the file made, or the one checked: another put at the path since is never migrated; until
            # session 44 a file replaced between writer_lock's check and this open was)
            opened = opener(db_path, checked=made or lock.checked_file)
            return _claimed_folder(opened, db_path, lock, made)
        except CatalogueTooNew as exc:   # (a newer civicat's schema: never written by this one)
            raise _cannot_open(db_path, exc) from None
        except CatalogueReplaced as exc:
            raise Refused(f"{exc}: nothing done, that file left as it is; run again if it is the catalogue, or "
                          "give --db a path of its own") from None
        except duckdb.IOException as exc:
            if not file_locked(exc):
                raise _cannot_open(db_path, exc) from None
            made = None   # (another process opened the file this run made: what it holds now may be that one's)
            who = file_holder(exc)
            left = wait.until - time.monotonic()
            if left <= 0:
                raise Refused(f"{db_path} is open in {who}, which keeps a writer out (DuckDB allows no writer "
                              "beside another process's connection): "
                              + (f"still open after --wait-minutes {wait.minutes:g}" if wait.until > -math.inf
                                 else "close it, or pass --wait (or --wait-minutes N)")) from None
            if who != waiting_for:   # once a holder, not every 2 seconds: a night's wait filled the cron mail
                logging.getLogger("civicat").warning("%s is open in %s; waiting for it to close", db_path, who)
                waiting_for = who
            time.sleep(min(2, left))


def _claimed_folder(opened, db_path: Path, lock, made: os.stat_result | None):
    """`opened` (a Store, a connection) once the files beside the catalogue are recorded as its own
    (catalog.folder.claim: its id, made by its migrations, now there); closed, exit 2, where another
    catalogue claimed them meanwhile (two writers of two new catalogues starting at once in one
    folder: each passed writer_lock's check before either had claimed it). The catalogue this run
    made (`made`: its file as the open left it), which holds nothing yet, is taken away then with its
    log and its lock file, as a refusal before the open leaves nothing (a stray catalogue in the
    folder was found by the user's retry, and by a listing); a file made before this run stays."""
    from catalog.folder import FolderOfAnother, catalogue_id, claim

    try:
        claim(db_path, catalogue_id(getattr(opened, "con", opened)))
    except FolderOfAnother as exc:
        opened.close()
        if made is not None:
            _take_back_made(db_path, made)
            lock.release(remove=True)
        raise Refused(str(exc)) from None
    except OSError as exc:   # (its folder not writable: nothing beside the catalogue could be written either)
        opened.close()
        raise _cannot_open(db_path, in_words(exc, db_path.parent)) from None
    return opened


def _wal_path(db_path: Path) -> Path:
    return db_path.with_name(db_path.name + ".wal")


def _made_new(db_path: Path, none_found: bool = False) -> os.stat_result | None:
    """A new, empty catalogue file made at `db_path` where there is none (nor its log), its stat (this
    run's file: _take_back_made); None where a file is there, unless `none_found`: the writer's check
    under its lock found none (writer_lock), so a file there now is another program's, made since
    (FileExistsError, below). Made under a hidden name beside it and
    linked to `db_path`, which fails where a file is: a file another program made there at that moment
    is never taken for this run's (an existence check and DuckDB's open left microseconds between
    them, and a refused claim removed that program's file), nor opened as the catalogue:
    FileExistsError (under the writer lock no civicat writer makes it meanwhile). A file system without
    hard links (exFAT, vfat) has it renamed there by a rename that refuses a file there (RENAME_NOREPLACE;
    until session 43 a plain rename after a check, which replaced a file made in between); one with
    neither (some FUSE mounts) after a check of the path, microseconds before the rename."""
    from catalog import uncut
    from catalog.files import rename_where_none
    from catalog.lock import STORAGE_VERSION

    if db_path.exists() or _wal_path(db_path).exists():
        if none_found:
            raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(db_path))
        return None
    new = db_path.with_name(f".{db_path.name}.{os.getpid()}.new")
    new.unlink(missing_ok=True)   # (a run of this pid killed here before: never the catalogue)
    try:
        uncut.connect(str(new), config={"storage_compatibility_version": STORAGE_VERSION}).close()
        made = os.stat(new)
        try:
            os.link(new, db_path)
        except FileExistsError:
            raise
        except OSError:   # (no hard links there)
            if not rename_where_none(new, db_path):
                if db_path.exists():
                    raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(db_path)) from None
                os.rename(new, db_path)
        return made
    finally:
        new.unlink(missing_ok=True)


# how much later than the newest of a killed run's `.NAME.PID.new` files the process that has PID now
# must have started to be taken for another (a clock tick, and a clock set meanwhile, either way)
STARTED_SINCE_SLACK_SECONDS = 1.0


def _remove_left_by_dead_runs(db_path: Path) -> None:
    """The `.NAME.PID.new` files beside the catalogue (_made_new's) of runs that were killed as they
    made it, and DuckDB's log of one (`.NAME.PID.new.wal`: a kill as its open wrote): an empty
    database, or a second name of the catalogue where the kill came after the link. Only this
    catalogue's name, and never a live writer's (_run_gone). Said in the log; one that cannot be
    removed is said, not raised."""
    from catalog.folder import FOLDER_ENTRIES_READ

    left = re.compile(rf"\.{re.escape(db_path.name)}\.([1-9][0-9]{{0,9}})\.new(\.wal)?")
    runs: dict[int, list[os.DirEntry]] = {}
    try:
        with os.scandir(db_path.parent) as entries:
            for count, entry in enumerate(entries):
                if count < FOLDER_ENTRIES_READ and (named := left.fullmatch(entry.name)):
                    runs.setdefault(int(named.group(1)), []).append(entry)
    except OSError:
        return
    for pid, files in runs.items():
        gone = _run_gone(pid, files)
        if gone is None:
            continue
        for entry in sorted(files, key=lambda entry: not entry.name.endswith(".wal")):   # (the log first)
            try:
                os.unlink(entry.path)
                logging.getLogger("civicat").info("removed %s, left by a run (process %d%s) killed as it made the "
                                                  "catalogue", entry.path, pid, gone)
            except FileNotFoundError:
                pass
            except OSError as exc:
                logging.getLogger("civicat").warning("%s, left by a run killed as it made the catalogue, could not "
                                                     "be removed: %s", entry.path, exc.strerror or exc)


def _run_gone(pid: int, files: list[os.DirEntry]) -> str | None:
    """Whether the run that made `files` (its `.NAME.PID.new` and log) is gone: None where it may
    run still, else what is said of process `pid` ("": gone; ", whose PID another process has now").
    Under the writer lock no other civicat writer of the catalogue runs, but a PID is given anew:
    the process with it now is another one where it started after the files were made (its start,
    /proc/PID/stat), or holds no flock (a writer making the catalogue holds its lock; /proc/locks).
    Until session 44 a reused PID kept its files for good. Where /proc cannot tell (not Linux, or
    another PID namespace's /proc), the PID alone: its files stay while a process has it."""
    from catalog.lock import flock_holders
    from catalog.scratch import process_alive, process_started_at

    if pid == os.getpid():
        return None
    if not process_alive(pid):
        return ""
    try:
        ours = os.readlink("/proc/self") == str(os.getpid())   # (/proc numbers processes as os.kill does)
        made = max(entry.stat(follow_symlinks=False).st_mtime for entry in files)
    except OSError:
        return None
    if not ours:
        return None
    started = process_started_at(pid)
    holders = flock_holders()   # (a true list where it names this writer, which holds its lock)
    if (started is not None and started > made + STARTED_SINCE_SLACK_SECONDS) or \
            (holders is not None and os.getpid() in holders and pid not in holders):
        return ", whose PID another process has now"
    return None


def _take_back_made(db_path: Path, made: os.stat_result) -> None:
    """The catalogue file this run made (`made`: as its open left it) removed, its log first (a kill
    between the two leaves the file, checkpointed, not a log without its file); under the writer
    lock, so no other civicat writer has opened it since. Not when the path holds another file now."""
    try:
        if not os.path.samestat(os.stat(db_path), made):
            return
        _wal_path(db_path).unlink(missing_ok=True)
        db_path.unlink()
    except OSError as exc:   # (said, not raised: the refusal is what the user must read)
        logging.getLogger("civicat").warning("%s, made by this run, could not be removed: %s", db_path, exc)


def bring_read_copy_up_to_date(db_path: Path, checked: os.stat_result | None = None) -> None:
    """Before a writer opens the catalogue, under its lock: the read copy of the catalogue's last
    write, for the readers while it writes. The last writer's copy is missing when it was stopped
    or killed, or its copy failed; what a writer killed at the wrong moment left is put right
    first (catalog.read_copy.put_right: its WAL, its records pulls not recorded). DuckDB's lock
    error when another process has the file open for writing: the caller waits for it, and calls
    again (not the opener at once: that process gone meanwhile, it replayed the WAL, the copy
    left behind it). `checked`: the file writer_lock checked: another put at the path since is neither
    put right nor copied (CatalogueReplaced; until session 45 the path was copied, whatever it held)."""
    from catalog.read_copy import put_right

    put_right(db_path, checked=checked)
    publish_read_copy(db_path, if_stale=True, checked=checked)


def publish_read_copy(db_path: Path, *, if_stale: bool = False, checked: os.stat_result | None = None) -> str | None:
    """After a writer has closed the catalogue, still under its lock: the read copy that readers
    open while the next writer holds the file (catalog.read_copy). Not after a stop (Ctrl-C,
    SIGTERM), whose cleanup stays short: the next writer publishes it before it opens the
    catalogue (`if_stale`: when the copy is not of the catalogue's last write). Returns why the
    copy was not made when it was for want of room (its file system short of a copy, or full), else None.
    `checked`: the file the writer checked or wrote (catalog.read_copy.publish's); another at the path now (a
    backup put back as the writer ran) is CatalogueReplaced: what the writer wrote went into the file it
    replaced (until session 45 overlap, and a writer whose checkpoints all worked, exited 0, a warning said)."""
    from catalog.read_copy import is_current, publish
    from catalog.store import CatalogueReplaced, how_replaced

    if why := how_replaced(db_path, checked):
        raise CatalogueReplaced(f"{db_path} was {why} after this run checked it was the catalogue: what this run "
                                "wrote went into the file that was there, not into that one")
    no_room: list[str] = []
    if not stop_requested() and not (if_stale and is_current(db_path)):
        published = publish(db_path, no_room=no_room.append, checked=checked)
        if published:
            logging.getLogger("civicat.read_copy").info("published the read copy %s (%d bytes, %d of them written) "
                                                        "in %.2f s", published.path, published.bytes,
                                                        published.written, published.seconds)
    return no_room[0] if no_room else None


@cli.command()
@click.option("--portal", "portal_ids", multiple=True, metavar="ID", help="Harvest only this portal (repeatable).")
@click.option("--full", is_flag=True, help="No conditional requests; re-map every dataset and rewrite those whose mapped record changed.")
@click.option("--records", "with_records", is_flag=True,
              help="Also pull the records of each portal's chosen datasets (config `records`).")
@click.option("--workers", type=click.IntRange(1, 64), default=4, show_default=True,
              help="Portals harvested at the same time (writes to the catalogue stay one at a time).")
@wait_options
@db_option
@config_option
@json_option
@pandas_kept_out()   # the whole run's process: see catalog.lazy
def harvest(portal_ids, full, with_records, workers, wait, db_path, config_path, as_json):
    """Harvest all (or the named) portals into the catalogue."""
    from catalog.store import CatalogueReplaced, Store
    from harvester.config import ConfigError
    from harvester.http import HttpClient, ValidatorCache
    from harvester.mapping import workers_from_env
    from harvester.pipeline import HarvestInterrupted, portals_not_in_config
    from harvester.pipeline import harvest as run_harvest

    config = read_config(config_path)
    try:
        portals = config.select(list(portal_ids))
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None
    refuse_unusable_keys(portals)

    try:
        workers_from_env()
        http = HttpClient.from_env(cache=None if full else ValidatorCache(db_path.parent / "http_cache"))
    except ValueError as exc:   # (a CIVICAT_* variable: not the command line's)
        raise Refused(str(exc)) from None
    lock = writer_lock(db_path, wait, pulls_records=with_records and any(p.records for p in portals),
                       makes_the_catalogue=True)
    interrupted = False
    try:
        store = open_for_writing(Store, db_path, wait, lock)
        unfinished = store.close_interrupted_runs(datetime.now(UTC), lock.crash)
        if unfinished.get("Crashed"):
            logging.getLogger("civicat.harvest").warning(
                "%d portal run(s) of an earlier harvest never finished: it ended on an error (%s): marked failed "
                "(Crashed)", unfinished["Crashed"], lock.crash.get("error"))
        if unfinished.get("Interrupted"):
            logging.getLogger("civicat.harvest").warning(
                "%d portal run(s) of an earlier harvest never finished: its process ended without a word (killed, or "
                "the machine stopped): marked failed (Interrupted)", unfinished["Interrupted"])
        lock.crash_read()
        bars: dict = {}
        progress = _progress_bars(bars) if sys.stderr.isatty() and not as_json else None
        try:
            try:
                report = run_harvest(portals, store, http, on_progress=progress, full=full, records=with_records,
                                     workers=workers)
            except HarvestInterrupted as exc:
                report, interrupted = exc.run, True
            finally:
                for bar in bars.values():
                    bar.close()
            report.not_in_config = portals_not_in_config(store.con, [p.id for p in config.portals])
        finally:
            store.close()
        copy_not_made = publish_read_copy(db_path, checked=store.attached_file)
    except CatalogueReplaced as exc:   # (as it ran, after a checkpoint that failed: catalog.store)
        raise replaced_as_it_ran(lock, exc) from None
    except Exception as exc:
        note_crash(lock, exc)
        raise
    finally:
        lock.release()

    finished()   # (stored and published: a stop from here on changes neither the report nor the exit code)
    if as_json:
        echo_json(report.as_dict())
    else:
        rows = [[p.portal_id, p.status, p.seen, p.new, p.changed, p.unchanged, p.removed, p.errors, f"{p.seconds:.1f}"]
                + ([f"{p.records_pulled}/{p.records_pulled + p.records_failed}", p.record_rows] if with_records else [])
                for p in report.portals]
        echo_rows(rows, ["portal", "status", "seen", "new", "changed", "unchanged", "removed", "errors", "seconds"]
                  + (["records", "rows"] if with_records else []), first=2)
        for p in report.portals:
            if p.status != "ok":
                echo_error(f"{p.portal_id}: FAILED: {p.error_message}", 1)
            elif p.error_message:   # (stored, then stopped in the upkeep after its merge)
                click.echo(printable(f"{p.portal_id}: {p.error_message}"), err=True)
        for portal_id, live in report.not_in_config.items():
            click.echo(f"{portal_id}: not in {config_path}, {counted(live, 'live dataset')} kept")
        for p in report.portals:
            if p.secrets_published:
                click.echo(wrapped(printable(secrets_published_line(p))))
    if report.not_in_config:
        logging.getLogger("civicat.harvest").warning(
            "portals in the catalogue but not in %s keep their datasets live in search, overlap and exports: %s; "
            "if they are gone for good, `civicat retire PORTAL_ID` marks their datasets removed",
            config_path, ", ".join(f"{portal_id} ({counted(live, 'live dataset')})"
                                   for portal_id, live in report.not_in_config.items()))
    if interrupted:
        stored = sum(p.status == "ok" for p in report.portals)
        echo_error(f"Interrupted: {stored} portal{'s' * (stored != 1)} stored before {stopped_by()}; the others keep "
                   "their previous catalogue", stopped_exit_code())
        sys.exit(stopped_exit_code())
    if report.ok:
        exit_if_no_room_after_storing("every portal was stored", store.checkpoint_found_no_room, copy_not_made)
    sys.exit(0 if report.ok else 1)


# uids of the datasets publishing a secret named in a portal's line of the harvest's text report (--json: more)
SECRETS_NAMED_IN_TEXT = 3


def secrets_published_line(p) -> str:
    """The line of a harvest's report that says a portal's live datasets publish a secret (PortalReport.
    secrets_published), every night it is so: the cron job's reader is the one to tell the publisher."""
    named = p.secrets_named[:SECRETS_NAMED_IN_TEXT]
    more = p.secrets_published - len(named)
    return (f"{p.portal_id}: {counted(p.secrets_published, 'live dataset')} "
            f"publish{'es' if p.secrets_published == 1 else ''} a secret in a link (a key, a signature, a password): "
            f"{', '.join(named)}{f' and {more} more' if more > 0 else ''}; kept in the catalogue as published, "
            "exported as REDACTED; the portal's publisher should take it out and change the key (SecretInLink "
            "warnings name the fields)")


def exit_if_no_room_after_storing(what_stood: str, checkpoint: OSError | None, copy_not_made: str | None) -> None:
    """Exit NO_ROOM_AFTER_STORING, stderr's last line saying why, when a writer whose work is stored
    found no room for the catalogue's checkpoint or its read copy: said the night it happens (cron
    sees a non-zero exit), not found later by a reader of yesterday's copy."""
    if checkpoint or copy_not_made:
        echo_error(f"{what_stood}, but {_no_room_after_storing(checkpoint, copy_not_made)}", NO_ROOM_AFTER_STORING)
        sys.exit(NO_ROOM_AFTER_STORING)


def _no_room_after_storing(checkpoint: OSError | None, copy_not_made: str | None) -> str:
    """What a full disk kept from a writer whose work is stored: the catalogue's checkpoint as
    it closed (its commits in the write-ahead log alone, replayed by the next open; no read copy made
    of it), or the read copy (`copy_not_made`, catalog.read_copy.publish's words)."""
    if checkpoint is None:
        return copy_not_made
    return (f"the catalogue could not be checkpointed as it closed: {checkpoint}; its commits are kept in its "
            "write-ahead log, which the next open replays, and its read copy was not refreshed (readers while a "
            "writer holds the catalogue read the previous copy)")


def _progress_bars(bars: dict):
    from tqdm import tqdm

    # stderr's size, as tqdm reads it; a terminal that says none (0 x 0: script(1), a container's
    # tty before its first resize) got no bar from tqdm, each beyond a height of 0 rows: then
    # $COLUMNS and $LINES, else 80 x 24 (shutil)
    try:
        columns, lines = os.get_terminal_size(sys.stderr.fileno())
    except (OSError, ValueError):
        columns = lines = 0
    fallback = shutil.get_terminal_size()
    columns, lines = columns or fallback.columns, lines or fallback.lines

    def update(portal_id: str, done: int, total: int | None) -> None:
        bar = bars.get(portal_id)
        if bar is None:
            bar = bars[portal_id] = tqdm(desc=portal_id, unit=" datasets", file=sys.stderr, leave=True,
                                         ncols=columns, nrows=lines)
        if total is not None and bar.total != total:
            bar.total = total
        bar.update(done - bar.n)

    return update


@cli.command()
@click.argument("uids", nargs=-1, metavar="[UID]...")
@click.option("--overlap", is_flag=True, help="Every dataset in an overlap group (table overlap_groups).")
@click.option("--full", is_flag=True, help="Pull whole datasets, not only what changed since the last pull.")
@wait_options
@db_option
@config_option
@json_option
@pandas_kept_out()   # see catalog.lazy; and a Ctrl-C or SIGTERM in DuckDB's import of it would be lost
def records(uids, overlap, full, wait, db_path, config_path, as_json):
    """Pull the records of datasets into Parquet, with column profiles.

    UID = portal_id:source_id, as `civicat search`, `similar` and `overlap --group N` list them (one whose source
    id holds a key as they print it too: REDACTED, `#2` where two redact alike). Exit 0: every pull completed; 1: at
    least one failed (its previous Parquet is kept); 2: bad usage. With --overlap and no overlap groups yet, says so and exits 0."""
    from catalog.store import CatalogueReplaced, Store
    from harvester.http import HttpClient
    from harvester.mapping import settings_digest
    from harvester.records import pull_uids

    if not uids and not overlap:
        raise click.UsageError("name at least one dataset UID (portal_id:source_id) or give --overlap")
    config = read_config(config_path)
    if not db_path.exists():
        raise Refused(f"no catalogue at {db_path}: run `civicat harvest` first")
    known = {p.id for p in config.portals}
    bad = [u for u in dict.fromkeys(uids) if u.partition(":")[0] not in known or not u.partition(":")[2]]
    if bad:
        raise click.UsageError(_not_of_a_portal(bad, known, config_path, db_path))
    lock = writer_lock(db_path, wait, pulls_records=True)
    try:
        store = open_for_writing(Store, db_path, wait, lock)
    except BaseException:
        lock.release()
        raise
    try:
        shown = ShownUids(store.con)
        uids = [shown.typed(uid) for uid in uids]   # (a uid copied as printed: its key REDACTED)
        # a typo is bad usage, refused before a run is recorded (a failed run would alert monitoring)
        unknown = _uids_not_in_catalogue(store.con, list(dict.fromkeys(uids)), shown)
        if unknown:
            raise click.UsageError("not in the catalogue (a typo? harvest the portal first?): "
                                   + "; ".join(f"{shown(uid)!r}{why}" for uid, why in unknown.items()))
        chosen = list(uids)
        if overlap:
            found = _overlap_uids(store, known)
            if found is None:
                click.echo("no overlap groups yet (table overlap_groups is absent or empty): "
                           "run `civicat overlap` first", err=True)
            else:
                grouped, copies = found
                if copies:   # (until session 43 each copy was pulled: the same records twice)
                    click.echo(f"left out {copies} cop{'y' if copies == 1 else 'ies'} of grouped datasets another "
                               "portal of their city lists: each pulled once, by the copy its group lists", err=True)
                outside = [u for u in grouped if u.partition(":")[0] not in known]
                if outside:
                    click.echo(f"skipped {len(outside)} grouped dataset{'s' * (len(outside) > 1)} of portals not in "
                               f"{config_path}", err=True)
                chosen += [u for u in grouped if u not in outside]
        # the offline demo's catalogue with the default config (its `seattle` is live Seattle's):
        # records of another portal than the one whose datasets the catalogue holds
        pulled = [p for p in config.portals if p.id in {u.partition(":")[0] for u in chosen}]
        refuse_unusable_keys(pulled)   # (the keys of the portals pulled from, not every one's: harvest's rule)
        listed = _settings_listed(store.con, [p.id for p in pulled])
        elsewhere = [p for p in pulled if p.id in listed and settings_digest(p) not in listed[p.id]]
        named = {u.partition(":")[0] for u in uids}
        if any(p.id in named for p in elsewhere):
            raise Refused(_pulled_from_elsewhere([p for p in elsewhere if p.id in named], listed, db_path,
                                                 config_path))
        if elsewhere:   # (--overlap's alone: one portal moved in the config does not hold up every other's pull)
            moved = {p.id for p in elsewhere}
            skipped = [u for u in chosen if u.partition(":")[0] in moved]
            chosen = [u for u in chosen if u.partition(":")[0] not in moved]
            click.echo(f"skipped {len(skipped)} grouped dataset{'s' * (len(skipped) > 1)} of "
                       f"{', '.join(sorted(moved))}: {_pulled_from_elsewhere(elsewhere, listed, db_path, config_path)}",
                       err=True)
        if not chosen:
            if as_json:
                echo_json([])
            else:
                click.echo("nothing to pull")
            return
        try:
            http = HttpClient.from_env()
        except ValueError as exc:   # (a CIVICAT_* variable: not the command line's)
            raise Refused(str(exc)) from None
        _, results = pull_uids(chosen, list(config.portals), store, http, full=full)
        store.close()
        copy_not_made = publish_read_copy(db_path, checked=store.attached_file)
    except CatalogueReplaced as exc:   # (as it ran, after a checkpoint that failed: catalog.store)
        raise replaced_as_it_ran(lock, exc) from None
    except Exception as exc:
        note_crash(lock, exc)
        raise
    finally:
        store.close()
        lock.release()
    if as_json:
        from dataclasses import asdict
        echo_json([{**asdict(r), "uid": shown(r.uid), "error_message": shown.text(r.error_message)}
                   for r in results])
    else:
        echo_rows([[shown(r.uid), r.status, r.mode, r.rows, r.columns, f"{r.seconds:.1f}",
                    r.path or shown.text(r.error_message or "")]
                   for r in results], ["dataset", "status", "mode", "rows", "columns", "seconds", "folder / error"],
                  first=2, alone=6, cut=[not r.path for r in results])
    if all(r.status == "ok" for r in results):
        exit_if_no_room_after_storing("every pull was stored", store.checkpoint_found_no_room, copy_not_made)
    sys.exit(0 if all(r.status == "ok" for r in results) else 1)


def _not_of_a_portal(bad: list[str], known: set[str], config_path: Path, db_path: Path) -> str:
    """Why `records` refuses `bad`, uids naming no portal of the config (or no source id): each with the
    uid it may have meant — one of those portals' the catalogue holds, the uid typed in capitals or with
    spaces or its source id alone ('CHICAGO:YDR8-5ENU': 'chicago:ydr8-5enu', where the config's ids alone
    gave 'chicago:YDR8-5ENU'), else the portal meant (_portals_meant) — and the config's portal ids when one
    has none (until session 42 a single suggestion for any of them dropped the list)."""
    from catalog.query import read_only_connection

    meant: dict[str, str] = {}
    try:   # (a hint: a catalogue that cannot be read now is refused, saying why, once the uids are right)
        con = read_only_connection(db_path)
        try:
            shown = ShownUids(con)
            for uid in bad:
                near = [shown(u) for u in _uids_near(con, uid) if u.partition(":")[0] in known]
                if near:
                    meant[uid] = near[0]
        finally:
            con.close()
    except Exception:
        pass
    for uid in bad:
        if uid not in meant:
            meant.update(zip([uid], _portals_meant([uid], known)))
    said = {uid: repr(uid) + (f" (did you mean {meant[uid]!r}?)" if uid in meant and len(bad) > 1 else "")
            for uid in bad}
    text = (f"{', '.join(said.values())} {'is' if len(bad) == 1 else 'are'} not portal_id:source_id of a portal "
            f"in {config_path}")
    if len(meant) < len(bad):
        return text + f" (portals: {', '.join(sorted(known))})"
    return text + (f" (did you mean {meant[bad[0]]!r}?)" if len(bad) == 1 else "")


def _portals_meant(typed: list[str], known: set[str]) -> list[str]:
    """The portal ids `typed` uids may have meant: the same id in capitals or with spaces
    ('CHICAGO:ydr8-5enu', 'chicago :ydr8-5enu'), else a close spelling; each given back with its
    source id (itself without the spaces a copy from a table adds around it)."""
    import difflib

    meant = []
    for uid in typed:
        portal_id, _, source_id = uid.partition(":")
        plain = re.sub(r"\s+", "", portal_id).lower()
        near = [plain] if plain in known else difflib.get_close_matches(plain, sorted(known), n=1, cutoff=0.8)
        if near and source_id.strip():
            meant.append(f"{near[0]}:{source_id.strip()}")
    return meant


class ShownUids:
    """The uids the commands print, as the exports give them (catalog.links.exported_uids): a dataset
    whose source id holds a secret (a data.json identifier's `?api_key=…`, its source id) is printed with
    it REDACTED, numbered `#2` where two redact alike (a key printed reached the terminal, the scrollback
    and a cron job's mail); and what is printed is read back as the uid it names, so that a uid copied
    from one command's output works in `similar`, `records`. A catalogue whose source ids hold no secret
    (the usual one) costs one query that finds none."""

    def __init__(self, con):
        from catalog.links import exported_uids

        self.shown = exported_uids(con)
        self.meant = {shown: uid for uid, shown in self.shown.items()}
        self._named = None   # (every uid shown otherwise, found in a message: WordsReplaced, made at the first that may name one)

    def __call__(self, uid: str | None) -> str | None:
        return self.shown.get(uid, uid)

    def source_id(self, portal_id: str, source_id: str | None) -> str | None:
        """A source id as printed: its uid's, less `portal_id:`."""
        shown = self.shown.get(f"{portal_id}:{source_id}")
        return source_id if shown is None else shown.partition(":")[2]

    def typed(self, uid: str) -> str:
        """The uid a user typed, or copied as printed (REDACTED, `#2`), names."""
        return self.meant.get(uid, uid)

    def text(self, text: str | None) -> str | None:
        """A message that may name a uid (`no dataset 'p:…?token=…'`): each named as printed, any
        other link holding a secret redacted (catalog.links.redacted_text)."""
        from catalog.links import WordsReplaced, named_as_exported

        # (one pass over the message, the longest uid where two begin alike: until session 44 each uid was
        # looked for in each message, 100 uids x 10,000 messages 0.4 s, 1,000 uids 1.9 s)
        if self.shown and self._named is None and text and ("=" in text or "@" in text or "%" in text):
            self._named = WordsReplaced(self.shown)
        return named_as_exported(text, self._named)


def _uids_not_in_catalogue(con, uids: list[str], shown: ShownUids | None = None) -> dict[str, str]:
    """Each of `uids` that names no live dataset, with why or what it may have meant: a
    removed dataset, the same source id on another portal (or a source id alone, given as a
    uid), close spellings on its portal (_uids_near)."""
    live = {row[0] for row in con.execute("SELECT uid FROM datasets WHERE list_contains(?, uid) AND deleted_at IS NULL",
                                          [uids]).fetchall()}
    unknown = {}
    for uid in (u for u in uids if u not in live):
        removed = con.execute("SELECT deleted_at FROM datasets WHERE uid = ?", [uid]).fetchone()
        if removed:
            unknown[uid] = f" (removed from its portal's listing on {removed[0]:%Y-%m-%d})"
            continue
        near = [shown(u) for u in _uids_near(con, uid)] if shown else _uids_near(con, uid)
        unknown[uid] = f" (did you mean {' or '.join(map(repr, near))}?)" if near else ""
    return unknown


def _uids_near(con, uid: str) -> list[str]:
    """The live uids (at most 3) `uid`, which names none, may have meant: itself typed in capitals or with
    spaces ('DATA-CITYOFCHICAGO-ORG:YDR8-5ENU', 'city: ds-1'), said alone; else the same source id on
    another portal (or a source id given alone, as a uid); else close spellings on its portal."""
    import difflib

    portal_id, colon, source_id = uid.partition(":")
    source_id = source_id if colon else uid
    near = [r[0] for r in con.execute(
        "SELECT uid FROM datasets WHERE lower(regexp_replace(uid, '\\s+', '', 'g')) = ? AND deleted_at IS NULL "
        "ORDER BY uid LIMIT 3", [re.sub(r"\s+", "", uid).lower()]).fetchall()]
    if not near:
        near = [r[0] for r in con.execute("SELECT uid FROM datasets WHERE source_id = ? AND deleted_at IS NULL "
                                          "ORDER BY uid LIMIT 3", [source_id]).fetchall()]
    if not near:
        same_portal = [r[0] for r in con.execute("SELECT uid FROM datasets WHERE portal_id = ? AND deleted_at IS NULL",
                                                 [portal_id]).fetchall()]
        near = difflib.get_close_matches(uid, same_portal, n=3, cutoff=0.8)
    return near


def _settings_listed(con, portal_ids: list[str]) -> dict[str, set[str]]:
    """Portal id -> the digests of the config entries (url, domain, city: harvester.mapping.
    settings_digest) its datasets were last listed with in the catalogue: listing_pages' keys, and
    for a kind whose listing keeps no pages (Open311's one answer), what it keeps of its datasets
    (harvester.portals.settings_kept); a portal never listed, or listed before listing pages were
    kept, is not in it."""
    from harvester.mapping import kept_settings_digest, listed_settings
    from harvester.portals import settings_kept

    listed: dict[str, set[str]] = {}
    if not con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'listing_pages'").fetchone()[0]:
        return listed   # (a read copy older than the table: export reads it as it is)
    for portal_id, namespace in con.execute("SELECT DISTINCT portal_id, split_part(page_key, ':', 1) FROM "
                                            "listing_pages WHERE list_contains(?, portal_id)", [portal_ids]).fetchall():
        listed.setdefault(portal_id, set()).add(listed_settings(namespace))
    for portal_id, settings in settings_kept(con, portal_ids).items():
        listed.setdefault(portal_id, set()).update(kept_settings_digest(*kept) for kept in settings)
    return listed


CONFIGS_LOOKED_AT = 50   # *.toml files read for the config a catalogue was harvested with (_config_harvested_with)


def _config_harvested_with(portal_ids: list[str], listed: dict[str, set[str]], db_path: Path,
                           config_path: Path) -> Path | None:
    """A config other than `config_path`, beside the catalogue or it or in configs/, whose entries
    are those the catalogue's datasets of `portal_ids` were listed with (`listed`; a portal never
    listed there only in it): the offline demo's data/demo/demo.toml, beside its catalogue."""
    from harvester.config import ConfigError, load_config
    from harvester.mapping import settings_digest

    folders = dict.fromkeys([db_path.parent, config_path.parent, Path(DEFAULT_CONFIG).parent])
    candidates = [path for folder in folders if folder.is_dir() for path in sorted(folder.glob("*.toml"))]
    for candidate in candidates[:CONFIGS_LOOKED_AT]:
        try:
            if candidate.resolve() == config_path.resolve() or candidate.stat().st_size > 1 << 20:
                continue
            entries = {p.id: p for p in load_config(candidate).portals}
        except (ConfigError, OSError, ValueError):
            continue
        if all(portal_id in entries and (portal_id not in listed or settings_digest(entries[portal_id])
                                         in listed[portal_id]) for portal_id in portal_ids):
            return candidate
    return None


def _pulled_from_elsewhere(portals: list, listed: dict[str, set[str]], db_path: Path, config_path: Path) -> str:
    """Why `records` refuses `portals`, config entries that are not the ones their datasets were
    listed with (`listed`), and what to type: the config they were, when there is one, else a
    harvest with this one first."""
    ids = [p.id for p in portals]
    matching = _config_harvested_with(ids, listed, db_path, config_path)
    named = "; ".join(f"{p.id} is {p.url}" + (f" (domain {p.domain})" if p.domain else "") for p in portals)
    said = (f"{db_path} holds datasets of {', '.join(ids)} listed from another address, domain or city than "
            f"{config_path} gives ({named}): records pulled from there would be another portal's")
    if matching is not None:
        return said + f"; harvested with {matching}? pass it: --config {matching}"
    return (said + "; pass the config the catalogue was harvested with (--config), or harvest with this one first "
            f"(civicat harvest --config {config_path} --db {db_path} --portal {' --portal '.join(ids)})")


def _overlap_uids(store, known: set[str]) -> tuple[list[str], int] | None:
    """Every dataset in an overlap group, once, or None when there are none (no table, or empty). A dataset two
    portals of its city list is a row of its group by each uid (any finds the group): its records are pulled by
    the copy the group lists (`overlap --group N` shows it), or, that one's portal not configured or the
    copy deleted since the group was saved, by a live copy of a configured portal. -> the uids, and how many
    copies were left out so."""
    exists = store.con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'overlap_groups'").fetchone()[0]
    if not exists:
        return None
    uids = [r[0] for r in store.con.execute("SELECT DISTINCT uid FROM overlap_groups ORDER BY uid").fetchall()]
    if not uids:
        return None
    # (the group saved by the last `civicat overlap`: a copy its portal has since stopped listing is deleted,
    # and pulling it fails; the records are pulled by a live copy where one is)
    live = {uid for (uid,) in store.con.execute(
        "SELECT uid FROM datasets WHERE deleted_at IS NULL AND uid IN (SELECT uid FROM overlap_groups)").fetchall()}
    left_out = set()
    for copies in group_copies(store.con).values():
        for shown, others in copies.items():
            pulled = min((shown, *others), key=lambda u: (u.partition(":")[0] not in known, u not in live))
            left_out.update(u for u in (shown, *others) if u != pulled)
    return [u for u in uids if u not in left_out], len(left_out)


def group_copies(con, group_id: int | None = None) -> dict[int, dict[str, list[str]]]:
    """Per saved overlap group (or group `group_id` alone), its datasets two portals of their city list: the copy
    the group lists -> its other copies, folded by catalog.copies as `civicat overlap` folds its groups."""
    from catalog.copies import copies_of

    where = "" if group_id is None else "WHERE g.group_id = $1"
    rows = con.execute(f"""
        WITH grouped AS (SELECT g.group_id, g.uid FROM overlap_groups g {where}),
             counted AS (SELECT dataset_uid AS uid, count(*) AS column_count FROM columns
                         WHERE dataset_uid IN (SELECT uid FROM grouped) GROUP BY dataset_uid)
        SELECT g.group_id, d.uid, coalesce(nullif(d.city, ''), d.portal_id) AS city, d.title, d.source_id,
               d.modified, coalesce(c.column_count, 0) AS column_count
        FROM grouped g JOIN datasets d USING (uid) LEFT JOIN counted c USING (uid)
        ORDER BY g.group_id, d.uid""", [] if group_id is None else [group_id]).fetchall()
    names = ("uid", "city", "title", "source_id", "modified", "column_count")
    per_group: dict[int, dict[str, list]] = {}
    for group, *values in rows:
        columns = per_group.setdefault(group, {name: [] for name in names})
        for name, value in zip(names, values):
            columns[name].append(value)
    return {group: copies_of(columns) for group, columns in per_group.items()}


@cli.command()
@click.argument("portal_id", metavar="PORTAL_ID")
@wait_options
@db_option
@config_option
@json_option
@pandas_kept_out()   # see catalog.lazy: DuckDB imported it at the first bound parameter (0.3 s of CPU)
def retire(portal_id, wait, db_path, config_path, as_json):
    """Mark removed every dataset of a portal taken out of the config.

    Its history is kept. A portal is never dropped by a harvest (another config, or --portal, must not drop
    it): retire it once it is gone for good. Exit 2: the portal is still in the config,
    or the catalogue holds no live dataset of it."""
    from catalog.store import CatalogueReplaced, Store
    from harvester.pipeline import portals_not_in_config, retire_portal

    configured = [p.id for p in read_config(config_path).portals]
    if portal_id in configured:
        raise click.UsageError(f"{portal_id!r} is still in {config_path}: take it out first (the next harvest "
                               "would list its datasets again)")
    if not db_path.exists():
        raise Refused(f"no catalogue at {db_path}: run `civicat harvest` first")
    lock = writer_lock(db_path, wait)
    try:
        store = open_for_writing(Store, db_path, wait, lock)
        try:
            retired = portals_not_in_config(store.con, configured)
            if portal_id not in retired:
                already = _retired_already(store.con, portal_id)
                if already:   # (no usage line: nothing was mistyped)
                    raise Refused(already)
                raise click.UsageError(f"the catalogue holds no live dataset of a portal {portal_id!r} outside "
                                       f"{config_path}" + (f" (those it holds: {', '.join(retired)})" if retired else ""))
            run_id, report = retire_portal(store, portal_id, datetime.now(UTC))
        finally:
            store.close()
        copy_not_made = publish_read_copy(db_path, checked=store.attached_file)
    except CatalogueReplaced as exc:   # (its close's checkpoint failed, a backup put back meanwhile: harvest's)
        raise replaced_as_it_ran(lock, exc) from None
    finally:
        lock.release()
    if as_json:
        echo_json({"run_id": run_id, "portal_id": portal_id, "removed": report.removed})
    else:
        click.echo(f"{portal_id}: {counted(report.removed, 'dataset')} marked removed (deleted_at), their history "
                   f"kept (run {run_id})")
    exit_if_no_room_after_storing(f"{portal_id} was retired", store.checkpoint_found_no_room, copy_not_made)


def _retired_already(con, portal_id: str) -> str | None:
    """What to say of a portal whose last run was its retirement (a second `retire`, which said
    only that the catalogue held no live dataset of it), or None."""
    from harvester.pipeline import is_retirement
    last = con.execute("""SELECT run_id, started_at, removed FROM harvest_runs WHERE portal_id = ? AND status = 'ok'
                          ORDER BY started_at DESC LIMIT 1""", [portal_id]).fetchone()
    if last is None or not is_retirement(last[0]):
        return None
    run_id, started_at, removed = last
    return (f"{portal_id!r} is already retired: {counted(removed, 'dataset')} marked removed on "
            f"{started_at.astimezone(UTC):%Y-%m-%d %H:%M} UTC (run {run_id}); nothing left to retire")


ERRORS_SHOWN = 1000   # rows of `runs --errors` as a table
ERRORS_SORTED = 10_000   # errors `runs --errors --json` sorts at a time
ERROR_COLUMNS = ("run_id", "portal_id", "source_id", "stage", "error_type", "severity", "message")


def _errors_newest_first(con, run_ids: list[str]) -> Iterator[tuple]:
    """The harvest_errors rows (ERROR_COLUMNS) of `run_ids`, newest first, sorted ERRORS_SORTED at
    a time: one ORDER BY of them all held every message in DuckDB's sort (300,000: 350 MB of
    RSS). The slices are cut at every ERRORS_SORTED-th time, found by sorting the times alone;
    a slice takes all the errors of its last time (so ties never straddle two slices)."""
    cuts = [row[0] for row in con.execute(
        """SELECT occurred_at FROM (SELECT occurred_at, row_number() OVER (ORDER BY occurred_at DESC) AS n
                                    FROM harvest_errors WHERE list_contains(?, run_id))
           WHERE n % ? = 0 ORDER BY occurred_at DESC""", [run_ids, ERRORS_SORTED]).fetchall()]
    newer = None
    for older in [*dict.fromkeys(cuts), None]:
        bounds = [(condition, value) for condition, value in (("occurred_at < ?", newer), ("occurred_at >= ?", older))
                  if value is not None]
        cursor = con.execute(
            f"""SELECT {', '.join(ERROR_COLUMNS)} FROM harvest_errors
                WHERE {' AND '.join(['list_contains(?, run_id)', *(condition for condition, _ in bounds)])}
                ORDER BY occurred_at DESC""", [run_ids, *(value for _, value in bounds)])
        for batch in iter(lambda: cursor.fetchmany(1000), []):
            yield from batch
        newer = older


def _error_shown(error: dict, shown: ShownUids) -> dict:
    """A harvest_errors row as `runs --errors` prints it: its source id and the links its message
    quotes with their secrets REDACTED (ShownUids: the catalogue keeps them as published)."""
    error["source_id"] = shown.source_id(error["portal_id"], error["source_id"])
    error["message"] = shown.text(error["message"])
    return error


# the columns of `runs` a terminal too narrow for its table keeps, a portal's run a line (portal, status, seen, new,
# changed, removed, errors: 42 columns and the portal id), under a line `run RUN_ID` heading its portals' rows: a
# portal's start (the run id holds the run's), seconds, unchanged and the HTTP figures left out, and a failure on a
# line of its own (until session 44, at 80 columns, three lines a portal's run)
RUNS_NARROW = [1, 2, 5, 6, 7, 9, 10]
# and those added back as a wider terminal allows, in this order (then records and rows, after unchanged, where a
# run pulled records): unchanged, seconds, requests, retries, 304s, started last (the run id holds the run's)
RUNS_WIDER = [8, 4, 11, 12, 13, 3]


@cli.command()
@click.option("--limit", default=20, show_default=True, type=click.IntRange(min=1), help="How many runs to show.")
@click.option("--errors", "show_errors", is_flag=True, help="List the errors and warnings of the runs shown.")
@db_option
@json_option
@pandas_kept_out()   # see catalog.lazy: DuckDB imported it at the first bound parameter (0.3 s of CPU)
def runs(limit, show_errors, db_path, as_json):
    """Harvest history: per-portal outcome, counts and errors.

    With --json: a list of the runs' rows; with --errors too, an object {"runs": [...],
    "errors": [...]} (the README's CLI section shows both, keys and examples)."""
    from catalog.query import read_only_connection

    con = _open(read_only_connection, db_path)
    run_ids = [r[0] for r in con.execute(
        "SELECT run_id FROM harvest_runs GROUP BY run_id ORDER BY max(started_at) DESC LIMIT ?", [limit]).fetchall()]
    cursor = con.execute("""
        SELECT run_id, portal_id, status, started_at, seconds, seen, new, changed, unchanged, removed,
               errors, warnings, duplicates, listing_complete, requests, retries, not_modified, bytes,
               records_pulled, records_failed, record_rows, error_type, error_message
        FROM harvest_runs WHERE list_contains(?, run_id) ORDER BY started_at DESC, portal_id""", [run_ids])
    columns = [d[0] for d in cursor.description]
    rows = [dict(zip(columns, r)) for r in cursor.fetchall()]
    # (a failure's message may quote a link holding a key; an error's source id may be one: printed REDACTED)
    shown = ShownUids(con)
    for r in rows:
        r["error_message"] = shown.text(r["error_message"])
    error_rows, errors_left_out = [], 0
    if show_errors:
        # --json gives them all (a script filters them); the table the newest ERRORS_SHOWN, and says so
        if as_json:   # (every one: streamed, as many as a portal's datasets)
            try:
                echo_json_streamed({"runs": rows}, "errors", (_error_shown(dict(zip(ERROR_COLUMNS, r)), shown)
                                                              for r in _errors_newest_first(con, run_ids)))
            finally:
                con.close()
            return
        cursor = con.execute(f"""SELECT {', '.join(ERROR_COLUMNS)} FROM harvest_errors WHERE list_contains(?, run_id)
                                 ORDER BY occurred_at DESC LIMIT {ERRORS_SHOWN}""", [run_ids])
        error_rows = [_error_shown(dict(zip(ERROR_COLUMNS, r)), shown) for r in cursor.fetchall()]
        if len(error_rows) == ERRORS_SHOWN:
            errors_left_out = con.execute("SELECT count(*) FROM harvest_errors WHERE list_contains(?, run_id)",
                                          [run_ids]).fetchone()[0] - ERRORS_SHOWN
    con.close()
    if as_json:
        echo_json(rows)
        return
    if not rows:
        click.echo("no harvest runs yet")
        return
    # records pulled (of those tried) and their rows, as `harvest --records` shows them: only when a run pulled any
    with_records = any(r["records_pulled"] or r["records_failed"] for r in rows)
    # (piped, every value whole; on a terminal a message is cut to its width, marked '…', or on a line of its own)
    headers = (["run", "portal", "status", "started (UTC)", "seconds", "seen", "new", "changed", "unchanged",
                "removed", "errors", "requests", "retries", "304s"] + (["records", "rows"] if with_records else [])
               + ["failure"])
    echo_rows([[r["run_id"], r["portal_id"], r["status"], f"{r['started_at']:%Y-%m-%d %H:%M:%S}",
                f"{r['seconds'] or 0:.1f}", r["seen"], r["new"], r["changed"], r["unchanged"], r["removed"],
                r["errors"], r["requests"], r["retries"], r["not_modified"]]
               + ([f"{r['records_pulled']}/{r['records_pulled'] + r['records_failed']}", r["record_rows"]]
                  if with_records else [])
               + [(f"{r['error_type']}: " if r["error_type"] else "") + (r["error_message"] or "")]
               for r in rows], headers, first=3, alone=len(headers) - 1, cut=True, narrow=RUNS_NARROW,
              heading=0, wider=RUNS_WIDER[:1] + ([14, 15] if with_records else []) + RUNS_WIDER[1:])
    if show_errors:
        click.echo()
        echo_rows([[e["portal_id"], e["source_id"], e["stage"], e["severity"], e["error_type"],
                    e["message"]] for e in error_rows],
                  ["portal", "source id", "stage", "severity", "type", "message"], first=2, alone=5, cut=True,
                  narrow=[0, 1, 2, 3, 4])
        if errors_left_out:
            click.echo(f"... {errors_left_out} more errors and warnings: --json lists them all")


@cli.command()
@click.argument("query")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default=None,
              help="How the rows are printed (in each: a BLOB as base64, an INTERVAL as ISO 8601, a list or "
                   "struct as JSON).  [default: table; piped, tab-separated unless --format table is given]")
@db_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON (the same as --format json).")
def sql(query, fmt, db_path, as_json):
    """Run one read-only SQL query (SELECT) against the catalogue."""
    from catalog.query import QueryRefused, run_query

    if as_json and fmt == "csv":
        raise click.UsageError("--json and --format csv contradict each other: give one")
    # (a table asked for is printed piped too, whole: until session 46 piped was tab-separated whatever was asked)
    table_asked, fmt = fmt == "table", "json" if as_json else fmt or "table"

    try:
        columns, rows = _open(lambda path: run_query(path, query), db_path)
    except QueryRefused as exc:
        raise click.UsageError(str(exc)) from None
    except click.ClickException:
        raise
    except Exception as exc:  # duckdb errors: the message says what was wrong
        raise click.ClickException(str(exc)) from None
    if fmt == "json":
        echo_json([dict(zip(columns, map(json_safe, row))) for row in rows])
    elif fmt == "csv":
        # color=True: click takes ANSI sequences out of text bound for no terminal, values included
        click.echo("".join(csv_lines([columns, *([text_cell(cell) for cell in row] for row in rows)])), nl=False,
                   color=True)
    else:   # (the same text as CSV: one form of a value whatever the format)
        echo_expanded([[text_cell(cell) for cell in row] for row in rows], columns, piped_as_table=table_asked)


@cli.command()
@click.argument("text")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 10000), help="How many hits to show.")
@click.option("--city", "cities", multiple=True, metavar="CITY",
              help="Only this city (its name or portal id, any case; repeatable).")
@click.option("--theme", "themes", multiple=True, metavar="THEME", help="Only datasets of this theme (repeatable).")
@click.option("--type", "types", multiple=True, metavar="TYPE",
              help="Only this asset type: dataset, map, chart, filtered_view, file ... (repeatable).")
@db_option
@json_option
@pandas_kept_out()   # see catalog.lazy: DuckDB imported it at the first bound parameter (0.3 s of CPU)
def search(text, limit, cities, themes, types, db_path, as_json):
    """Ranked full-text search (BM25) of the catalogue's datasets.

    It reads titles, descriptions, keywords, column names and cities. Among the best 200 hits by BM25, titles that are the query (its words and no other,
    in any order; one word too, if the dataset says it beyond the title as much as one
    keyword does) come first, then titles that hold all its words. Past
    them, the 50 shortest titles that can hold all its words are read too: those that are
    the query come first as well. The score is BM25 plus a bonus per tier: it falls down
    the list."""
    from catalog import search as catalogue_search

    if not text.strip():
        raise click.UsageError("give the words to search for")
    con = _open(catalogue_search.open_for_search, db_path)
    try:
        hits = catalogue_search.search(con, text, limit=limit,
                                       filters=catalogue_search.Filters(tuple(cities), tuple(themes), tuple(types)))
        # (a catalogue whose every harvest failed, the quickstart's offline: "'Chicago' is no city or
        # portal id of the catalogue's datasets (those known: none)" under a usage line blamed the city)
        empty = None if hits else _no_dataset(con, db_path)
        if hits:   # (every uid as printed: ShownUids; a title's links as an export gives them)
            shown = ShownUids(con)
            hits = [{**h, "uid": shown(h["uid"]), "title": redacted_text(h["title"]),
                     "themes": [redacted_text(t) for t in h["themes"]] if h.get("themes") else h.get("themes")}
                    for h in hits]
    except catalogue_search.SearchIndexMissing as exc:   # (no harvest yet: nothing to search, said as such)
        hits, empty = [], _no_dataset(con, db_path)
        if empty is None:
            raise Refused(str(exc)) from None
    except catalogue_search.UnknownAssetType as exc:
        raise click.BadParameter(str(exc), param_hint="'--type'") from None
    except (catalogue_search.UnknownCity, catalogue_search.UnknownTheme) as exc:
        hits, empty = [], _no_dataset(con, db_path)
        if empty is None:
            option = "--city" if isinstance(exc, catalogue_search.UnknownCity) else "--theme"
            raise click.BadParameter(str(exc), param_hint=f"'{option}'") from None
    finally:
        con.close()
    if as_json:
        echo_json(hits)
        return
    if empty:
        click.echo(f"no dataset matches {text!r}: {empty}")
        return
    if not hits:
        # the filters named: without them the words may well match, in other cities or types
        filters = "".join(f" {option} {value!r}" for option, values in
                          (("--city", cities), ("--theme", themes), ("--type", types)) for value in values)
        click.echo(f"no dataset matches {text!r}" + (f" with{filters}" if filters else ""))
        return
    # on a terminal the title 80 characters at most (cut at 80 whatever the width until session 42), then what the
    # other columns leave of the width, 20 at least, else on a line of its own below its hit (uids of 37 characters
    # at 80 columns: rows of 96 until session 44); piped, whole
    width = output_width()
    echo_rows([[f"{h['score']:.2f}", h["uid"], h["city"] or "", h["asset_type"] or "",
                one_line(h["title"]) if width is None else cut_to(one_line(h["title"]), 80)] for h in hits],
              ["score", "uid", "city", "type", "title"], first=2, alone=4, cut=True, narrow=[0, 1, 2, 3])


@cli.command(context_settings={"allow_extra_args": True})   # (a group's number given alone: said where it goes)
@click.option("--min-score", type=NumberRange(0.0, 1.0), default=None,
              help="Pairs below this score are neither stored nor grouped (default 0.35).")
@click.option("--pairs", "show_pairs", is_flag=True,
              help="Also list the strong pairs: each dataset's city, title and uid, and why they compare.")
@click.option("--embeddings", "use_embeddings", is_flag=True,
              help=f"Add the embedding signal (needs: {EMBEDDINGS_INSTALL}).")
@click.option("--group", "group_id", type=click.IntRange(min=1), metavar="N", default=None,
              help="Show group N as the last run saved it: its datasets and why they compare (computes nothing).")
@wait_options
@db_option
@json_option
def overlap(min_score, show_pairs, use_embeddings, group_id, wait, db_path, as_json):
    """(Re)compute comparable datasets across cities; print the groups.

    Groups are numbered anew by each run; --group N shows one of the last run's."""
    extra = click.get_current_context().args
    if extra:   # (`civicat overlap 6`, after the table's "group 6": click's "Got unexpected extra argument (6)")
        shown = f": to show group {extra[0]}, civicat overlap --group {extra[0]}" if extra[0].isdigit() else ""
        raise click.UsageError(f"overlap takes no argument, and {extra[0]!r} was given{shown}")
    if group_id is not None:
        computing = [option for option, given in (("--min-score", min_score is not None),
                                                  ("--embeddings", use_embeddings),
                                                  ("--wait", wait.until == math.inf),
                                                  ("--wait-minutes", wait.minutes is not None)) if given]
        if computing:
            raise click.UsageError(f"--group N shows a group of the last `civicat overlap`, computing nothing: "
                                   f"{' and '.join(computing)} {'is' if len(computing) == 1 else 'are'} for "
                                   "computing the groups (give them without --group)")
        # (a few rows read: the detector's modules, and pandas DuckDB would import at the first parameter, kept out)
        with pandas_kept_out():
            return echo_saved_group(group_id, show_pairs, db_path, as_json)
    from catalog import overlap as detector
    from catalog.store import CatalogueReplaced, connect, log_held_here, set_aside_this_runs_log

    if not db_path.exists():
        raise Refused(f"no catalogue at {db_path}: run `civicat harvest` first")
    if use_embeddings:
        from catalog.overlap.embeddings import available
        if not available():
            raise click.UsageError(f"--embeddings needs the optional extra: {EMBEDDINGS_INSTALL}")
    lock = writer_lock(db_path, wait)
    try:
        con = open_for_writing(connect, db_path, wait, lock)
    except BaseException:
        lock.release()
        raise
    log_held = None
    try:
        result = detector.detect(con, detector.DEFAULT_MIN_SCORE if min_score is None else min_score,
                                 use_embeddings=use_embeddings)
        detector.save(con, result)
        empty = None if len(result.catalogue) else _no_dataset(con, db_path)
        pairs = result.pair_rows() if show_pairs else []
        # (as stored, best first: each group's best pair of two of its datasets says why it is one)
        stored = con.execute("SELECT uid_a, uid_b, score, explanation FROM overlap_pairs "
                             "ORDER BY score DESC, uid_a, uid_b").fetchall() if as_json else []
        shown = ShownUids(con)
        # (this run's log as DuckDB holds it: should the checkpoint as it closes fail, the log is left at the path,
        # where a file put there since would have it replayed into it by its next open: set aside then, as the
        # store does for harvest's; until session 46 left there)
        log_held = log_held_here(db_path)
        con.close()
        # (only of the file this run checked and wrote: another put at the path as it ran is neither copied nor
        # taken for stored groups; until session 45 it was published as the read copy, and the run exited 0)
        copy_not_made = publish_read_copy(db_path, checked=lock.checked_file)
    except CatalogueReplaced as exc:
        set_aside = set_aside_this_runs_log(db_path, log_held)
        raise replaced_as_it_ran(lock, CatalogueReplaced(f"{exc}{set_aside}")) from None
    finally:
        con.close()
        lock.release()
    c = result.catalogue
    # most cities first, then most datasets: what a group says across the cities (a city's hundred CCRB
    # tables in three cities came before crime incidents in 21, group ids being numbered by size)
    ordered = sorted(result.groups, key=lambda g: (-len(g.cities), -len(g.uids), g.group_id))
    # (every uid as printed: ShownUids; a title's links as an export gives them)
    groups = [{"group_id": g.group_id, "label": g.label, "datasets": len(g.uids), "cities": g.cities,
               "members": [{"uid": shown(u), "city": c.cities[c.row(u)], "title": redacted_text(c.titles[c.row(u)]),
                            "copies": [shown(copy) for copy in g.copies.get(u, [])]} for u in g.uids]}
              for g in ordered]
    if show_pairs:   # (each dataset named, not only by uid: a reader of the pairs needs no join to know them)
        pairs = [{"uid_a": shown(p["uid_a"]), "city_a": c.cities[c.row(p["uid_a"])],
                  "title_a": redacted_text(c.titles[c.row(p["uid_a"])]), "uid_b": shown(p["uid_b"]),
                  "city_b": c.cities[c.row(p["uid_b"])], "title_b": redacted_text(c.titles[c.row(p["uid_b"])]),
                  **{k: v for k, v in p.items() if k not in ("uid_a", "uid_b")},
                  "explanation": shown.text(p["explanation"])} for p in pairs]   # (a uid it names: as printed)
    if as_json:
        say_why(groups, [(shown(a), shown(b), score, shown.text(explanation)) for a, b, score, explanation in stored])
        payload = {"min_score": result.min_score, "datasets_compared": len(c), "candidate_pairs": result.candidates,
                   "strong_pairs": len(result.pairs.total), "groups": groups}
        if show_pairs:
            payload["pairs"] = pairs
        echo_json(payload)
    else:
        # piped, stdout holds the groups (and pairs) alone, the lines about them on stderr: data on stdout, talk on
        # stderr (`civicat overlap > groups.tsv` a TSV file, a reader of it no line to skip; until session 46 the
        # summary and the hints were written into it, `cut -s` needed to leave them out)
        talk = output_width() is None
        if empty:   # (no table of nothing: a first user's `civicat overlap` before any harvest)
            click.echo(f"no dataset to compare: {empty}", err=talk)
        else:
            echo_overlap_run(result, groups, pairs if show_pairs else None, talk, min_score, use_embeddings, db_path)
    exit_if_no_room_after_storing("the groups were stored", None, copy_not_made)


def echo_overlap_run(result, groups: list[dict], pairs: list[dict] | None, talk: bool, min_score: float | None,
                     use_embeddings: bool, db_path: Path) -> None:
    """`civicat overlap`'s text: the summary, the groups, the pairs (None: not asked) and the hints; the summary,
    the pairs' heading and the hints on stderr where `talk` (piped)."""
    click.echo(wrapped(f"{len(result.catalogue)} datasets compared, {result.candidates} candidate pairs, "
                       f"{len(result.pairs.total)} pairs >= {result.min_score}, {len(groups)} groups"
                       + (", most cities first" if groups else "")), err=talk)
    if groups:
        echo_overlap_groups(groups)
    if pairs is not None:
        click.echo(f"\n{counted(len(pairs), 'pair')}, best first:", err=talk)
        echo_overlap_pairs(pairs)
    if groups:
        # (the pairs asked again as these were computed: --pairs alone would compute other groups)
        computed = (f" --min-score {min_score:g}" if min_score is not None else "") + (
            " --embeddings" if use_embeddings else "")
        echo_overlap_hints(groups[0]["group_id"], None if pairs is not None else f"--pairs{computed}", db_path,
                           err=talk)


CUT = "\u2026"   # the mark of a text cut to fit ('…')


def cut_to(text: str, room: int | None) -> str:
    """`text` in `room` characters at most, ending in '…' where it was cut; whole where room is None (piped)."""
    return text if room is None or len(text) <= room else text[:max(room - 1, 0)].rstrip() + CUT


def fitted(pieces: list[str], room: int | None, separator: str = "; ") -> str:
    """As many of `pieces` as fit in `room` characters, each whole, and of the next the part that fits, ending
    in '…' (a dozen characters at least: a title cut shorter says nothing; else '; …' says more were left out);
    every piece where room is None (piped)."""
    if room is None:
        return separator.join(pieces)
    out = ""
    for piece in pieces:
        joined = out + (separator if out else "") + piece
        if len(joined) <= room:
            out = joined
            continue
        left = room - len(out) - (len(separator) if out else 0)
        if left >= 12 or not out:
            return out + (separator if out else "") + cut_to(piece, left)
        more = separator + CUT
        return out + more if len(out) + len(more) <= room else cut_to(out, room)
    return out


def one_title_a_city(members: list[dict]) -> list[str]:
    """'City: title' of a group's members, a title of each city before a second of any."""
    firsts, others, seen = [], [], set()
    for m in members:
        (others if m["city"] in seen else firsts).append(one_line(f"{m['city']}: {m['title']}"))
        seen.add(m["city"])
    return firsts + others


def piped_examples(group: dict) -> str:
    """A group's examples piped: a title of each of its cities, each whole, then how many of its datasets are not
    named ('; and 64 more'): what a group is, in a line grep finds by any of its cities, where its whole list is
    `overlap --group N`'s and `--json`'s. Until session 45 every member's title (a group of 73: 5.5 KB a line; the
    real catalogues' 321 groups 127 KB, where the terminal's table of 80 columns was 38 KB)."""
    titles = one_title_a_city(group["members"])[:len(group["cities"])]
    more = len(group["members"]) - len(titles)
    return "; ".join(titles) + (f"; and {more} more" if more else "")


def db_named(db_path: Path) -> str:
    """` --db PATH` for a command line to copy, or nothing for the default catalogue."""
    return "" if str(db_path) == DEFAULT_DB else f" --db {shlex.quote(str(db_path))}"


def echo_overlap_groups(groups: list[dict]) -> None:
    """The groups as a table that fits the terminal (its examples, a title of each city first, cut to the
    width); piped, as `sql` pipes its rows (echo_tab_separated: a row a line, its values a tab apart, never
    padded, for `cut -f`, `awk -F'\t'`, a TSV reader; until session 45 the terminal's table, its label padded to the
    widest, which `cut` and a TSV reader took for the label)."""
    width = output_width()
    # tabulate's columns: each as wide as its header and 2, or its widest cell; 2 spaces between. The
    # label takes up to half of what the number columns leave (it says what the group is), the examples the rest;
    # piped, a title of each city, each whole, and how many more (piped_examples)
    fixed = (len("group") + 2) + (len("datasets") + 2) + (len("cities") + 2) + 4 * 2
    label_width = max(len(one_line(g["label"])) for g in groups)
    if width is not None:
        label_width = min(label_width, max(20, (width - fixed) // 2))
    room = None if width is None else max(20, width - fixed - max(len("label") + 2, label_width))
    rows = [[g["group_id"], cut_to(one_line(g["label"]), label_width), g["datasets"], len(g["cities"]),
             fitted(one_title_a_city(g["members"]), room) if width is not None else piped_examples(g)]
            for g in groups]
    headers = ["group", "label", "datasets", "cities", "examples"]
    if width is None:
        echo_tab_separated(rows, headers)
    else:
        click.echo(table_text(rows, headers))


def echo_overlap_hints(first_group: int, pairs_options: str | None, db_path: Path, err: bool = False) -> None:
    """After the groups (and pairs): how to see a group's datasets and why they compare, every pair's uids
    (`civicat overlap` with `pairs_options`, unless they were listed), a dataset's nearest; each line within 80
    columns but for a --db path or a --min-score (a command is never broken: cut, it would not run)."""
    db = db_named(db_path)
    click.echo(f"\na group's datasets and why they compare (group {first_group} here):\n"
               f"  civicat overlap --group {first_group}{db}\n"
               + (f"every pair with its datasets' uids: civicat overlap {pairs_options}{db}\n" if pairs_options else "")
               + f"a dataset's nearest in other cities: civicat similar UID{db}", err=err)


def say_why(groups: list[dict], stored: list[tuple]) -> None:
    """Set each group's `why`: its best pair of two of its datasets among `stored` ((uid_a, uid_b,
    score, explanation), best first, as overlap_pairs keeps them), what makes it one; None if none."""
    group_of = {u: g for g in groups for m in g["members"] for u in (m["uid"], *m.get("copies", ()))}
    for g in groups:
        g["why"] = None
    for uid_a, uid_b, score, explanation in stored:
        g = group_of.get(uid_a)
        if g is not None and g["why"] is None and group_of.get(uid_b) is g:
            g["why"] = {"uid_a": uid_a, "uid_b": uid_b, "score": score, "explanation": explanation}


def echo_overlap_pairs(pairs: list[dict]) -> None:
    """The pairs, best first, each on lines of its own: the score and one dataset, the other below it,
    each by city, title (cut to fit) and uid (whole: what `civicat similar` takes), then the explanation
    whole, wrapped to the width. (A table row of two uids and two titles fits no terminal: until session
    42 the uids were left out, and the explanation cut.)"""
    width = output_width()
    for p in pairs:
        for lead, side in ((f"{p['score']:.2f}  ", "a"), (" " * 6, "b")):
            uid = printable(p[f"uid_{side}"])
            name = cut_to(one_line(f"{p[f'city_{side}']}: {p[f'title_{side}']}"),
                          None if width is None else max(20, width - len(lead) - len(uid) - 2))
            click.echo(f"{lead}{name}  {uid}")
        click.echo(indented(one_line(p["explanation"]), 8, width))


def indented(text: str, indent: int, width: int | None) -> str:
    """An explanation below its datasets: `text` after `indent` spaces, wrapped at spaces to `width`, or whole
    on one line where width is None (piped)."""
    import textwrap

    if width is None:
        return " " * indent + text
    return textwrap.fill(text, width, initial_indent=" " * indent, subsequent_indent=" " * indent,
                         break_on_hyphens=False)


ANOTHER_PORTAL = "  the same on another portal of the city"   # (a copy's line, under its dataset's)


def echo_saved_group(group_id: int, show_pairs: bool, db_path: Path, as_json: bool) -> None:
    """`civicat overlap --group N`: group N as overlap_groups and overlap_pairs hold it (the last run's),
    read from the catalogue as `similar` reads it: its label, cities, datasets (city, title, uid) and why
    it is one (its best stored pair inside), with --pairs every stored pair inside."""
    from catalog.query import read_only_connection

    con = _open(read_only_connection, db_path)
    try:
        members = con.execute("""
            SELECT g.uid, coalesce(d.city, ''), coalesce(d.title, ''), g.label, g.computed_at FROM overlap_groups g
            LEFT JOIN datasets d USING (uid) WHERE g.group_id = ? ORDER BY d.city, d.title, g.uid""",
                              [group_id]).fetchall()
        # (a dataset two portals of its city list is a row of the group by each uid: shown once, as the run shows it)
        copies = group_copies(con, group_id).get(group_id, {})
        saved = con.execute("SELECT count(DISTINCT group_id), max(group_id) FROM overlap_groups").fetchone()
        inside = con.execute("""
            SELECT p.* EXCLUDE (computed_at) FROM overlap_pairs p
            WHERE p.uid_a IN (SELECT uid FROM overlap_groups WHERE group_id = $1)
              AND p.uid_b IN (SELECT uid FROM overlap_groups WHERE group_id = $1)
            ORDER BY p.score DESC, p.uid_a, p.uid_b""", [group_id])
        names = [column[0] for column in inside.description]
        pairs = [dict(zip(names, row)) for row in inside.fetchall()]
        shown = ShownUids(con)
    finally:
        con.close()
    # (every uid as printed: ShownUids; a title's links as an export gives them)
    members = [(shown(uid), city, redacted_text(title), *rest) for uid, city, title, *rest in members]
    copies = {shown(uid): [shown(copy) for copy in others] for uid, others in copies.items()}
    pairs = [{**p, "uid_a": shown(p["uid_a"]), "uid_b": shown(p["uid_b"]), "explanation": shown.text(p["explanation"])}
             for p in pairs]
    db = db_named(db_path)
    if not members:
        if not saved[0]:
            raise Refused(f"no overlap groups saved in {db_path} yet: `civicat overlap{db}` computes them")
        raise click.UsageError(f"no group {group_id}: the last `civicat overlap` saved {saved[0]} groups, numbered "
                               f"1 to {saved[1]}")
    named = {uid: (city, title) for uid, city, title, _, _ in members}
    label, computed_at = members[0][3], members[0][4]
    cities = sorted({city for _, city, _, _, _ in members})
    a_copy = {uid for others in copies.values() for uid in others}
    members = [m for m in members if m[0] not in a_copy]
    group = {"group_id": group_id, "label": label, "datasets": len(members), "cities": cities,
             "members": [{"uid": uid, "city": city, "title": title, "copies": copies.get(uid, [])}
                         for uid, city, title, _, _ in members]}
    say_why([group], [(p["uid_a"], p["uid_b"], p["score"], p["explanation"]) for p in pairs])
    pairs = [{"uid_a": p["uid_a"], "city_a": named[p["uid_a"]][0], "title_a": named[p["uid_a"]][1],
              "uid_b": p["uid_b"], "city_b": named[p["uid_b"]][0], "title_b": named[p["uid_b"]][1],
              **{k: v for k, v in p.items() if k not in ("uid_a", "uid_b")}} for p in pairs]
    if as_json:
        echo_json({**group, "computed_at": computed_at, **({"pairs": pairs} if show_pairs else {})})
        return
    width = output_width()
    click.echo(wrapped(one_line(f"group {group_id}, {label}: {counted(len(members), 'dataset')} of "
                                f"{len(cities)} {'city' if len(cities) == 1 else 'cities'}, saved by `civicat overlap` "
                                f"at {computed_at:%Y-%m-%d %H:%M %Z}")))
    if group["why"] is not None:
        click.echo("why they compare, its best pair:")
        echo_overlap_pairs(pairs[:1])
    click.echo("its datasets:")
    # (the uids a column, each whole; piped, after the widest title, none cut)
    room = (max(len(ANOTHER_PORTAL), *(len(one_line(f"{city}: {title}")) for _, city, title, _, _ in members))
            if width is None
            else max(20, width - max(len(printable(uid)) for uid, *_ in members) - 4))
    for uid, city, title, _, _ in members:
        click.echo(f"  {cut_to(one_line(f'{city}: {title}'), room).ljust(room)}  {printable(uid)}".rstrip())
        for other in copies.get(uid, ()):
            click.echo(f"  {cut_to(ANOTHER_PORTAL, room).ljust(room)}  {printable(other)}")
    if show_pairs:
        click.echo(f"its {counted(len(pairs), 'pair')}, best first:")
        echo_overlap_pairs(pairs)
    click.echo(f"a dataset's nearest in other cities: civicat similar UID{db}")


@cli.command()
@click.argument("uid")
@click.option("--limit", default=10, show_default=True, type=click.IntRange(1, 1000), help="How many to show.")
@db_option
@json_option
def similar(uid, limit, db_path, as_json):
    """The datasets of other cities most comparable to UID, explained.

    UID = portal_id:source_id, as `civicat search` and `overlap --group N` list them (one whose source id holds a
    key as they print it too: REDACTED, `#2` where two redact alike)."""
    from catalog import overlap as detector
    from catalog.query import read_only_connection

    con = _open(read_only_connection, db_path)
    empty = None
    try:
        shown = ShownUids(con)
        uid = shown.typed(uid)   # (a uid copied as printed: its key REDACTED)
        found = detector.similar(con, uid, limit)
        city, title = con.execute("SELECT city, title FROM datasets WHERE uid = ?", [uid]).fetchone()
        group = con.execute("SELECT group_id, label FROM overlap_groups WHERE uid = ? LIMIT 1", [uid]).fetchone()
    except LookupError as exc:   # (no such dataset, or one deleted, which the detector says so)
        found, empty = [], _no_dataset(con, db_path)
        if empty is None:   # (an empty catalogue: no UID is in it, and none was mistyped)
            near = _uids_not_in_catalogue(con, [uid], shown).get(uid, "")
            raise click.UsageError(shown.text(str(exc)) + (near if "did you mean" in near else "")) from None
    finally:
        con.close()
    found = [{**f, "uid": shown(f["uid"]), "title": redacted_text(f["title"]), "explanation": shown.text(f["explanation"])}
             for f in found]
    uid = shown(uid)
    if as_json:
        echo_json(found)
        return
    if empty:
        click.echo(f"no dataset is comparable to {uid}: {empty}")
        return
    if not found:
        click.echo(wrapped(one_line(f"no dataset of another city is comparable to {uid} ({city}: {redacted_text(title)})")))
        return
    # which dataset the list is of (a UID says nothing to a reader), and why the scores may not fall
    # all the way down: its saved group's datasets come first
    # (and where its group's why is told: `overlap --group N`)
    in_group = sum(f["in_group"] for f in found)
    click.echo(wrapped(one_line(f"{city}: {redacted_text(title)} ({uid})" + (
        f", in overlap group {group[0]} '{group[1]}', whose datasets come first ({in_group} here)" if in_group else ""))))
    if group:   # (a command to copy: a line of its own, as overlap's hints)
        click.echo(f"its group and why they compare: civicat overlap --group {group[0]}{db_named(db_path)}")
    echo_similar(found)
    weak = sum(f["score"] < detector.DEFAULT_MIN_SCORE for f in found)
    if weak:
        click.echo(f"{weak} score under {detector.DEFAULT_MIN_SCORE:g}, `civicat overlap`'s default --min-score: "
                   f"too weak to group")


def echo_similar(found: list[dict]) -> None:
    """Each dataset found on a line of its own (score, city and title cut to fit, uid), its explanation
    whole below it, wrapped to the width: the columns that align, which a table cut at 110 characters
    left out ('titles share ...; keywords share ...; 4 of 19 co')."""
    width = output_width()
    for f in found:
        uid = printable(f["uid"])
        name = cut_to(one_line(f"{f['city']}: {f['title']}"),
                      None if width is None else max(20, width - len("0.00  ") - len(uid) - 2))
        click.echo(f"{f['score']:.2f}  {name}  {uid}")
        click.echo(indented(one_line(f["explanation"]), 6, width))


def _no_dataset(con, db_path: Path) -> str | None:
    """Why the catalogue holds no live dataset to search or compare, said for the line of a command
    that finds nothing (the quickstart offline, a first harvest that failed, none run yet), or None:
    it holds one."""
    if con.execute("SELECT count(*) FROM datasets WHERE deleted_at IS NULL").fetchone()[0]:
        return None
    db = db_named(db_path)
    if not con.execute("SELECT count(*) FROM harvest_runs").fetchone()[0]:
        return f"the catalogue holds no dataset yet: no harvest has run (`civicat harvest{db}` fills it)"
    if con.execute("SELECT count(*) FROM datasets").fetchone()[0]:
        return f"every dataset of the catalogue was removed (`civicat runs{db}`: what its harvests did)"
    return f"the catalogue holds no dataset yet (`civicat runs{db}`: what its harvests did)"


EXPORT_FORMATS = ("parquet", "data.json")


class ExportFormats(click.Choice):
    """export's --format: a format, or several split by commas (`--format parquet,data.json`, which
    click's Choice refused as "not one of 'parquet', 'data.json'", not saying how to ask for both)."""

    def convert(self, value, param, ctx) -> tuple[str, ...]:
        if isinstance(value, tuple):   # (converted already)
            return value
        pieces = [piece.strip() for piece in str(value).split(",")]
        formats = []
        for piece in pieces:
            try:
                formats.append(super().convert(piece, param, ctx))
            except click.BadParameter:
                given = f" in {value!r}" if len(pieces) > 1 else ""
                self.fail(f"{piece!r}{given} is not one of {', '.join(map(repr, self.choices))} (for both: "
                          f"--format {','.join(self.choices)}, or --format twice)", param, ctx)
        return tuple(formats)

    @staticmethod
    def joined(given: tuple[tuple[str, ...], ...]) -> tuple[str, ...]:
        """The formats of every --format given, each once, in the order given."""
        return tuple(dict.fromkeys(fmt for formats in given for fmt in formats))


EXPORT_WAIT_SECONDS = 3600   # `export --wait` without SECONDS: a records pull of an hour
# exports that found a records folder not the pull the read copy describes with no records pull
# running, before `export --wait` gives up: a pull that ended as the export began is exported by the
# next try; a folder changed by hand, by no try (the wait ran to its hour before)
RECORDS_CHANGED_TRIES = 3


@cli.command()
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder of the export (replaced whole by a Parquet export).")
@click.option("--format", "formats", multiple=True, type=ExportFormats(EXPORT_FORMATS), metavar="FORMAT[,FORMAT]",
              default=("parquet",), show_default=True, callback=lambda ctx, param, value: ExportFormats.joined(value),
              help="What to write: parquet, data.json, or both (parquet,data.json; or --format twice).")
@click.option("--wait", "wait_seconds", cls=ValueMayBeLeftOut, type=NumberRange(0, MAX_WAIT_MINUTES * 60), is_flag=False,
              flag_value=EXPORT_WAIT_SECONDS, default=None, metavar="[SECONDS]",
              help=f"During a records pull (which keeps an export out), wait for it to end, SECONDS at most "
                   f"(default {EXPORT_WAIT_SECONDS}), then exit 1 naming it.")
@db_option
@config_option
@json_option
@pandas_kept_out()   # see catalog.lazy; and a Ctrl-C or SIGTERM in DuckDB's import of it would be lost
def export(out_dir, formats, wait_seconds, db_path, config_path, as_json):
    """Export the catalogue: Parquet files and/or DCAT-US data.json.

    The Parquet files are versioned, listed in manifest.json."""
    from catalog.export import copy_published_since, open_for_export, records_pull_running

    if not db_path.exists():
        raise Refused(f"no catalogue at {db_path}: run `civicat harvest` first")
    named_config = click.get_current_context().get_parameter_source("config_path") is not ParameterSource.DEFAULT
    if "data.json" in formats and named_config:   # (a config named and missing, or bad: exit 2, as every command)
        read_config(config_path)   # (the default one missing: data.json without its defaults, said on stderr)
    # a --db that is no DuckDB catalogue exits 2, as for every command; a records pull holding
    # the file, 1 (or waited for); else its read copy is exported (catalog.export.open_for_export)
    until = time.monotonic() + wait_seconds if wait_seconds is not None else -math.inf
    waiting_for, changed_tries = None, 0
    while True:
        try:
            opened = _open(open_for_export, db_path)
            try:
                result = _export(opened, out_dir, formats, db_path, config_path, with_left_out=as_json)
            finally:
                opened.con.close()
            break
        except KeptOut as exc:
            left = until - time.monotonic()
            if isinstance(exc, RecordsNotThePull):   # (no pull running: one that just ended, or a hand's)
                pulling = records_pull_running(db_path)
                # (a read copy published since the one read: a writer, the pull, ended as the export ran)
                ended = not pulling and copy_published_since(db_path, opened.copy_written)
                changed_tries = 0 if pulling or ended else changed_tries + 1
                if not (pulling or ended) and (left <= 0 or changed_tries >= RECORDS_CHANGED_TRIES):
                    exc.message += ("; no records pull is running" + (f" ({changed_tries} tries)" if changed_tries > 1
                                                                      else "")
                                    + ": the folder was changed outside civicat? Pull the dataset again (civicat "
                                      f"records {'UID' if exc.redacted else exc.uid} --full"
                                      + (f", UID {exc.uid} as the catalogue holds it: its key is not printed here"
                                         if exc.redacted else "") + "), or put its folder back")
                    raise
                exc.message += ("; a records pull replaced them since: export again when it ends" if pulling else
                                "; a records pull replaced them as the export ran, and has ended: export again")
            else:
                changed_tries = 0
            if left <= 0:
                if wait_seconds is not None:
                    exc.message += f" (still so at the end of --wait {wait_seconds:g})"
                raise
            if exc.message != waiting_for:   # once a reason, not every 2 seconds
                logging.getLogger("civicat").warning(
                    "%s; %s (--wait: %.0f s left)", exc.message,
                    "waiting for it to end" if not changed_tries else "trying again", left)
                waiting_for = exc.message
            time.sleep(min(2, left))
    if as_json:
        echo_json(result)
        return
    if "parquet" in result:
        p = result["parquet"]
        click.echo(f"{out_dir}: Parquet export, schema {p['schema_version']}, records of "
                   f"{counted(p['records']['datasets'], 'dataset')} ({counted(p['records']['rows'], 'row')})")
        echo_table(list(p["row_counts"].items()), ["table", "rows"])
    if "data.json" in result:
        d = result["data.json"]
        # (what is left out and why, where the figure is read: the offline demo's "2915 left out" alone
        # read as a fault of civicat's; it is the portals', which published no modified date or contact)
        click.echo(f"{d['path']}: {counted(d['datasets'], 'dataset')}; {d['left_out']} left out"
                   + (", each lacking a field DCAT-US 1.1 requires (--json lists them):" if d["left_out"] else ""))
        for reason, count in d["left_out_reasons"].items():
            click.echo(f"  {count}: {reason}")
        portals = list(d["left_out_portals"].items())
        if portals:
            click.echo("  by portal: " + ", ".join(f"{portal_id} {count}" for portal_id, count in
                                                   portals[:PORTALS_NAMED])
                       + (f" and {counted(len(portals) - PORTALS_NAMED, 'more portal')}"
                          if len(portals) > PORTALS_NAMED else ""))


PORTALS_NAMED = 10   # in the line of an export's data.json that says whose datasets it left out


def _export(opened, out_dir: Path, formats, db_path: Path, config_path: Path, *, with_left_out: bool) -> dict:
    """The formats asked, from the catalogue `opened` (both from the same one); what was written."""
    import duckdb

    from catalog.datajson import PortalDefaults, write_data_json
    from catalog.export import ExportRefused, RecordsChanged, export_parquet
    from catalog.folder import FolderOfAnother
    from catalog.lock import CatalogueBeingWritten
    from harvester.pipeline import portals_not_in_config

    defaults = {}
    if "data.json" in formats:
        if config_path.exists():
            defaults = {p.id: PortalDefaults(p.publisher or p.city, p.contact_name, p.contact_email)
                        for p in read_config(config_path).portals}
        else:
            click.echo(f"no config at {config_path}: publishers fall back to each dataset's city, "
                       "and no contact is taken from the config", err=True)
    result: dict = {"out": str(out_dir)}
    if "parquet" in formats:
        try:
            manifest = export_parquet(db_path, out_dir, opened=opened)
        except ExportRefused as exc:
            raise click.UsageError(str(exc)) from None
        except FolderOfAnother as exc:   # (no usage line: nothing was mistyped)
            raise Refused(f"cannot export {db_path} to {out_dir}: {exc}") from None
        except CatalogueBeingWritten as exc:   # a records pull started meanwhile
            raise KeptOut(f"cannot export {db_path} to {out_dir}: {exc}") from None
        except RecordsChanged as exc:   # a records pull replaced a folder, or a hand changed it
            raise RecordsNotThePull(f"cannot export {db_path} to {out_dir}: {exc}", exc.uid, exc.redacted) from None
        except (duckdb.Error, OSError) as exc:
            # the disk full (which file system, how much free): the previous export is untouched
            raise click.ClickException(f"cannot export {db_path} to {out_dir}: "
                                       f"{disk_full(exc, db_path, export=out_dir) or in_words(exc, out_dir)}") from None
        result["parquet"] = {k: manifest[k] for k in ("schema_version", "created_at", "row_counts", "records")}
    if "data.json" in formats:
        try:
            if defaults:   # portals taken out of the config keep their datasets live, without its defaults
                defaults |= {portal_id: PortalDefaults(in_config=False)
                             for portal_id in portals_not_in_config(opened.con, list(defaults))}
            report = write_data_json(opened.con, out_dir, defaults)
        except (duckdb.Error, OSError) as exc:   # the disk full: the previous data.json is untouched
            raise click.ClickException(f"cannot export {db_path} as data.json to {out_dir}: "
                                       f"{disk_full(exc, db_path, export=out_dir) or in_words(exc, out_dir)}") from None
        _name_portals_out_of_config(report, opened.con, db_path, config_path)
        # (named as the folder was given, as "out" is: not in full)
        result["data.json"] = {"path": str(out_dir / "data.json"), "datasets": report.written,
                               "left_out": len(report.left_out),
                               "left_out_reasons": report.reasons(),
                               "left_out_portals": dict(Counter(item["uid"].split(":", 1)[0]
                                                                for item in report.left_out).most_common())}
        if with_left_out:
            result["data.json"]["left_out_datasets"] = report.left_out
    return result


def _name_portals_out_of_config(report, con, db_path: Path, config_path: Path) -> None:
    """On stderr, the portals whose datasets data.json left out for want of the contact or
    publisher their config entry gave: taken out of the config, their datasets stay live; or the
    config is not the catalogue's (the offline demo's, exported with the default config), which
    is named when one beside it holds them."""
    from catalog.datajson import NO_CONTACT_OUT_OF_CONFIG

    left_out = Counter(item["uid"].split(":", 1)[0] for item in report.left_out
                       if NO_CONTACT_OUT_OF_CONFIG in item["reasons"])
    if left_out:
        named = ", ".join(f"{portal_id} ({count} left out)" for portal_id, count in sorted(left_out.items()))
        matching = _config_harvested_with(list(left_out), _settings_listed(con, list(left_out)), db_path, config_path)
        click.echo(f"data.json: {named}: not in {config_path}, so without the contact its entry gave: "
                   + (f"harvested with {matching}? pass it: --config {matching}" if matching is not None else
                      "put the entry back, or `civicat retire` a portal gone for good"), err=True)


def in_words(exc: Exception, folder: Path) -> str:
    """An error of making or writing `folder`, with mkdir's words for a file in its way ("File
    exists", "Not a directory") said plainly."""
    if isinstance(exc, (FileExistsError, NotADirectoryError)) and any(p.is_file() for p in (folder, *folder.parents)):
        return f"its folder cannot be made: a file is in the way ({exc})"
    return str(exc)


DUCKDB_MAGIC = (8, b"DUCK")   # where every DuckDB database file says so (after its header's checksum)
OTHER_FILES = ((b"SQLite format 3\x00", "an SQLite database"), (b"PAR1", "a Parquet file"),
               (b"PK\x03\x04", "a zip archive"), (b"\x1f\x8b", "a gzip file"))


def not_a_duckdb_file(path: Path) -> str | None:
    """What the file at `path` is, said for a message, when it is there and no DuckDB database;
    None for a DuckDB file, no file (the first harvest makes it), or one that cannot be read or is
    no regular file (a FIFO's read would wait for a writer): the opener says why."""
    try:
        if not path.is_file():
            return None
        with path.open("rb") as file:
            head = file.read(4096)
    except OSError:
        return None
    offset, magic = DUCKDB_MAGIC
    if head[offset:offset + len(magic)] == magic:
        return None
    if not head:
        return "an empty file"
    known = next((what for start, what in OTHER_FILES if head.startswith(start)), None)
    if known is not None:
        return known
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:   # (text whose read ended inside a character is text)
        text = head[:exc.start].decode("utf-8") if exc.start > len(head) - 4 and len(head) == 4096 else None
    if text is not None and "\x00" not in text:
        first_line = text.lstrip().partition("\n")[0].strip()[:40]
        return "a text file" + (f" (its first line: {first_line!r})" if first_line else "")
    return f"a file of {counted(path.stat().st_size, 'byte')} that does not start as a DuckDB database does"


def _cannot_open(db_path: Path, exc: Exception | str) -> click.ClickException:
    """A --db DuckDB cannot open (a file that is no database, one of a newer DuckDB or civicat, no
    permission): exit 2 naming it, before anything is done; no usage line (the file is wrong)."""
    return Refused(f"cannot open the catalogue {db_path}: {exc}")


def _open(opener, db_path: Path):
    """A reader's connection; exit 2 without a catalogue, 1 while another process writes it."""
    import duckdb

    from catalog.lock import CatalogueBeingWritten, CatalogueReplaced, file_locked, file_writer
    from catalog.versions import CatalogueTooNew, NotACatalogue

    try:
        return opener(db_path)
    except (FileNotFoundError, NotACatalogue) as exc:   # (no usage line: nothing was mistyped)
        raise Refused(str(exc)) from None
    except CatalogueReplaced as exc:   # (as its recovery ran, again and again: until session 46 a traceback)
        raise Refused(str(exc)) from None
    except CatalogueTooNew as exc:   # export: putting right what a killed pull left is a write (migrate)
        raise _cannot_open(db_path, exc) from None
    except CatalogueBeingWritten as exc:  # a WAL to replay while a harvest writes (catalog.lock.connect_read_only); export: a records pull
        raise KeptOut(str(exc)) from None
    except duckdb.IOException as exc:
        if not file_locked(exc):
            raise _cannot_open(db_path, exc) from None
        raise KeptOut(f"{db_path} is being written by {file_writer(exc, db_path)}, and DuckDB lets no "
                      "reader open it meanwhile: try again when it ends") from None


def main() -> None:
    stop_on_signals()
    if sys.stdout is not None:   # (None: started with stdout closed, `>&-`, where click prints nothing)
        sys.stdout = report_stdout(sys.stdout)
    try:
        cli(prog_name="civicat")
    except SystemExit:   # (click's, every command's end: its report printed, its exit code decided)
        finished()
        raise
    except ReportLost as exc:   # civicat --help, --version: before any command
        report_lost(exc)
        sys.exit(exc.exit_code)
