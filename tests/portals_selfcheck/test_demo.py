"""`python -m tests.portals`, the offline demo: README's "Try it offline" run as written (the demo
started as a user starts it, its config harvested with the CLI, then overlap, search, export)."""
import json
import re
import shlex
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
from click.testing import CliRunner

from harvester.cli import cli
from tests.children import ended, line_of, output_of
from tests.conftest import REPO
from tests.docs_text import README, code_blocks, section
from tests.shared_fixtures import require_fixtures

# what the recorded payloads hold, per portal (tests/portals/demo.py serves them)
DATASETS = {"sf": 326, "nyc": 1055, "seattle": 246, "la": 214, "chicago": 370,         # Socrata, 2017
            "philadelphia": 402, "boston-2013": 292,                                   # data.json
            "evian": 8, "zurich": 3, "birmingham": 10, "envidat": 2,                   # Hub feed, CKAN searches
            "sf-311": 1, "giessen-311": 1, "exemple": 7}                               # Open311, synthetic ODS
KINDS = {"socrata": 2211, "dcat-us": 694, "arcgis-hub": 8, "ckan": 15, "open311": 2, "opendatasoft": 7}


def civicat(*args: str) -> str:
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == 0, f"civicat {shlex.join(args)}: exit {result.exit_code}: {result.output}"
    return result.output


def readme_commands(data: Path) -> list[list[str]]:
    """The command lines of README's "Try it offline", their `data/` paths in `data`."""
    text = section(README.read_text(), "### Try it offline")
    lines = [shlex.split(line, comments=True) for block in code_blocks(text) for line in block.splitlines()]
    return [[str(data / arg.removeprefix("data/")) if arg.startswith("data/") else arg for arg in line]
            for line in lines if line]


LOOPBACK = ("127.0.0.1", "localhost", "::1")


def offline_only(monkeypatch) -> list[str]:
    """The names this process looks up past the loopback, each refused as a name no resolver knows
    (the demo promises to run offline: a command that would go online fails here, naming where)."""
    asked: list[str] = []
    lookup = socket.getaddrinfo

    def loopback_only(host, *args, **kwargs):
        if host not in LOOPBACK and (not isinstance(host, bytes) or host.decode() not in LOOPBACK):
            asked.append(host)
            raise socket.gaierror(socket.EAI_NONAME, f"the offline demo's test looks up no {host!r}")
        return lookup(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", loopback_only)
    return asked


def test_the_readme_s_demo_runs_as_written_its_portals_harvested_whole_and_overlapping_across_cities(
        tmp_path, monkeypatch):
    require_fixtures()
    went_online = offline_only(monkeypatch)
    serve, *commands = readme_commands(tmp_path)
    assert serve[:3] == ["python", "-m", "tests.portals"] and [c[:2] for c in commands] == [
        ["civicat", "harvest"], ["civicat", "overlap"], ["civicat", "search"], ["civicat", "records"],
        ["civicat", "export"]]
    config = Path(serve[serve.index("--write-config") + 1])
    db = commands[0][commands[0].index("--db") + 1]
    demo = subprocess.Popen([sys.executable, *serve[1:]], cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        ready = line_of(demo, "stderr")
        assert ready.startswith("serving 14 portals on http://127.0.0.1:") and str(config) in ready, ready
        said = {command[1]: civicat(*command[1:]) for command in commands}
        report = json.loads(civicat("runs", "--db", db, "--json"))   # (the README's runs, before the pull below)
        # what a demo user runs next: the records of every grouped dataset (session 40: data.json's CSV
        # files and CKAN's resources were downloaded from their real hosts), each answered on 127.0.0.1
        pulled = CliRunner().invoke(cli, ["records", "--overlap", "--config", str(config), "--db", db, "--json"])
    finally:
        demo.stdin.close()   # (the demo's stop, when its stdin is a pipe)
        code = ended(demo)
    assert code == 0, demo.stderr.read()
    assert went_online == [], sorted(set(went_online))
    assert pulled.exit_code == 1, pulled.output   # (their files were not recorded: failed, saying so)
    not_recorded = [d for d in json.loads(pulled.stdout) if "/not-recorded/" in (d["error_message"] or "")]
    assert {d["uid"].split(":")[0] for d in not_recorded} >= {"philadelphia", "boston-2013"}, pulled.stdout[:2000]
    assert all(d["status"] == "failed" and d["error_message"].startswith("HTTP 404") for d in not_recorded)
    assert "the offline demo recorded no copy of https://" in not_recorded[0]["error_message"]
    # (session 41, r41: a Socrata or OpenDataSoft dataset's pull failed "HTTP 404 … Cannot find dataset" or
    # "Unknown path", no word of the demo)
    failed = [d for d in json.loads(pulled.stdout) if d["status"] == "failed"]
    unsaid = [d for d in failed if d["error_message"].startswith("HTTP 404") and "offline demo" not in d["error_message"]]
    assert unsaid == [], sorted({(d["uid"].split(":")[0], d["error_message"][:160]) for d in unsaid})
    assert any("the offline demo recorded no records of " in d["error_message"] for d in failed), pulled.stdout[:2000]
    linked = json.loads(civicat("sql", "--db", db, "--format", "json", """
        SELECT DISTINCT split_part(coalesce(download_url, access_url), '/', 3) AS host FROM distributions
        WHERE coalesce(download_url, access_url) LIKE 'http%'"""))
    assert [row["host"].split(":")[0] for row in linked] == ["127.0.0.1"], linked

    assert {run["portal_id"]: (run["status"], run["new"]) for run in report} == {
        pid: ("ok", n) for pid, n in DATASETS.items()}
    assert {run["portal_id"]: (run["records_pulled"], run["record_rows"]) for run in report
            if run["records_pulled"]} == {"seattle": (1, 1000)}   # (SPD 911's recorded rows)
    # the errors: Birmingham's 4 DataStore tables, whose fields were not recorded
    assert {run["portal_id"]: run["errors"] for run in report if run["errors"]} == {"birmingham": 4}
    counted = json.loads(civicat("sql", "--db", db, "--format", "json",
                                 "SELECT portal_kind, count(*) AS n FROM datasets GROUP BY ALL"))
    assert {row["portal_kind"]: row["n"] for row in counted} == KINDS
    assert sum(KINDS.values()) == 2937   # (as the README says)
    # Evian's five layers (recorded ones of other servers) give their datasets columns
    layered = json.loads(civicat("sql", "--db", db, "--format", "json",
                                 "SELECT count(DISTINCT dataset_uid) AS n FROM columns WHERE dataset_uid LIKE 'evian:%'"))
    assert layered == [{"n": 5}]

    groups = json.loads(civicat("overlap", "--db", db, "--json"))["groups"]
    assert len(groups) >= 30 and max(len(g["cities"]) for g in groups) >= 5
    permits = next(g for g in groups if "sf:i98e-djp9" in {m["uid"] for m in g["members"]})
    assert {"chicago:ydr8-5enu", "boston-2013:msk6-43c6"} <= {m["uid"] for m in permits["members"]}
    assert {"San Francisco", "Chicago", "Boston", "Seattle"} <= set(permits["cities"])
    hits = json.loads(civicat("search", "building permits", "--db", db, "--limit", "3", "--json"))
    assert {hit["uid"] for hit in hits[:2]} == {"sf:i98e-djp9", "chicago:ydr8-5enu"}
    # the pull again, with the demo's config (session 38: without it, the default config's live Seattle)
    assert said["records"].splitlines()[2].split()[:4] == ["seattle:3k2p-39jp", "ok", "incremental", "1000"]
    assert pq.read_metadata(tmp_path / "demo" / "export" / "datasets.parquet").num_rows == sum(DATASETS.values())
    # data.json: what the README says of its figure, as the export says it (session 36: "2915 left out" alone)
    written = len(json.loads((tmp_path / "demo" / "export" / "data.json").read_text())["dataset"])
    text = " ".join(section(README.read_text(), "### Try it offline").split())
    figure = re.search(r"its data\.json (\d+) of them, and it says `([^`]+)`", text)
    assert figure and int(figure[1]) == written == 22, figure
    assert f"data.json: {written} datasets; {figure[2]} (--json lists them):" in said["export"], said["export"]
    reasons = dict(line.strip().split(": ", 1)[::-1] for line in said["export"].splitlines()[-4:-1])
    assert {reason.split(" (")[0]: int(n) for reason, n in reasons.items()} == {
        "no modified date": 2615, "no contact email": 2513, "no keyword or theme": 23}
    assert "no modified date for 2,615" in text and "no contact email for 2,513" in text
    assert said["export"].splitlines()[-1] == ("  by portal: nyc 1055, philadelphia 402, chicago 370, sf 326, "
                                               "boston-2013 292, seattle 246, la 214, evian 8, giessen-311 1, "
                                               "sf-311 1")
    assert pq.read_table(tmp_path / "demo" / "export" / "records" / "portal=seattle" / "dataset=3k2p-39jp").num_rows == 1000
    # the demo's files in a folder of their own: a catalogue's records/ and http_cache/ are its folder's,
    # and beside the quickstart's catalogue in data/ its pull of seattle:3k2p-39jp replaced that one's
    assert [path.name for path in tmp_path.iterdir()] == ["demo"]
    assert (tmp_path / "demo" / "records" / "portal=seattle" / "dataset=3k2p-39jp").is_dir()


def test_without_the_recorded_payloads_beside_the_repository_the_demo_refuses_saying_where_it_looked(tmp_path):
    clone = tmp_path / "civicat"   # (../shared beside it is missing)
    for package in ("tests", "harvester", "catalog"):
        shutil.copytree(Path(REPO) / package, clone / package, ignore=shutil.ignore_patterns("__pycache__"))
    demo = subprocess.Popen([sys.executable, "-m", "tests.portals"], cwd=clone, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = output_of(demo)
    assert demo.returncode == 2 and out == ""
    assert err == (f"python -m tests.portals: no recorded payloads to serve: {tmp_path / 'shared' / 'fixtures'} is "
                   f"not there (the demo serves ../shared/fixtures, beside the repository)\n")


def test_a_port_taken_or_out_of_range_is_refused_naming_it():
    require_fixtures()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        for asked, code, said in ((port, 1, f"Port {port} is in use by another program"),
                                  (70000, 2, "--port: 70000 is not a port (0 to 65535)")):
            demo = subprocess.Popen([sys.executable, "-m", "tests.portals", "--port", str(asked)], cwd=REPO,
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            out, err = output_of(demo)
            assert demo.returncode == code and out == "" and said in err, err
