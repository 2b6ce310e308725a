"""Where an export writes: a folder, or an S3 prefix (s3://BUCKET/PREFIX).

Both hold one file a table and day, `TABLE/dt=DAY/part-00000.parquet`, and the
note of what was exported (STATE). A day is replaced whole, never seen half
written: in a folder it is written aside and renamed into place; on S3 it is one
object, which a PUT (or a multipart upload, for a large day) replaces at once,
and nothing else under the day's prefix.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final, Protocol

from imdb_tui import aws

FILE: Final = "part-00000.parquet"
"""A day's file of a table (part-00000.csv with --format csv)."""

WriteFile = Callable[[Path], int]
"""Writes a day's rows to a local file (made only if there are rows): how many."""


class DestinationError(Exception):
    """A destination that cannot be written or read, in one line."""


class Destination(Protocol):
    name: str

    def read_note(self, name: str) -> str | None:
        """A small text kept beside the tables (None: none yet)."""
        ...

    def write_note(self, name: str, text: str) -> None: ...

    def put_day(self, table: str, day: str, write: WriteFile, file: str = FILE) -> int:
        """A table's day, replaced whole by what `write` writes (removed if nothing)."""
        ...

    def put_file(self, name: str, write: WriteFile) -> int:
        """One file (a path under the destination), replaced whole (removed if empty)."""
        ...


def destination(to: str) -> Destination:
    if to.startswith("s3://"):
        return S3Prefix(to)
    return Folder(Path(to))


class Folder:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.name = str(path)

    def read_note(self, name: str) -> str | None:
        try:
            return (self.path / name).read_text()
        except OSError:
            return None

    def write_note(self, name: str, text: str) -> None:
        """Written aside and renamed into place: a stopped export leaves the last whole."""
        final = self.path / name
        aside = final.with_name(f".{final.name}.{uuid.uuid4().hex[:12]}")
        try:
            final.parent.mkdir(parents=True, exist_ok=True)
            aside.write_text(text)
            aside.replace(final)
        except OSError as error:
            raise DestinationError(f"{self.path}: {error.strerror or error}") from None

    def put_file(self, name: str, write: WriteFile) -> int:
        final = self.path / name
        aside = final.with_name(f".{final.name}.{uuid.uuid4().hex[:12]}")
        try:
            final.parent.mkdir(parents=True, exist_ok=True)
            rows = write(aside)
            if rows:
                aside.replace(final)
            else:
                final.unlink(missing_ok=True)
            return rows
        except OSError as error:
            raise DestinationError(f"{final.parent}: {error.strerror or error}") from None
        finally:
            aside.unlink(missing_ok=True)

    def put_day(self, table: str, day: str, write: WriteFile, file: str = FILE) -> int:
        folder = self.path / table
        final = folder / f"dt={day}"
        aside = folder / f".dt={day}.{uuid.uuid4().hex[:12]}"
        try:
            for stale in folder.glob(f".dt={day}.*"):  # left by an export that was stopped
                shutil.rmtree(stale, ignore_errors=True)
            aside.mkdir(parents=True)
            rows = write(aside / file)
            old = folder / f".dt={day}.{uuid.uuid4().hex[:12]}.old"
            if final.exists():
                final.rename(old)
            if rows:
                aside.rename(final)
            shutil.rmtree(old, ignore_errors=True)
            return rows
        except OSError as error:
            raise DestinationError(f"{folder}: {error.strerror or error}") from None
        finally:
            shutil.rmtree(aside, ignore_errors=True)


class S3Prefix:
    """s3://BUCKET/PREFIX, through boto3 and the standard AWS configuration
    (AWS_ENDPOINT_URL for a local endpoint). A day's file is uploaded whole (boto3
    splits a large one into parts): a failed upload leaves the old object."""

    def __init__(self, url: str) -> None:
        bucket, _, prefix = url[len("s3://") :].partition("/")
        if not bucket:
            raise DestinationError(f"{url}: name a bucket, as s3://BUCKET/PREFIX")
        self.name = url
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        try:
            self.client = aws.client("s3", "S3")
        except aws.AwsSetupError as error:
            raise DestinationError(str(error)) from None
        self._call("head_bucket", Bucket=bucket)

    def _key(self, *parts: str) -> str:
        return "/".join(p for p in (self.prefix, *parts) if p)

    def _call(self, operation: str, **arguments: Any) -> Any:
        try:
            return getattr(self.client, operation)(**arguments)
        except Exception as error:  # botocore's errors are made at run time
            if aws.error_code(error) in ("404", "NoSuchBucket"):
                raise DestinationError(f"{self.name}: no such bucket") from None
            raise DestinationError(aws.describe(error, self.name)) from None

    def read_note(self, name: str) -> str | None:
        try:
            answer = self.client.get_object(Bucket=self.bucket, Key=self._key(name))
        except Exception as error:
            if aws.error_code(error) in ("NoSuchKey", "404"):
                return None
            raise DestinationError(aws.describe(error, self.name)) from None
        text: str = answer["Body"].read().decode()
        return text

    def write_note(self, name: str, text: str) -> None:
        self._call("put_object", Bucket=self.bucket, Key=self._key(name), Body=text.encode())

    def put_day(self, table: str, day: str, write: WriteFile, file: str = FILE) -> int:
        return self.put_file(f"{table}/dt={day}/{file}", write)

    def put_file(self, name: str, write: WriteFile) -> int:
        key = self._key(name)
        with tempfile.TemporaryDirectory() as folder:
            local = Path(folder) / FILE
            rows = write(local)
            if rows:
                self._call("upload_file", Filename=str(local), Bucket=self.bucket, Key=key)
            else:
                with contextlib.suppress(DestinationError):
                    self._call("delete_object", Bucket=self.bucket, Key=key)
        return rows
