"""The Kinesis client from the standard AWS configuration, and AWS failures said in
one line, or known as passing (retried) or not."""

from __future__ import annotations

import os
from typing import Any, Final

from imdb_tui.sources import SourceError


def client() -> Any:
    """A Kinesis client from the standard AWS configuration."""
    try:
        import boto3
        from botocore.config import Config
    except ImportError:
        raise SourceError("Kinesis needs boto3: pip install 'imdb-tui[aws]'") from None
    # GetRecords answers at once (it is no long poll): a call that hangs is given up
    # after 10 s and tried again by the source, rather than holding a stop for a minute.
    config = Config(
        retries={"mode": "standard", "max_attempts": 2}, connect_timeout=5, read_timeout=10
    )
    # AWS_REGION is what the other AWS SDKs and the CLI read; botocore reads only
    # AWS_DEFAULT_REGION and the profile's region.
    region = boto3.session.Session().region_name or os.environ.get("AWS_REGION")
    try:
        return boto3.client("kinesis", config=config, region_name=region)
    except Exception as error:  # NoRegionError and kin: said in one line
        raise SourceError(describe(error)) from None


def describe(error: BaseException, stream: str | None = None) -> str:
    """One line for an AWS failure a user can act on."""
    name = type(error).__name__
    code = error_code(error)
    where = f"kinesis://{stream}" if stream else "Kinesis"
    if name == "NoRegionError":
        return "no AWS region: set AWS_REGION (or AWS_DEFAULT_REGION, or a profile's region)"
    if name in ("NoCredentialsError", "PartialCredentialsError"):
        return "no AWS credentials: set them in the environment, ~/.aws or an instance role"
    if code == "ResourceNotFoundException":
        return f"{where}: no such stream (create it, or produce with --create-shards N)"
    if code in ("AccessDeniedException", "UnrecognizedClientException"):
        return f"{where}: access denied ({code})"
    if name in ("EndpointConnectionError", "ConnectTimeoutError", "ConnectionClosedError"):
        return f"cannot reach {where}: {error}"
    return f"{where}: {error}"


def error_code(error: BaseException) -> str:
    """An AWS error's code (ResourceNotFoundException, ...), or ''."""
    code: str = getattr(error, "response", {}).get("Error", {}).get("Code", "")
    return code


PASSING_CODES: Final = frozenset(
    {
        "InternalFailure",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "LimitExceededException",
    }
)


def is_passing(error: BaseException) -> bool:
    """A failure that goes away by itself: the endpoint unreachable for a while, the
    service's own errors. Not a missing stream, nor a denied access."""
    try:
        from botocore.exceptions import ConnectionError as NoConnection
        from botocore.exceptions import HTTPClientError
    except ImportError:  # pragma: no cover - boto3 brings botocore
        return False
    if isinstance(error, NoConnection | HTTPClientError):
        return True
    status = getattr(error, "response", {}).get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    return error_code(error) in PASSING_CODES or status >= 500
