"""civicat's offline demo: `python -m tests.portals [--write-config PATH] [--port N]`, from the
repository's root, serves the payloads recorded in ../shared/fixtures (tests/portals/demo.py
says which) on 127.0.0.1 and gives a config to harvest them: written to PATH, else printed.
It serves until Ctrl-C, SIGTERM or, when its stdin is a pipe, the pipe's end (its stdin a terminal or
/dev/null, as a shell script's `&` gives it: until a signal)."""
import argparse
import os
import signal
import stat
import sys
from pathlib import Path

from tests.shared_fixtures import FIXTURES


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.portals", description=__doc__.split("\n\n")[0])
    parser.add_argument("--write-config", metavar="PATH", type=Path,
                        help="write the demo's config (TOML) there; without it, it is printed on stdout")
    parser.add_argument("--port", type=int, default=0, help="the port on 127.0.0.1 (default: a free one)")
    args = parser.parse_args(argv)
    if not 0 <= args.port <= 65535:
        parser.error(f"--port: {args.port} is not a port (0 to 65535)")
    if not FIXTURES.is_dir():
        print(f"python -m tests.portals: no recorded payloads to serve: {FIXTURES} is not there "
              f"(the demo serves ../shared/fixtures, beside the repository)", file=sys.stderr)
        return 2
    from tests.portals.demo import OnePort, config_text, mount_demo   # (once the fixtures are known to be there)

    server = OnePort().start(args.port)   # (a port taken: werkzeug says so, exit 1)
    entries = mount_demo(server)
    config = config_text(entries, server.url)
    if args.write_config:
        args.write_config.parent.mkdir(parents=True, exist_ok=True)
        args.write_config.write_text(config, encoding="utf-8")
    else:
        print(config, flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    piped = stat.S_ISFIFO(os.fstat(0).st_mode) if sys.stdin else False
    until = "Ctrl-C or the end of stdin" if piped else "Ctrl-C"
    print(f"serving {len(entries)} portals on {server.url}"
          + (f", their config in {args.write_config}" if args.write_config else "") + f" until {until}",
          file=sys.stderr, flush=True)
    try:
        if piped:
            sys.stdin.read()   # (until the caller closes it, or ends)
        else:
            while True:
                signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
