"""AWS clients from the standard configuration, and AWS failures said in one line,
or known as passing (retried) or not: shared by the Kinesis source and the DynamoDB
store. boto3 is the `aws` extra, imported only here and only when used."""

from __future__ import annotations

import os
from typing import Any, Final


class AwsSetupError(Exception):
    """AWS cannot be used here (boto3 missing, no region, no credentials): one line."""


def client(
    service: str,
    label: str,
    *,
    read_timeout: float = 10,
    attempts: int = 2,
    connections: int = 10,
) -> Any:
    """A client of `service` ("kinesis", "dynamodb") from the standard AWS configuration:
    the credential chain, the region, AWS_ENDPOINT_URL[_SERVICE] for a local endpoint.
    `label`: the service as messages name it (Kinesis, DynamoDB)."""
    try:
        import boto3
        from botocore.config import Config
    except ImportError:
        raise AwsSetupError(f"{label} needs boto3: pip install 'imdb-tui[aws]'") from None
    # A call that hangs is given up after `read_timeout` and tried again by the
    # caller, rather than holding a stop for a minute.
    config = Config(
        retries={"mode": "standard", "max_attempts": attempts},
        connect_timeout=5,
        read_timeout=read_timeout,
        max_pool_connections=connections,
    )
    # AWS_REGION is what the other AWS SDKs and the CLI read; botocore reads only
    # AWS_DEFAULT_REGION and the profile's region.
    # A session of its own: the environment as it is now, not as a first client saw it.
    session = boto3.session.Session()
    region = session.region_name or os.environ.get("AWS_REGION")
    try:
        return session.client(service, config=config, region_name=region)
    except Exception as error:  # NoRegionError and kin: said in one line
        raise AwsSetupError(describe(error, label)) from None


def describe(error: BaseException, where: str, missing: str = "no such resource") -> str:
    """One line for an AWS failure a user can act on; `where` names what was used
    (kinesis://STREAM, dynamodb://TABLE), `missing` says what a missing one means."""
    name = type(error).__name__
    code = error_code(error)
    if name == "NoRegionError":
        return "no AWS region: set AWS_REGION (or AWS_DEFAULT_REGION, or a profile's region)"
    if name in ("NoCredentialsError", "PartialCredentialsError"):
        return "no AWS credentials: set them in the environment, ~/.aws or an instance role"
    if code == "ResourceNotFoundException":
        return f"{where}: {missing}"
    if code in ("AccessDeniedException", "UnrecognizedClientException"):
        return f"{where}: access denied ({code})"
    if name in ("EndpointConnectionError", "ConnectTimeoutError", "ConnectionClosedError"):
        return f"cannot reach {where}: {error}"
    if code in THROTTLED_CODES:
        return f"{where}: throttled ({code})"
    return f"{where}: {error}"


def error_code(error: BaseException) -> str:
    """An AWS error's code (ResourceNotFoundException, ...), or ''."""
    code: str = (getattr(error, "response", None) or {}).get("Error", {}).get("Code", "")
    return code


THROTTLED_CODES: Final = frozenset(
    {
        "LimitExceededException",
        "ProvisionedThroughputExceededException",
        "RequestLimitExceeded",
        "ThrottlingException",
    }
)
PASSING_CODES: Final = THROTTLED_CODES | {
    "InternalFailure",
    "InternalServerError",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "TransactionConflictException",
}


def is_passing(error: BaseException) -> bool:
    """A failure that goes away by itself: the endpoint unreachable for a while, the
    service's own errors, throttling. Not a missing resource, nor a denied access."""
    try:
        from botocore.exceptions import ConnectionError as NoConnection
        from botocore.exceptions import HTTPClientError
    except ImportError:  # pragma: no cover - boto3 brings botocore
        return False
    if isinstance(error, NoConnection | HTTPClientError):
        return True
    response = getattr(error, "response", None) or {}
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    return error_code(error) in PASSING_CODES or status >= 500
