"""Alert rules: parsed or refused in one line, held back by `for`, kept from flapping
by a clear threshold, stored with the pipeline's health for every viewer, and acted
on by a program or a webhook that can fail without harm."""

from __future__ import annotations

import dataclasses
import json
import signal
import stat
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from imdb_tui.alert_actions import AlertActions, shown_url
from imdb_tui.alerts import AlertChange, Alerts, AlertState, RuleError, load_rules, parse_rule
from imdb_tui.health import PipelineHealth
from imdb_tui.metrics import MetricsSnapshot
from tests.terminal import terminal
from tests.test_cli import COMMAND, imdb_tui

GOOD = [
    # rule, (figure, test, threshold, hold seconds, clear)
    ("lag_p99 > 5s for 1m", ("lag_p99", ">", 5.0, 60.0, None)),
    ("lag_p99>500ms", ("lag_p99", ">", 0.5, 0.0, None)),
    ("lag > 2m", ("lag_p99", ">", 120.0, 0.0, None)),
    ("events_per_minute < 1000 for 2m", ("events_per_minute", "<", 1000.0, 120.0, None)),
    ("events_per_minute < 1,000 for 2m clear 1500", ("events_per_minute", "<", 1e3, 120.0, 1500)),
    ("dead_letters_per_minute > 0", ("dead_letters_per_minute", ">", 0.0, 0.0, None)),
    ("behind > 30s", ("behind", ">", 30.0, 0.0, None)),
    ("database_size > 2GB", ("database_bytes", ">", 2e9, 0.0, None)),
    ("ingest_rate < 2.5k for 30s", ("ingest_rate", "<", 2500.0, 30.0, None)),
    ("queue >= 100 clear 10", ("queue", ">=", 100.0, 0.0, 10.0)),
]
BAD = [
    ("lag_p99 5s", "is not a rule like"),
    ("latency > 5s", "no figure 'latency'; known: lag_p50, lag_p99"),
    ("lag_p99 > fast", "the value 'fast' is not a value like 500ms, 5s, 2m"),
    ("lag_p99 > 5s for ever", "'for ever' is not a duration"),
    ("database_size > lots", "is not a value like 500MB, 2GB"),
    ("lag_p99 > 5s clear 9s", "clear 9s must be on the other side of the threshold"),
    ("", "is not a rule like"),
]


@pytest.mark.parametrize(("text", "meaning"), GOOD, ids=[text for text, _ in GOOD])
def test_a_good_rule_means_what_it_says(text: str, meaning: tuple[object, ...]) -> None:
    rule = parse_rule(text)
    assert (rule.figure.name, rule.test, rule.threshold, rule.hold, rule.clear) == meaning
    assert rule.name == rule.expression == " ".join(text.split())


@pytest.mark.parametrize(("text", "said"), BAD, ids=[text or "empty" for text, _ in BAD])
def test_a_bad_rule_is_refused_in_one_line(text: str, said: str) -> None:
    with pytest.raises(RuleError) as refused:
        parse_rule(text)
    assert said in str(refused.value) and "\n" not in str(refused.value)


def test_a_bad_rule_on_the_command_line_is_one_line_and_exit_2(tmp_path: Path) -> None:
    done = imdb_tui("run", "--count", "10", "--db", str(tmp_path / "e.db"), "--alert", "p99 > 1s")
    assert done.returncode == 2 and done.stdout == ""
    (line,) = done.stderr.splitlines()
    assert "no figure 'p99'; known: lag_p50, lag_p99, behind" in line
    assert not (tmp_path / "e.db").exists()  # refused before anything was opened


def test_a_rules_file_gives_names_holds_clears_and_severities(tmp_path: Path) -> None:
    path = tmp_path / "rules.toml"
    path.write_text(
        '[[alert]]\nname = "slow"\nexpression = "lag_p99 > 5s"\nfor = "1m"\nclear = "3s"\n'
        'severity = "critical"\n\n[[alert]]\nexpression = "dead_letters_per_minute > 0"\n'
    )
    slow, dead = load_rules(path)
    assert (slow.name, slow.hold, slow.clear, slow.severity) == ("slow", 60.0, 3.0, "critical")
    assert slow.expression == "lag_p99 > 5s for 1m clear 3s"
    assert (dead.name, dead.severity) == ("dead_letters_per_minute > 0", "warning")
    path.write_text('[[alert]]\nexpression = "lag_p99 > 5s"\nseverity = "page me"\n')
    with pytest.raises(RuleError, match=r"alert 1: .*severity 'page me' is not one of"):
        load_rules(path)
    path.write_text("[[alert]]\nname = 'x'\n")
    with pytest.raises(RuleError, match="alert 1 has no expression"):
        load_rules(path)
    path.write_text("not toml [")
    with pytest.raises(RuleError, match="is not TOML"):
        load_rules(path)


def lag(p99_seconds: float | None, live: bool = True) -> MetricsSnapshot:
    p99 = None if p99_seconds is None else p99_seconds * 1000
    health = PipelineHealth("running", None, 0.0, 0, 1.0, p99, 0, 0, None, live=live)
    return MetricsSnapshot.of_health(health)


def stamp(second: float) -> str:
    return f"2026-12-07T10:{int(second) // 60:02d}:{int(second) % 60:02d}.000Z"


def run_through(alerts: Alerts, lags: list[float | None]) -> list[tuple[int, str, str]]:
    """A figure a second; the changes as (second, state, value)."""
    changes = []
    for second, value in enumerate(lags):
        for change in alerts.observe(lag(value), float(second), stamp(second)):
            changes.append((second, change.state, change.value))
    return changes


def test_for_holds_back_a_blip() -> None:
    alerts = Alerts([parse_rule("lag_p99 > 5s for 3s")])
    blip = [1, 9, 9, 1, 1, 9, 9, 9, 9, 1]
    assert run_through(alerts, blip) == [(8, "firing", "9.0 s"), (9, "cleared", "1.0 s")]
    assert alerts.fired == 1


def test_a_clear_threshold_stops_flapping() -> None:
    hovering = [6, 4.9, 5.1, 4.8, 5.2, 3, 5.5]
    plain = Alerts([parse_rule("lag_p99 > 5s")])
    assert [state for _, state, _ in run_through(plain, hovering)] == [
        "firing", "cleared", "firing", "cleared", "firing", "cleared", "firing"
    ]  # fmt: skip
    damped = Alerts([parse_rule("lag_p99 > 5s clear 3s")])
    assert run_through(damped, hovering) == [
        (0, "firing", "6.0 s"),
        (5, "cleared", "3.0 s"),
        (6, "firing", "5.5 s"),
    ]


def test_a_figure_no_longer_known_clears_and_a_rate_counts_a_minute() -> None:
    alerts = Alerts([parse_rule("lag_p99 > 5s")])
    assert run_through(alerts, [9, None]) == [(0, "firing", "9.0 s"), (1, "cleared", "–")]
    per_minute = Alerts([parse_rule("dead_letters_per_minute > 2")])
    base = lag(1)
    changes = []
    for second, dead in [(0, 10), (30, 12), (50, 13), (90, 14), (150, 14)]:
        snapshot = dataclasses.replace(base, dead_letters=dead)
        changes += [
            (second, c.state, c.value)
            for c in per_minute.observe(snapshot, float(second), stamp(second))
        ]
    # 3 in the 50 s since the first look; 2 in the minute before 90 s; none after.
    assert changes == [(50, "firing", "3"), (90, "cleared", "2")]


def test_the_state_travels_as_json_and_shows_only_live_pipelines_firing() -> None:
    alerts = Alerts([parse_rule("lag_p99 > 5s", name="slow")])
    alerts.observe(lag(7), 0.0, stamp(0))
    state = AlertState.parse(alerts.state_json())
    assert [a.name for a in state.firing] == ["slow"] and state.recent[0].value == "7.0 s"
    assert AlertState.parse("not json") == AlertState() == AlertState.parse(None)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "events.db"


def test_run_says_each_alert_and_fail_on_alert_exits_3(db: Path) -> None:
    args = ["run", "--count", "300", "--rate", "max", "--db", str(db)]
    fired = imdb_tui(*args, "--alert", "events_total > 0", "--fail-on-alert")
    assert fired.returncode == 3, fired.stderr
    assert "ALERT firing events_total > 0: " in fired.stdout
    assert "alerts: 1 alert fired" in fired.stdout
    quiet = imdb_tui(*args, "--alert", "events_total > 1e9", "--fail-on-alert")
    assert quiet.returncode == 0, quiet.stderr
    assert "ALERT" not in quiet.stdout
    lonely = imdb_tui(*args, "--fail-on-alert")
    assert lonely.returncode == 2 and "needs alert rules" in lonely.stderr


def test_an_alert_fired_in_run_is_seen_by_watch_and_report(db: Path, tmp_path: Path) -> None:
    """The pipeline's rule is stored with its health: another process's `watch` and
    `report --json` show it; `watch` adds a rule of its own, evaluated there."""
    running = subprocess.Popen(
        [COMMAND, "run", "--rate", "500", "--db", str(db), "--alert", "active_users >= 1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert time.monotonic() < deadline, "never fired"
            if db.exists():
                report = imdb_tui("report", "--db", str(db), "--json")
                if report.returncode == 0 and json.loads(report.stdout)["alerts"]["firing"]:
                    break
            time.sleep(0.2)
        (alert,) = json.loads(report.stdout)["alerts"]["firing"]
        assert alert["name"] == "active_users >= 1" and alert["state"] == "firing"
        figures = json.loads(report.stdout)["figures"]
        assert figures["active_users"] >= 1 and figures["lag_p99"] is not None
        with terminal(["watch", "--db", str(db), "--alert", "events_today > 0"]) as screen:
            screen.wait_for(r"2 firing \(a\)")  # the pipeline's, and its own
            screen.press(b"a")
            screen.wait_for(r"FIRING +active_users >= 1")
            screen.wait_for(r"FIRING +events_today > 0")
            screen.press(b"\x1b")  # the Alerts screen closes
            screen.wait_gone(r"╭─ Alerts")  # (a key at once after escape reads as alt+key)
            screen.press(b"q")
            assert screen.exit_status() == 0
    finally:
        running.send_signal(signal.SIGTERM)
        out, _ = running.communicate(timeout=60)
    assert running.returncode == 0
    assert "ALERT firing active_users >= 1" in out
    after = json.loads(imdb_tui("report", "--db", str(db), "--json").stdout)["alerts"]
    assert after["firing"] == []  # the pipeline ended: nothing fires in it now
    assert after["recent"][0]["name"] == "active_users >= 1"


def change(state: str = "firing") -> AlertChange:
    return AlertChange("slow", "lag_p99 > 5s", "critical", state, "7.0 s", stamp(1), stamp(0))


def script(tmp_path: Path, body: str) -> str:
    path = tmp_path / "on-alert"
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


async def test_alert_exec_gets_the_alert_as_arguments_and_json(tmp_path: Path) -> None:
    said: list[str] = []
    record = tmp_path / "got"
    program = script(tmp_path, f'printf "%s|" "$@" > {record}; cat >> {record}')
    actions = AlertActions(program, None, said.append)
    actions(change())
    await actions.close()
    arguments, payload = record.read_text().split("|", 3)[:3], record.read_text().split("|")[3]
    assert arguments == ["firing", "slow", "7.0 s"]
    assert json.loads(payload) == change().to_json()
    assert said == []


async def test_alert_exec_that_hangs_is_killed_and_one_that_fails_is_said(tmp_path: Path) -> None:
    said: list[str] = []
    hangs = AlertActions(script(tmp_path, "exec sleep 60"), None, said.append, exec_timeout=0.3)
    hangs(change())
    await hangs.close()
    assert said == [f"--alert-exec {tmp_path / 'on-alert'}: killed after 0.3 s"]
    said.clear()
    fails = AlertActions(script(tmp_path, "exit 4"), None, said.append)
    fails(change())
    await fails.close()
    assert said == [f"--alert-exec {tmp_path / 'on-alert'}: exited with status 4"]
    said.clear()
    missing = AlertActions(str(tmp_path / "nowhere"), None, said.append)
    missing(change())
    await missing.close()
    assert len(said) == 1 and "cannot run it" in said[0]


class Hook:
    """An HTTP server on a loopback port answering each POST with the next status."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses = statuses
        self.bodies: list[bytes] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                hook.bodies.append(self.rfile.read(int(self.headers["Content-Length"])))
                status = hook.statuses.pop(0) if len(hook.statuses) > 1 else hook.statuses[0]
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://user:secret@127.0.0.1:{self.server.server_port}/hooks/T0KEN"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hook(request: pytest.FixtureRequest) -> Iterator[Hook]:
    server = Hook(request.param)
    try:
        yield server
    finally:
        server.close()


@pytest.mark.parametrize("hook", [[500, 200]], indirect=True)
async def test_a_webhook_that_fails_once_is_tried_again(hook: Hook) -> None:
    said: list[str] = []
    actions = AlertActions(None, hook.url, said.append, backoff=0.01)
    actions(change())
    await actions.close()
    assert len(hook.bodies) == 2 and json.loads(hook.bodies[1]) == change().to_json()
    assert said == []


@pytest.mark.parametrize("hook", [[500]], indirect=True)
async def test_a_webhook_that_keeps_failing_is_said_without_its_secrets(hook: Hook) -> None:
    said: list[str] = []
    actions = AlertActions(None, hook.url, said.append, backoff=0.01)
    actions(change("cleared"))
    await actions.close()
    assert len(hook.bodies) == 4
    port = hook.server.server_port
    assert said == [f"--alert-webhook http://127.0.0.1:{port}/…: HTTP 500 (4 tries)"]
    assert "secret" not in said[0] and "T0KEN" not in said[0]
    assert shown_url("https://hooks.example.com/services/T0/B0/XXX") == (
        "https://hooks.example.com/…"
    )


def test_run_runs_the_alert_program_and_goes_on_when_it_fails(db: Path, tmp_path: Path) -> None:
    record = tmp_path / "got"
    program = script(tmp_path, f'echo "$1 $2" >> {record}; exit 1')
    done = imdb_tui(
        "run", "--count", "200", "--rate", "max", "--db", str(db),
        "--alert", "events_total > 0", "--alert-exec", program,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert record.read_text() == "firing events_total > 0\n"
    assert f"alert action: --alert-exec {program}: exited with status 1" in done.stderr
    assert "done: 200 events stored" in done.stdout
    assert done.stdout.count("ALERT firing") == 1


async def test_a_firing_whose_pipeline_has_gone_is_listed_as_fired_not_firing() -> None:
    """The Alerts screen: what fires now in red with its time so far; a firing kept
    among the recent changes of a pipeline that stopped before it cleared, as fired."""
    from textual.app import App
    from textual.widgets import DataTable

    from imdb_tui.tui.alerts import AlertsScreen

    now_firing = dataclasses.replace(change(), name="now", since=stamp(30), at=stamp(30))
    state = AlertState(firing=(now_firing,), recent=(now_firing, change()))
    app: App[None] = App()
    async with app.run_test() as pilot:
        await app.push_screen(AlertsScreen(state, True, now=1796637660.0))
        await pilot.pause()
        table = app.screen.query_one(DataTable)
        rows = [[str(cell) for cell in table.get_row_at(n)] for n in range(table.row_count)]
    assert [row[:2] for row in rows] == [["FIRING", "now"], ["fired", "slow"]]
    assert rows[1][3:] == ["10:00:01", "–"]  # when it fired; how long, not known
