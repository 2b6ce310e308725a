"""What the commands print: status lines, run summaries and reports."""

from __future__ import annotations

import dataclasses
import json
import time
from datetime import tzinfo

import click

from imdb_tui.alerts import AlertChange, AlertState, figure_values, stored_alerts
from imdb_tui.cli.options import Failure, InputFailure
from imdb_tui.display import (
    clock_text,
    fit,
    literal,
    plural,
    rate_text,
    size_text,
    sparkline,
)
from imdb_tui.health import PipelineHealth
from imdb_tui.metrics import MetricsSnapshot, MovieDay, Ratings
from imdb_tui.pipeline import RunSummary
from imdb_tui.store import DeadLetter, SourcePosition


def print_summary(outcome: RunSummary, where: str, source: str) -> None:
    """The run's last lines; its failure, if it failed, as the error it exits with."""
    if outcome.resumed is not None:
        click.echo(
            f"resumed: {literal(source)} from {outcome.resumed}, where the last run into"
            f" this database stopped; {plural(outcome.emitted, 'record')} read since"
            " (--from-start reads it all)"
        )
    click.echo(
        f"done: {plural(outcome.stored, 'event')} stored,"
        f" {plural(outcome.duplicates, 'duplicate')},"
        f" {plural(outcome.rejected, 'dead letter')}"
        + (f", {plural(outcome.blank, 'blank line')} skipped" if outcome.blank else "")
        + f" in {outcome.elapsed:,.1f} s"
        f" ({outcome.stored / max(outcome.elapsed, 1e-9):,.0f}/s)"
    )
    click.echo(where)
    if outcome.input_error is not None:
        raise InputFailure(f"input error: {outcome.input_error}")
    if outcome.lost:
        raise Failure(f"{plural(outcome.lost, 'event')} could not be stored: {outcome.error}")


def status_line(snapshot: MetricsSnapshot, tz: tzinfo | None) -> str:
    """One line a second, under 80 columns for everyday figures."""
    health = snapshot.health
    assert health is not None
    p50, p99 = (
        f"{v:,.0f}" if v is not None else "-" for v in (health.lag_p50_ms, health.lag_p99_ms)
    )
    line = (
        f"{time.strftime('%H:%M:%S')} {health.state:<8} {health.ingest_rate:,.0f}/s"
        f" of {rate_text(health.target_rate)}  stored {snapshot.events_total:,}"
        f"  queue {health.queue_depth:,}  lag {p50}/{p99} ms"
    )
    if health.stream_time:
        line += f"  {clock_text(health.as_of, tz, health.replay_speed)}"
    if snapshot.ahead is not None:
        line += f"  {snapshot.ahead.events:,}{'+' if snapshot.ahead.more else ''} ahead of clock"
    if health.error:
        line += f"  {health.error}"
    return line


def dead_letters_text(letters: list[DeadLetter], as_json: bool) -> str:
    """Newest first. Raw lines are shown with control characters made visible."""
    if as_json:
        return json.dumps([dataclasses.asdict(letter) for letter in letters])
    if not letters:
        return "no dead letters"
    lines = []
    for letter in letters:
        lines.append(f"{letter.received_at}  {literal(letter.reason)}")
        lines.append(f"    {literal(letter.raw)}")
    return "\n".join(lines)


def report_json(
    snapshot: MetricsSnapshot,
    pipelines: list[PipelineHealth],
    positions: list[SourcePosition],
) -> str:
    """The report as one JSON object: the metrics, the pipelines and the sources."""
    report = snapshot.to_json()
    live = [pipeline for pipeline in pipelines if pipeline.live]
    with_health = dataclasses.replace(snapshot, health=live[0]) if live else snapshot
    report["figures"] = figure_values(with_health)  # a live pipeline's lag, rate, queue
    report["alerts"] = stored_alerts(pipelines).to_json()
    report["pipelines"] = [pipeline.to_json() for pipeline in pipelines]
    report["sources"] = [
        {"source": p.source, "position": _json_or_text(p.position), "updated_at": p.updated_at}
        for p in positions
    ]
    return json.dumps(report)


def _ratings_text(ratings: Ratings, past: bool = False) -> str:
    average = ratings.average
    if average is None:
        return "none" if past else "none yet"
    counts = " ".join(f"{r}:{n:,}" for r, n in enumerate(ratings.histogram, 1))
    return f"{ratings.count:,}, average {average:.2f}  ({counts})"


def movie_text(movie: MovieDay) -> str:
    """`report --movie`: one movie's day, as its screen in the monitor shows it."""
    year = f" ({movie.year})" if movie.year else ""
    views = [m.events for m in movie.per_minute]
    lines = [
        f"movie         {literal(movie.title + year)}",
        f"id            {literal(movie.movie_id)}",
        f"genres        {literal(', '.join(movie.genres)) or '-'}",
        f"day           {movie.day}",
        f"views         {movie.views:,}",
        f"users         {movie.users:,} (distinct, any event)",
        "by type       " + "   ".join(f"{k} {n:,}" for k, n in movie.by_type.items()),
        f"ratings       {_ratings_text(movie.ratings)}",
        f"per minute    {sparkline(views)}  (views, last 60 min, peak {max(views):,}/min)",
    ]
    return "\n".join(lines)


def _movement(movement: int | None) -> str:
    if movement is None:
        return "new"
    return f"▲{movement}" if movement > 0 else f"▼{-movement}" if movement < 0 else "="


def _json_or_text(text: str) -> object:
    try:
        return json.loads(text)
    except ValueError:
        return text


def alert_line(change: AlertChange) -> str:
    """`run`'s line when an alert fires or clears."""
    severity = "" if change.severity == "warning" else f" [{change.severity}]"
    return (
        f"{time.strftime('%H:%M:%S')} ALERT {change.state} {literal(change.name)}{severity}:"
        f" {change.value}"
        + (f" (firing since {change.since[11:19]} UTC)" if change.state == "cleared" else "")
    )


def alerts_text(state: AlertState) -> list[str]:
    """The report's alerts: what is firing, then the recent changes."""
    if not state.firing and not state.recent:
        return []
    lines = ["", f"alerts        {plural(len(state.firing), 'rule')} firing"]
    for alert in state.firing:
        lines.append(
            f"  firing  {literal(alert.name)}: {alert.value}, since {alert.since[:19]} UTC"
        )
    for alert in state.recent[:5]:
        lines.append(f"  {alert.at[:19]}  {alert.state:<8} {literal(alert.name)}: {alert.value}")
    return lines


def report_text(s: MetricsSnapshot, db: str, alerts: AlertState | None = None) -> str:
    """The stored metrics; a past day's (`report --day`) say "on DAY" for "today"."""
    today_total = max(s.events_today, 1)
    when = f"on {s.day}" if s.past else "today"
    users = "–" if s.users_today is None else f"{s.users_today:,}"
    lines = [
        f"database      {db} ({size_text(s.database_bytes)} of data)",
        f"events        {s.events_total:,} stored in all, {s.events_today:,} {when}",
        f"users         {s.active_users.count:,} active in the last"
        f" {s.active_users.window_minutes} min, {users} {when}",
        f"by type {when} "
        + "   ".join(f"{k} {n:,} ({n / today_total:.0%})" for k, n in s.by_type.items()),
        f"dead letters  {s.dead_letters:,}",
        f"duplicates    {s.duplicates:,}",
        *([f"clock         {s.ahead.text()}"] if s.ahead is not None else []),
        "",
        f"top movies {when}",
    ]
    if not s.top_movies:
        lines.append(f"  (no views {when})")
    for rank, movie in enumerate(s.top_movies, 1):
        year = f" ({movie.year})" if movie.year else ""
        title = literal(movie.title + year)
        lines.append(f"  {rank:>2}  {fit(title, 50)} {movie.views:>9,} views {movie.share:>6.1%}")
    lines += ["", f"ratings {when} " + _ratings_text(s.ratings, s.past)]
    lines += ["", "trending: views in the last 15 min against the hour before"]
    if not s.trending:
        lines.append("  (nothing viewed more than in the hour before)")
    else:
        lines.append(f"  {'':>2}  {'':>4}  {'':<42} {'15 min':>7} {'before':>7} {'change':>8}")
    for rank, trend in enumerate(s.trending, 1):
        year = f" ({trend.year})" if trend.year else ""
        title = literal(trend.title + year)
        lines.append(
            f"  {rank:>2}  {_movement(trend.movement):>4}  {fit(title, 42)}"
            f" {trend.views_recent:>7,} {trend.views_before:>7,} {f'+{trend.change:,.0f}':>8}"
        )
    minutes = [m.events for m in s.last_hour]
    lines += [
        "",
        f"per minute    {sparkline(minutes)}  (last 60 min, peak {max(minutes):,}/min)",
        f"per hour      {sparkline(list(s.per_hour))}  ({when} 00-23, peak {max(s.per_hour):,}/h)",
    ]
    if alerts is not None:
        lines += alerts_text(alerts)
    return "\n".join(lines)
