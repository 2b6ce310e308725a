"""The Kinesis client from the standard AWS configuration, and its failures said in
one line (see imdb_tui.aws, shared with the DynamoDB store)."""

from __future__ import annotations

from typing import Any

from imdb_tui import aws
from imdb_tui.aws import error_code, is_passing
from imdb_tui.sources import SourceError

__all__ = ["client", "describe", "error_code", "is_passing"]


def client() -> Any:
    """A Kinesis client from the standard AWS configuration."""
    try:
        # GetRecords answers at once (it is no long poll).
        return aws.client("kinesis", "Kinesis")
    except aws.AwsSetupError as error:
        raise SourceError(str(error)) from None


def describe(error: BaseException, stream: str | None = None) -> str:
    """One line for an AWS failure a user can act on."""
    where = f"kinesis://{stream}" if stream else "Kinesis"
    return aws.describe(
        error, where, "no such stream (create it, or produce with --create-shards N)"
    )
