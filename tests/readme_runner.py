"""How the README's shell blocks are run by `tests/test_readme.py`: bash runs each
block as written, with `imdb-tui`, `make` and `pip` as shell functions that call
`python -m tests.readme_runner NAME ARGS...`, which runs them so that a test can:

- `imdb-tui` with a command that ends by itself runs as it is (120 s at most);
  one that runs until stopped (the monitor, `serve`, a `run` of the simulator or of
  a stream with no --count or --duration, `produce` with no --count, `export
  --every`) gets SIGTERM after a few seconds and must then end with status 0, as
  the README says it does; the monitor runs on a terminal of its own (80x24) and
  must have drawn its panels by then.
- `make run [ARGS=...]` is the monitor so; `make test` is what runs this, so it
  only says so.
- `pip install -e '.[EXTRAS]'` checks that each extra is declared and installed
  (the tests' environment has them all) rather than installing again.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import time
import tomllib
from importlib import metadata
from pathlib import Path

from tests.terminal import Terminal
from tests.test_cli import COMMAND

ROOT = Path(__file__).parents[1]
UNTIL_STOPPED_SECONDS = 4.0
FINITE_SECONDS = 120.0
COMMANDS = {"monitor", "run", "watch", "serve", "report", "produce", "export", "prune"}
STREAMS = ("kinesis://",)


def until_stopped(args: list[str]) -> bool:
    """Whether `imdb-tui ARGS` runs until it is stopped."""
    command = args[0] if args and args[0] in COMMANDS else "monitor"
    given = set(args)
    if command in ("monitor", "watch", "serve"):
        return True
    if command == "run":
        if given & {"--count", "--duration"}:
            return False
        source = args[args.index("--source") + 1] if "--source" in given else "sim"
        return source == "sim" or source.startswith(STREAMS) or "--follow" in given
    if command == "produce":
        return "--count" not in given
    if command == "export":
        return "--every" in given
    return False


def on_a_terminal(command: str) -> bool:
    return command in ("monitor", "watch")


def imdb_tui(args: list[str]) -> int:
    command = args[0] if args and args[0] in COMMANDS else "monitor"
    if not until_stopped(args):
        return subprocess.run([COMMAND, *args], timeout=FINITE_SECONDS).returncode
    if on_a_terminal(command):
        screen = Terminal(args, columns=80, rows=24)
        try:
            screen.wait_for(r"stored +[1-9]", timeout=60)  # drawn, and storing
            screen.process.send_signal(signal.SIGTERM)
            status = screen.exit_status(timeout=60)
        finally:
            screen.close()
        print(screen.text().rstrip())
        return status
    process = subprocess.Popen([COMMAND, *args])
    try:
        process.wait(timeout=UNTIL_STOPPED_SECONDS)
        print(f"readme_runner: {shlex.join(args)} ended by itself", file=sys.stderr)
        return 1  # it was to run until stopped
    except subprocess.TimeoutExpired:
        stoppable(process)
        process.send_signal(signal.SIGTERM)
        return process.wait(timeout=60)


def stoppable(process: subprocess.Popen[bytes]) -> None:
    """Wait until the process handles SIGTERM, as a person's Ctrl-C or `kill` finds it
    once it has started: on a loaded machine, starting can take more than a few seconds,
    and a SIGTERM before then ends any program (status -15) before it has done a thing."""
    status = Path(f"/proc/{process.pid}/status")
    for _ in range(600):
        caught = next(
            (
                line.split()[1]
                for line in status.read_text().splitlines()
                if line.startswith("SigCgt:")
            ),
            "0",
        )
        if int(caught, 16) & (1 << (signal.SIGTERM - 1)) or process.poll() is not None:
            return
        time.sleep(0.1)


def make(args: list[str]) -> int:
    if args == ["test"]:
        print("readme_runner: make test is what runs this block")
        return 0
    if args and args[0] == "run" and all(arg.startswith("ARGS=") for arg in args[1:]):
        extra = [word for arg in args[1:] for word in shlex.split(arg.removeprefix("ARGS="))]
        return imdb_tui(extra)
    print(f"readme_runner: make {shlex.join(args)}: not a target the README may name")
    return 2


def pip(args: list[str]) -> int:
    match = re.fullmatch(r"\.\[([\w,-]+)\]", args[-1]) if args[:2] == ["install", "-e"] else None
    if match is None:
        print(f"readme_runner: pip {shlex.join(args)}: only pip install -e '.[EXTRAS]'")
        return 2
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    for extra in match[1].split(","):
        if extra not in declared:
            print(f"readme_runner: no extra {extra!r} in pyproject.toml")
            return 2
        for requirement in declared[extra]:
            name = re.split(r"[\[<>=!~; ]", requirement, maxsplit=1)[0]
            try:
                metadata.distribution(name)
            except metadata.PackageNotFoundError:
                print(f"readme_runner: {extra}'s {name} is not installed")
                return 2
    return 0


def main() -> None:
    name, *args = sys.argv[1:]
    runners = {"imdb-tui": imdb_tui, "make": make, "pip": pip}
    sys.stdout.flush()
    os.environ.setdefault("TERM", "xterm-256color")
    sys.exit(runners[name](args))


if __name__ == "__main__":
    main()
