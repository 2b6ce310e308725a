"""An input that fails part way is an input error: what came before is kept, run exits 1."""

from __future__ import annotations

import gzip
import json
import zlib
from pathlib import Path

from tests.helpers import query
from tests.test_cli import imdb_tui


def complete_and_partial(packed: bytes) -> tuple[int, int]:
    """Complete lines, and 1 if a partial last line, that a cut gzip stream still gives."""
    text = zlib.decompressobj(wbits=31).decompress(packed)
    return text.count(b"\n"), int(not text.endswith(b"\n"))


def test_a_truncated_gzip_keeps_every_line_before_the_cut(tmp_path: Path) -> None:
    db, path = tmp_path / "events.db", tmp_path / "cut.jsonl.gz"
    packed = gzip.compress(imdb_tui("produce", "--count", "5000", "--seed", "1").stdout.encode())
    cut = packed[: len(packed) * 6 // 10]
    path.write_bytes(cut)
    complete, partial = complete_and_partial(cut)
    assert complete > 1000 and partial == 1

    result = imdb_tui("run", "--source", str(path), "--db", str(db))
    assert result.returncode == 1
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"imdb-tui: input error: cannot read {path}")
    assert "Traceback" not in result.stderr and "storage" not in result.stderr
    assert query(db, "SELECT count(*) FROM events") == [(complete,)]
    assert query(db, "SELECT count(*) FROM dead_letters") == [(partial,)]
    assert f"done: {complete:,} events stored, 0 duplicates, 1 dead letter in" in result.stdout


def test_a_gz_file_that_is_not_gzip_is_an_input_error(tmp_path: Path) -> None:
    db, path = tmp_path / "events.db", tmp_path / "plain.jsonl.gz"
    path.write_text(imdb_tui("produce", "--count", "10").stdout)
    result = imdb_tui("run", "--source", str(path), "--db", str(db))
    assert result.returncode == 1
    assert result.stderr.startswith(f"imdb-tui: input error: cannot read {path}: Not a gzipped")
    assert query(db, "SELECT count(*) FROM events") == [(0,)]
    report = imdb_tui("report", "--db", str(db), "--json")
    (pipeline,) = json.loads(report.stdout)["pipelines"]
    assert pipeline["state"] == "failed" and not pipeline["live"]
    assert pipeline["error"].startswith("input error: cannot read")
