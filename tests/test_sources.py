"""JSON Lines sources: files, gzip, pipes, lines cut anywhere, hostile lines as dead letters."""

from __future__ import annotations

import asyncio
import gzip
import json
import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imdb_tui.clock import ManualClock
from imdb_tui.events import EVENT_TYPES, MAX_LINE_BYTES, Event, validate
from imdb_tui.pipeline import Pipeline, PipelineSettings
from imdb_tui.sources import SourceError
from imdb_tui.sources.jsonlines import JsonLinesSource, LineSplitter
from imdb_tui.store import open_store

from .conftest import NOW, event
from .helpers import query


def jsonl(records: list[dict[str, object]]) -> bytes:
    return b"".join(json.dumps(record).encode() + b"\n" for record in records)


@given(
    st.lists(st.binary(max_size=40).map(lambda b: b.replace(b"\n", b"")), max_size=20), st.data()
)
def test_lines_come_out_whole_however_the_bytes_are_cut(
    lines: list[bytes], data: st.DataObject
) -> None:
    stream = b"".join(line + b"\n" for line in lines)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=8)))
    splitter, out, start = LineSplitter(), [], 0
    starts: list[int] = []
    numbers: list[int | None] = []
    for cut in [*cuts, len(stream)]:
        out += splitter.feed(stream[start:cut])
        starts += splitter.starts
        numbers += splitter.numbers
        start = cut
    assert out + splitter.end() == lines
    # Each line's place, as a dead letter says it: its first byte and its number.
    assert [stream[at : at + len(line)] for at, line in zip(starts, lines, strict=True)] == lines
    assert numbers == [stream[:at].count(b"\n") + 1 for at in starts]


def test_a_last_line_without_a_newline_is_still_a_line() -> None:
    splitter = LineSplitter()
    assert splitter.feed(b'{"a": 1}\n{"b"') == [b'{"a": 1}']
    assert splitter.feed(b": 2}") == []
    assert splitter.end() == [b'{"b": 2}']


def test_an_overlong_line_is_cut_and_the_next_one_is_whole() -> None:
    splitter = LineSplitter()
    out = splitter.feed(b"x" * (MAX_LINE_BYTES // 2))
    out += splitter.feed(b"x" * MAX_LINE_BYTES)  # over the limit: handed on cut, once
    out += splitter.feed(b"x" * MAX_LINE_BYTES + b"\nnext\n")
    assert [len(line) for line in out] == [MAX_LINE_BYTES + 1, 4]
    assert out[1] == b"next"
    assert splitter.starts == [3 * MAX_LINE_BYTES // 2 + MAX_LINE_BYTES + 1]
    assert splitter.numbers == [2]  # the cut line's newline is counted though skipped


def test_a_resumed_splitter_numbers_lines_from_where_it_was_or_not_at_all() -> None:
    resumed = LineSplitter(offset=1000, newlines=41)
    assert resumed.feed(b"a\nb\n") == [b"a", b"b"]
    assert (resumed.starts, resumed.numbers) == ([1000, 1002], [42, 43])
    unknown = LineSplitter(offset=1000, newlines=None)  # a position stored without it
    unknown.feed(b"a\n")
    assert (unknown.starts, unknown.numbers) == ([1000], [None])


async def read_all(source: JsonLinesSource, limit: int = 3) -> list[object]:
    out: list[object] = []
    while chunk := await source.read(limit):
        assert len(chunk) <= limit
        out += chunk
    return out


async def test_a_file_and_its_gzip_give_the_same_lines(tmp_path: Path) -> None:
    payload = jsonl([event(n) for n in range(10)])
    (tmp_path / "e.jsonl").write_bytes(payload)
    with gzip.open(tmp_path / "e.jsonl.gz", "wb") as packed:
        packed.write(payload)
    plain = await read_all(JsonLinesSource(str(tmp_path / "e.jsonl")))
    unpacked = await read_all(JsonLinesSource(str(tmp_path / "e.jsonl.gz")))
    assert plain == unpacked == payload.splitlines()


async def test_stop_ends_a_read_waiting_on_a_silent_pipe() -> None:
    reading, writing = os.pipe()
    source = JsonLinesSource("-", os.fdopen(reading, "rb"))
    try:
        os.write(writing, jsonl([event(1)]))
        assert await source.read(10) == [jsonl([event(1)]).rstrip(b"\n")]
        waiting = asyncio.create_task(source.read(10))  # nothing more is coming
        await asyncio.sleep(0.05)
        assert not waiting.done()
        source.stop()
        async with asyncio.timeout(30):
            assert await waiting == []
    finally:
        os.close(writing)


async def test_a_stopped_pipe_gives_its_rest_and_a_second_stop_cuts_it_short() -> None:
    """Once stopped, `rest` reads a pipe on to its end: the lines written after the
    stop, and the one that was half written when it came. Stopped again while it
    waits on a silent writer, it hands out what it has, the cut line to be rejected."""
    reading, writing = os.pipe()
    source = JsonLinesSource("-", os.fdopen(reading, "rb"))
    line = [jsonl([event(n)]).rstrip(b"\n") for n in range(4)]
    try:
        os.write(writing, line[0] + b"\n" + line[1][:20])
        assert await source.read(10) == [line[0]]
        source.stop()
        assert await source.read(10) == []  # stopped: read no more
        os.write(writing, line[1][20:] + b"\n" + line[2] + b"\n" + line[3][:9])
        resting = asyncio.create_task(source.rest(10))
        await asyncio.sleep(0.05)
        assert not resting.done()  # the writer may finish: waited for (DRAIN_IDLE)
        source.stop()  # a second Ctrl-C
        async with asyncio.timeout(30):
            assert await resting == [line[1], line[2], line[3][:9]]
        assert await source.rest(10) == []
    finally:
        os.close(writing)


async def test_a_stopped_pipe_is_read_to_its_end() -> None:
    reading, writing = os.pipe()
    source = JsonLinesSource("-", os.fdopen(reading, "rb"))
    line = [jsonl([event(n)]).rstrip(b"\n") for n in range(3)]
    os.write(writing, line[0] + b"\n")
    assert await source.read(10) == [line[0]]
    source.stop()
    os.write(writing, line[1] + b"\n" + line[2])  # its last line without a newline
    os.close(writing)
    assert await source.rest(1) == [line[1]]
    assert await source.rest(10) == [line[2]]
    assert await source.rest(10) == []


HOSTILE = [
    b'{"event_id": "broken',  # invalid JSON
    b"[1, 2, 3]",  # not an object
    b'"just a string"',
    json.dumps(event(1, event_type="like")).encode(),  # unknown type
    json.dumps(event(2, event_id="bad id!")).encode(),
    json.dumps(event(3, rating=11, event_type="rate")).encode(),  # rating out of range
    json.dumps(event(4, event_time="yesterday")).encode(),
    json.dumps(event(6, user_id=7)).encode(),  # wrong type
    b"\xff\xfe not utf-8",
    b'{"event_id": "a\x00b"}',  # NUL
    b"x" * (MAX_LINE_BYTES + 10),  # too long
    json.dumps(event(7, movie_id="[bold red]tt1[/]\x1b[31m")).encode(),  # markup, escapes
    b'{"event_id": "\x1b[31mred\x1b[0m"}',  # a raw escape sequence
]


async def test_every_valid_line_is_stored_and_every_other_is_a_dead_letter(
    tmp_path: Path, db_path: Path
) -> None:
    valid = [event(100 + n) for n in range(50)]
    lines = [json.dumps(record).encode() for record in valid]
    mixed = [line for pair in zip(lines, HOSTILE * 4, strict=False) for line in pair]
    mixed += lines[len(HOSTILE * 4) :]
    (tmp_path / "mixed.jsonl").write_bytes(b"\n".join(mixed) + b"\n")
    store = open_store(db_path)
    clock = ManualClock(NOW)
    source = JsonLinesSource(str(tmp_path / "mixed.jsonl"))
    summary = await Pipeline(source, store, clock, PipelineSettings(rate=None)).run()
    store.close()
    assert summary.stored == len(valid) == query(db_path, "SELECT count(*) FROM events")[0][0]
    hostile = len(mixed) - len(valid)
    assert summary.rejected == hostile
    reasons = query(db_path, "SELECT reason, raw FROM dead_letters ORDER BY id")
    assert len(reasons) == hostile and all(reason for reason, _ in reasons)
    offsets = [sum(len(line) + 1 for line in mixed[:n]) for n in range(len(mixed))]
    bad = [n for n, line in enumerate(mixed) if line not in lines]
    assert [reason[reason.rindex(" (") :] for reason, _ in reasons] == [
        f" ({tmp_path / 'mixed.jsonl'} line {n + 1}, byte {offsets[n]:,})" for n in bad
    ]  # where each is in the file, to open it there
    assert any("1 MiB" in reason for reason, _ in reasons)
    assert any("\x1b[31m" in raw for _, raw in reasons)  # kept as received (shown literally)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.binary(max_size=60), min_size=1, max_size=30))
def test_random_bytes_lose_no_line(tmp_path_factory: object, lines: list[bytes]) -> None:
    lines = [line.replace(b"\n", b"") for line in lines]
    directory = tmp_path_factory.mktemp("random")  # type: ignore[attr-defined]
    path = directory / "random.jsonl"
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    store = open_store(":memory:")
    pipeline = Pipeline(
        JsonLinesSource(str(path)), store, ManualClock(NOW), PipelineSettings(rate=None)
    )
    summary = asyncio.run(pipeline.run())
    store.close()
    assert summary.stored + summary.duplicates + summary.rejected + summary.blank == len(lines)
    assert summary.blank == sum(1 for line in lines if not line.strip())


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner),
    max_leaves=10,
)
EVENT_FIELD = st.sampled_from(
    ["event_id", "event_time", "user_id", "session_id", "movie_id", "event_type", "rating", "x"]
)


@st.composite
def json_lines(draw: st.DrawFn) -> bytes:
    """Any JSON value, or an event with one field set to any JSON value (or dropped)."""
    if draw(st.booleans()):
        return json.dumps(draw(JSON)).encode()
    record = event(draw(st.integers(0, 50)), event_type=draw(st.sampled_from(EVENT_TYPES)))
    field = draw(EVENT_FIELD)
    if draw(st.booleans()):
        record.pop(field, None)
    else:
        record[field] = draw(JSON)
    return json.dumps(record).encode()


@settings(max_examples=40, deadline=None)
@given(st.lists(json_lines(), min_size=1, max_size=25))
def test_random_json_is_stored_if_valid_and_a_dead_letter_otherwise(
    tmp_path_factory: object, lines: list[bytes]
) -> None:
    path = tmp_path_factory.mktemp("json") / "random.jsonl"  # type: ignore[attr-defined]
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    valid = {}
    for line in lines:
        result = validate(line)
        if isinstance(result, Event):
            valid.setdefault(result.event_id, result)
    store = open_store(":memory:")
    pipeline = Pipeline(
        JsonLinesSource(str(path)), store, ManualClock(NOW), PipelineSettings(rate=None)
    )
    summary = asyncio.run(pipeline.run())
    stored = store.count_events()
    reasons = [letter.reason for letter in store.dead_letters(100)]
    store.close()
    assert stored == summary.stored == len(valid)  # every valid event, once
    assert summary.rejected == len(reasons) == len(lines) - summary.stored - summary.duplicates
    assert all(reasons)


async def next_lines(source: JsonLinesSource, count: int) -> list[object]:
    """Read until `count` lines have come (a followed file never ends)."""
    out: list[object] = []
    async with asyncio.timeout(30):
        while len(out) < count:
            out += await source.read(100)
    return out


async def test_follow_reads_a_growing_file_and_waits_for_a_whole_last_line(
    tmp_path: Path,
) -> None:
    path = tmp_path / "live.jsonl"
    path.write_bytes(b"one\n")
    source = JsonLinesSource(str(path), follow=True)
    assert await next_lines(source, 1) == [b"one"]
    with path.open("ab") as log:
        log.write(b"two\nthr")
        log.flush()
        assert await next_lines(source, 1) == [b"two"]
        pending = asyncio.create_task(source.read(100))
        await asyncio.sleep(0.5)  # the partial line is not handed on
        assert not pending.done()
        log.write(b"ee\n")
        log.flush()
        async with asyncio.timeout(30):
            assert await pending == [b"three"]
    source.stop()
    assert await source.read(100) == []


async def test_follow_starts_again_after_truncation_and_rotation(tmp_path: Path) -> None:
    path = tmp_path / "live.jsonl"
    path.write_bytes(b"a\nb\n")
    source = JsonLinesSource(str(path), follow=True)
    assert await next_lines(source, 2) == [b"a", b"b"]
    path.write_bytes(b"c\n")  # truncated and rewritten in place
    assert await next_lines(source, 1) == [b"c"]
    with path.open("ab") as old:
        old.write(b"d\n")  # written just before the rotation: still read
    path.rename(tmp_path / "live.jsonl.1")
    path.write_bytes(b"e\nf\n")  # the new file, from its start
    assert await next_lines(source, 3) == [b"d", b"e", b"f"]
    source.stop()


async def test_follow_notices_a_file_truncated_and_regrown_past_where_it_was(
    tmp_path: Path,
) -> None:
    """copytruncate: the file is emptied and written again, longer than before, between
    two looks. Its size says nothing; its first bytes say it is another stream."""
    path = tmp_path / "live.jsonl"
    path.write_bytes(b"a\nb\n")
    source = JsonLinesSource(str(path), follow=True)
    assert await next_lines(source, 2) == [b"a", b"b"]
    path.write_bytes(b"c1\nd22\ne333\nf4444\n")  # longer than the old offset
    assert await next_lines(source, 4) == [b"c1", b"d22", b"e333", b"f4444"]
    source.stop()


async def test_follow_notices_copytruncate_while_it_is_behind(tmp_path: Path) -> None:
    """Truncated and regrown while the source is still reading the old lines: what it
    had read is handed out, then the new stream from its first line, none skipped."""
    path = tmp_path / "live.jsonl"
    old = [b"old-%06d-" % n + b"x" * 30 for n in range(5000)]  # well past one read
    path.write_bytes(b"\n".join(old) + b"\n")
    source = JsonLinesSource(str(path), follow=True)
    first = await source.read(100)
    assert first == old[:100]
    new = [b"new-%06d-" % n + b"y" * 30 for n in range(8000)]
    with path.open("r+b") as rotated:  # as logrotate's copytruncate leaves it, then written
        rotated.truncate(0)
        rotated.write(b"\n".join(new) + b"\n")
    got: list[object] = []
    async with asyncio.timeout(30):
        while new[-1] not in got:
            got += await source.read(1000)
    source.stop()
    start = got.index(new[0])
    had, cut = got[:start], len(got[:start]) + 100
    if had and had[-1] not in old:  # the line the read stopped in: handed on, rejected
        assert old[cut - 1].startswith(had.pop())  # type: ignore[arg-type]
    assert had == old[100 : 100 + len(had)]  # the old lines it had read, in order
    assert got[start:] == new  # then every new one, once


async def test_follow_reads_a_renamed_file_to_its_end_then_the_new_one(tmp_path: Path) -> None:
    path = tmp_path / "live.jsonl"
    old = [b"old-%06d" % n for n in range(20_000)]
    path.write_bytes(b"\n".join(old) + b"\n")
    source = JsonLinesSource(str(path), follow=True)
    first = await source.read(10)
    path.rename(tmp_path / "live.jsonl.1")  # rotated while behind
    path.write_bytes(b"new-1\nnew-2\n")
    rest = await next_lines(source, len(old) - 10 + 2)
    source.stop()
    assert first + rest == [*old, b"new-1", b"new-2"]


async def test_follow_hands_on_a_renamed_files_cut_last_line_then_reads_the_new_one(
    tmp_path: Path,
) -> None:
    """Rotated with its last line half written: that line is handed on (to be
    rejected, not lost), then the new file is read."""
    path = tmp_path / "live.jsonl"
    path.write_bytes(b"a-1\na-2\n")
    source = JsonLinesSource(str(path), follow=True)
    assert await source.read(10) == [b"a-1", b"a-2"]
    with path.open("ab") as old:
        old.write(b"a-3\na-4")  # the writer renamed away in the middle of a line
    path.rename(tmp_path / "live.jsonl.1")
    path.write_bytes(b"b-1\n")
    rest = await next_lines(source, 3)
    source.stop()
    assert rest == [b"a-3", b"a-4", b"b-1"]


def test_follow_needs_a_plain_file(tmp_path: Path) -> None:
    (tmp_path / "x.jsonl.gz").write_bytes(b"")
    for path in ("-", str(tmp_path / "x.jsonl.gz")):
        with pytest.raises(SourceError, match="--follow"):
            JsonLinesSource(path, follow=True)


async def test_a_stopped_file_keeps_no_partial_line_and_resumes_at_a_line_start(
    tmp_path: Path,
) -> None:
    """Stopped while the next bytes are being read, a file hands out no half line (it is
    not the file's end): its position stays at the line's start, and the next start
    reads that line whole."""
    path = tmp_path / "events.jsonl"
    first = json.dumps(event(1)).encode() + b"\n"
    half = json.dumps(event(2)).encode()
    path.write_bytes(first + half[:20])
    source = JsonLinesSource(str(path))
    assert await source.read(10) == [first[:-1]]
    never = asyncio.Event()

    async def slow_disk() -> bytes:  # the next read is still on its way when Ctrl-C comes
        await never.wait()
        return b""

    source._read_bytes = slow_disk  # type: ignore[method-assign]
    waiting = asyncio.ensure_future(source.read(10))
    await asyncio.sleep(0.01)
    source.stop()
    assert await waiting == []  # not the 20 bytes of a line cut short
    (position,) = source.positions()
    assert json.loads(position.position)["offset"] == len(first)
    path.write_bytes(first + half + b"\n")
    again = JsonLinesSource(str(path))
    assert await again.start(lambda key: position.position) == f"line 2 (byte {len(first):,})"
    assert await again.read(10) == [half]
