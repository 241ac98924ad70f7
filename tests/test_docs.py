"""README.md and docs/ link each other section by section: every relative link must reach a file
and, when it names one, a heading there (GitHub's anchors), or a reader following it lands nowhere."""
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from tests.docs_text import README, ROOT, markdown_table, prose, section


def anchor(heading: str) -> str:
    """GitHub's anchor of a Markdown heading: lower case, punctuation dropped, spaces as '-'."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_every_relative_link_of_the_readme_and_docs_reaches_its_file_and_heading():
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    headings = {page: {anchor(h) for h in re.findall(r"^#+ (.*)$", prose(page.read_text()), re.M)} for page in pages}
    broken = []
    for page in pages:
        for target in re.findall(r"\]\(([^)\s]+)\)", prose(page.read_text())):
            if re.match(r"[a-z]+:", target):
                continue   # a web address
            path, _, fragment = target.partition("#")
            dest = (page.parent / path).resolve() if path else page
            if not dest.exists():
                broken.append(f"{page.relative_to(ROOT)}: {target} (no such file)")
            elif fragment and dest in headings and fragment not in headings[dest]:
                broken.append(f"{page.relative_to(ROOT)}: {target} (no such heading)")
    assert not broken, "\n".join(broken)


def benchmark_sections() -> dict[str, str]:
    """docs/benchmarks.md's `## ` sections by heading."""
    parts = re.split(r"^(## .*)$", (ROOT / "docs" / "benchmarks.md").read_text(), flags=re.M)
    return dict(zip(parts[1::2], parts[2::2]))


def test_every_benchmark_has_a_readme_row_as_recent_as_its_section_of_docs_benchmarks():
    """Each runnable bench module (bench.serve serves, it measures nothing) has a row of the README's
    Benchmarks table and a section of docs/benchmarks.md, and the row's figures are of a session no
    older than the section's latest **Session N** paragraph."""
    runnable = {path.stem for path in (ROOT / "bench").glob("*.py")
                if "__main__" in path.read_text() and path.stem != "serve"}
    rows = {re.search(r"bench\.(\w+)", cells[0]).group(1): cells[3]
            for cells in markdown_table(section(README.read_text(), "## Benchmarks"))}
    assert set(rows) == runnable, (f"benchmarks without a README row: {sorted(runnable - set(rows))}; "
                                   f"rows of no benchmark: {sorted(set(rows) - runnable)}")
    sections = benchmark_sections()
    stale = []
    for name, latest in rows.items():
        own = [body for heading, body in sections.items() if f"bench.{name}`" in heading] or \
              [body for heading, body in sections.items() if f"`python -m bench.{name}`" in body and "in brief" not in heading]
        assert own, f"bench.{name} has no section of docs/benchmarks.md"
        newest = max((int(n) for body in own for n in re.findall(r"^\*\*Session (\d+)", body, re.M)), default=0)
        said = max((int(n) for n in re.findall(r"[Ss]ession (\d+)", latest)), default=0)
        if said < newest:
            stale.append(f"bench.{name}: the README's latest figures are of session {said}, "
                         f"docs/benchmarks.md has session {newest}'s")
    assert not stale, "\n".join(stale)


LATEST_CELL_CHARS = 800


def test_each_readme_benchmark_row_s_latest_cell_is_short_enough_to_read_its_standing_figures():
    """A README Benchmarks row's "latest" cell gives the standing figures against the row's targets, not
    every session's: the sessions' clauses go to docs/benchmarks.md. (By session 38, each session's
    clauses prepended since session 30, nightly's cell ran to 3,254 characters, harvest_catalog's to 2,584.)"""
    long_cells = []
    for cells in markdown_table(section(README.read_text(), "## Benchmarks")):
        if len(cells[3]) > LATEST_CELL_CHARS:
            name = re.search(r"bench\.(\w+)", cells[0]).group(1)
            long_cells.append(f"bench.{name}: {len(cells[3]):,} characters")
    assert not long_cells, (f"README Benchmarks 'latest' cells over {LATEST_CELL_CHARS} characters (move the "
                            f"older clauses to docs/benchmarks.md): " + "; ".join(long_cells))


def usage_of(module: str, deadline: float = 120.0, cwd=ROOT, after_kill: float = 30.0) -> tuple[int | None, str]:
    """(exit code, stdout) of `python -m <module> --help`, run from the repository root; (None, what it
    printed) when it is still running past the deadline: it ran instead of answering, and its process
    group is killed (a benchmark starts servers and harvests of its own). Its output is then read for
    `after_kill` seconds at most: a process it started in a session of its own, not killed, may hold
    the pipe open (the test then fails, saying what it printed)."""
    process = subprocess.Popen([sys.executable, "-m", module, "--help"], cwd=cwd, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        out, _ = process.communicate(timeout=deadline)
        return process.returncode, out
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        try:
            out, _ = process.communicate(timeout=after_kill)
        except subprocess.TimeoutExpired as held:
            pytest.fail(f"python -m {module} --help ran past {deadline:g} s, and a process it started out of its "
                        f"group holds its output open; it printed: {(held.output or b'').decode(errors='replace')!r}")
        return None, out


def test_a_help_that_runs_and_leaves_a_process_holding_its_output_fails_within_its_bounds(tmp_path):
    """A module whose `--help` runs on and starts a process in a session of its own (out of reach of
    the kill of its group) that keeps its stdout: usage_of fails the test once the bounds are past
    (before session 33 it waited for that process to end, for good if it never did)."""
    (tmp_path / "runs_on.py").write_text(
        "import subprocess, sys, time\n"
        "holder = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'], start_new_session=True)\n"
        "open('holder.pid', 'w').write(str(holder.pid))\n"
        "print('running, not answering', flush=True)\n"
        "time.sleep(120)\n")
    started = time.monotonic()
    try:
        with pytest.raises(pytest.fail.Exception, match="running, not answering"):
            usage_of("runs_on", deadline=3, cwd=tmp_path, after_kill=1)
        assert time.monotonic() - started < 60
    finally:
        os.kill(int((tmp_path / "holder.pid").read_text()), signal.SIGKILL)


def test_each_benchmark_row_runs_with_help_and_takes_the_options_it_shows():
    """The README's Benchmarks rows show how to run each (`python -m bench.nightly [--portals N]
    [--datasets N]`): `--help` answers with the usage, naming each option shown, and runs nothing.
    (Before session 32 `bench.dead_hosts --help` ran the whole benchmark: minutes.)"""
    wrong = []
    for cells in markdown_table(section(README.read_text(), "## Benchmarks")):
        command = re.search(r"`python -m (bench\.\w+)([^`]*)`", cells[0])
        module, shown = command.group(1), re.findall(r"--[a-z][\w-]*", command.group(2))
        code, out = usage_of(module)
        if code != 0 or not out.startswith("usage:"):
            wrong.append(f"{module} --help: exit {code}, not a usage: {out[:200]!r}")
            continue
        missing = [option for option in shown if option not in out]
        if missing:
            wrong.append(f"{module}: the README's row shows {missing}, which its --help does not name")
    assert not wrong, "\n".join(wrong)
