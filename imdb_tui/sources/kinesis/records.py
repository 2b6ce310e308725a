"""What one Kinesis record holds, as producers write them: the events it carries.

A record is, by its first bytes:
- a KPL aggregate (magic f3 89 9a c2, a protobuf `AggregatedRecord`, an MD5 of it):
  its user records, in order, as the Kinesis Client Library unpacks them;
- gzip (1f 8b): decompressed, up to MAX_UNZIPPED bytes;
- then one JSON value per event: a JSON array is its elements, newline-delimited
  JSON its lines, anything else one event (a pretty-printed object included).
A user record of an aggregate may itself be gzip, an array or lines.

`unpack` turns a record into its parts, in an order that depends only on its bytes,
so that a checkpoint can say how many of a record's parts are stored (the KCL's
sub-sequence number) and a restart carry on with the next one. A part that cannot
be read (an aggregate whose checksum does not match, a gzip bomb) is a part too,
with its problem: validation makes it a dead letter saying so, and where it was.

The aggregate's body is read with Google's protobuf library (the `aws` extra), its
two messages declared here as the KPL's messages.proto declares them. The
reference de-aggregator (aws-kinesis-agg, a test dependency: the tests build their
aggregates with it) is not used here: it hands a record whose checksum does not
match on as if it were plain data, stops at a user record it cannot make and
only prints why, and re-encodes each user record in base64.
"""

from __future__ import annotations

import hashlib
import zlib
from functools import cache
from typing import Any, Final

import orjson

from imdb_tui.events import MAX_LINE_BYTES, Located
from imdb_tui.sources import SourceError

KPL_MAGIC: Final = b"\xf3\x89\x9a\xc2"
DIGEST_SIZE: Final = 16
GZIP_MAGIC: Final = b"\x1f\x8b"
MAX_RECORD: Final = 1024 * 1024
"""A Kinesis record's data and partition key together: an aggregate's bound."""
_MAX_BODY: Final = MAX_RECORD - 256 - len(KPL_MAGIC) - DIGEST_SIZE  # 256: its partition key
MAX_UNZIPPED: Final = 8 * MAX_LINE_BYTES
"""A gzip record may unpack to this much: a record (at most 1 MiB) of many events,
not a bomb."""


def unpack(data: bytes, origin: str) -> list[Located]:
    """The parts of one record, each with where it came from."""
    if data[:4] == KPL_MAGIC and len(data) > len(KPL_MAGIC) + DIGEST_SIZE:
        return _aggregate(data, origin)
    return _events(data, origin)


def _aggregate(data: bytes, origin: str) -> list[Located]:
    body, digest = data[len(KPL_MAGIC) : -DIGEST_SIZE], data[-DIGEST_SIZE:]
    if hashlib.md5(body, usedforsecurity=False).digest() != digest:
        return [Located.unreadable(data, origin, "KPL aggregate: its MD5 checksum does not match")]
    from google.protobuf.message import DecodeError

    message = _aggregated_record()()
    try:
        message.ParseFromString(body)
    except DecodeError:
        return [Located.unreadable(data, origin, "KPL aggregate: its body is no AggregatedRecord")]
    parts: list[Located] = []
    for number, record in enumerate(message.records):
        parts += _events(record.data, f"{origin}, sub-sequence {number}")
    return parts


def _events(data: bytes, origin: str) -> list[Located]:
    if data[:2] == GZIP_MAGIC:
        unzipped = _gunzip(data)
        if isinstance(unzipped, str):
            return [Located.unreadable(data, origin, unzipped)]
        data = unzipped
    start = data[:1]
    if start.isspace():
        start = data.lstrip()[:1]
    newline = data.find(b"\n")
    if start == b"[" or (start == b"{" and newline >= 0 and data[newline:].strip()):
        try:
            whole = orjson.loads(data)
        except orjson.JSONDecodeError:
            whole = None  # lines, or bad JSON: said by validation, line by line
        if isinstance(whole, list):
            return [
                Located.at(orjson.dumps(element), f"{origin}, element {number}")
                for number, element in enumerate(whole)
            ]
        if whole is not None:
            return [Located.at(data, origin)]
        lines = data.splitlines()
        if len(lines) > 1:
            return [
                Located.at(line, f"{origin}, line {number}")
                for number, line in enumerate(lines, 1)
                if line.strip()
            ]
    return [Located.at(data, origin)]


def pack(records: list[tuple[str, bytes]]) -> list[tuple[str, bytes, int]]:
    """User records (partition key, data), in order, as KPL aggregates of at most
    MAX_RECORD bytes each, in order: (the first one's partition key, the aggregate,
    how many user records it holds)."""
    aggregates: list[tuple[str, bytes, int]] = []
    message_class = _aggregated_record()
    message, keys, size = message_class(), dict[str, int](), 0
    for key, data in records:
        grows = len(data) + 16 + (0 if key in keys else len(key.encode()) + 8)
        if size + grows > _MAX_BODY and message.records:
            aggregates.append(_sealed(message))
            message, keys, size = message_class(), {}, 0
        if key not in keys:
            keys[key] = len(keys)
            message.partition_key_table.append(key)
        message.records.add(partition_key_index=keys[key], data=data)
        size += grows
    if message.records:
        aggregates.append(_sealed(message))
    return aggregates


def _sealed(message: Any) -> tuple[str, bytes, int]:
    body = message.SerializeToString()
    digest = hashlib.md5(body, usedforsecurity=False).digest()
    return message.partition_key_table[0], KPL_MAGIC + body + digest, len(message.records)


def _gunzip(data: bytes) -> bytes | str:
    """The decompressed bytes, or why there are none."""
    unzip = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        unzipped = unzip.decompress(data, MAX_UNZIPPED)
        if unzip.unconsumed_tail:
            return f"gzip record over {MAX_UNZIPPED // 1024 // 1024} MiB decompressed"
        if not unzip.eof:
            return "gzip record cut short"
    except zlib.error as error:
        return f"gzip record: {error}"
    return unzipped


@cache
def _aggregated_record() -> Any:
    """The KPL's AggregatedRecord message class (messages.proto, its two messages)."""
    try:
        from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
    except ImportError:
        raise SourceError(
            "KPL-aggregated records need protobuf: pip install 'imdb-tui[aws]'"
        ) from None
    field = descriptor_pb2.FieldDescriptorProto
    file = descriptor_pb2.FileDescriptorProto(
        name="imdb_tui/kpl.proto", package="imdb_tui.kpl", syntax="proto2"
    )
    record = file.message_type.add(name="Record")
    record.field.add(name="partition_key_index", number=1, type=field.TYPE_UINT64,
                     label=field.LABEL_REQUIRED)  # fmt: skip
    record.field.add(name="explicit_hash_key_index", number=2, type=field.TYPE_UINT64,
                     label=field.LABEL_OPTIONAL)  # fmt: skip
    record.field.add(name="data", number=3, type=field.TYPE_BYTES, label=field.LABEL_REQUIRED)
    aggregated = file.message_type.add(name="AggregatedRecord")
    for number, name in enumerate(("partition_key_table", "explicit_hash_key_table"), 1):
        aggregated.field.add(name=name, number=number, type=field.TYPE_STRING,
                             label=field.LABEL_REPEATED)  # fmt: skip
    aggregated.field.add(name="records", number=3, type=field.TYPE_MESSAGE,
                         label=field.LABEL_REPEATED, type_name=".imdb_tui.kpl.Record")  # fmt: skip
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return message_factory.GetMessageClass(
        pool.FindMessageTypeByName("imdb_tui.kpl.AggregatedRecord")
    )
