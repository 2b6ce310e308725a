"""What truly differs between the SQL backends' statements, and the statements made
from the model (`model.py`) with it: DDL, migrations, a batch of rows as a relation,
and the upsert each table's kind of change asks for.

Statements are written with `?` placeholders; `Dialect.sql` gives a backend's form.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from imdb_tui.store.model import (
    BY_NAME,
    MIGRATIONS,
    POSTGRES,
    SQLITE,
    VIEWS,
    Change,
    Column,
    Kind,
    Table,
    tables_at,
)


@dataclass(frozen=True)
class Dialect:
    backend: str
    types: Mapping[Kind, str]
    seq_type: str
    """The type of a SEQ column, the table's key."""
    without_rowid: str
    """Appended to a table whose key is not a row number."""
    placeholder: str
    locks_rows: bool = False
    """Writers lock the rows they change, each until it commits (PostgreSQL): a batch's
    rows go in key order, so two writers wait for each other and never deadlock."""

    def sql(self, statement: str) -> str:
        """A statement written with `?` placeholders, in this backend's form."""
        return _placeholders(statement, self.placeholder)

    def column_type(self, column: Column) -> str:
        return self.types[column.kind]

    def create_table(self, table: Table, version: int, name: str = "") -> str:
        lines = []
        for column in table.columns_at(version, self.backend):
            if column.kind is Kind.SEQ:
                lines.append(f"{column.name} {self.seq_type}")
                continue
            line = f"{column.name} {self.column_type(column)}"
            if table.single_row and column.name in table.key:
                line += f" PRIMARY KEY CHECK ({column.name} = 1)"
            else:
                line += "" if column.null else " NOT NULL"
                line += " UNIQUE" if column.name in table.unique else ""
            lines.append(line)
        rowid = table.single_row or table.column(table.key[0]).kind is Kind.SEQ
        if not rowid:
            lines.append(f"PRIMARY KEY ({', '.join(table.key)})")
        tail = "" if rowid else self.without_rowid
        return f"CREATE TABLE {name or table.name} ({', '.join(lines)}){tail}"

    def migration(self, version: int) -> list[str]:
        """The statements taking a database from version - 1 to `version`."""
        statements = []
        for table in tables_at(version, self.backend):
            if table.since == version:
                statements.append(self.create_table(table, version))
            else:
                statements.extend(
                    f"ALTER TABLE {table.name} ADD COLUMN {column.name}"
                    f" {self.column_type(column)}{'' if column.null else ' NOT NULL'}"
                    for column in table.columns_at(version, self.backend)
                    if column.since == version
                )
            statements.extend(self._indexes(table, version, new=table.since == version))
        step = MIGRATIONS[version - 1]
        mine = step.applies_to(self.backend)
        remade = [view for view in VIEWS if mine and version in view.remade]
        statements.extend(f"DROP VIEW {view.name}" for view in remade)
        for name in step.rebuild if mine else ():
            statements.extend(self._rebuild(BY_NAME[name], version))
        statements.extend(
            f"CREATE VIEW {view.name} AS {view.sql(self.readable)}"
            for view in VIEWS
            if view.since == version or view in remade
        )
        if mine:
            statements.extend(step.data)
        if mine and step.retype:
            statements.extend(
                f"ALTER TABLE {table.name} ALTER COLUMN {column.name} TYPE {kind}"
                f" USING CAST({column.name} AS {kind})"
                for table in tables_at(version, self.backend)
                for column in table.columns_at(version, self.backend)
                if (kind := self.column_type(column)) != self.types[Kind.TEXT]
                and column.kind in _TIMES
            )
        return statements

    def _rebuild(self, table: Table, version: int) -> list[str]:
        """A table made again in the model's types, its rows converted (see `stored`)."""
        columns = table.columns_at(version, self.backend)
        names = ", ".join(column.name for column in columns)
        values = ", ".join(self.stored(column.kind, column.name) for column in columns)
        new = f"{table.name}_rebuilt"
        return [
            self.create_table(table, version, new),
            f"INSERT INTO {new} ({names}) SELECT {values} FROM {table.name}"  # noqa: S608
            f" ORDER BY {', '.join(table.key)}",
            f"DROP TABLE {table.name}",
            f"ALTER TABLE {new} RENAME TO {table.name}",
            *self._indexes(table, version, new=True),
        ]

    def _indexes(self, table: Table, version: int, *, new: bool) -> list[str]:
        """The table's indexes to make at `version`: every one it has by then if the
        table is new (made or made again), else those this version brings."""
        return [
            f"CREATE INDEX {name} ON {table.name} ({column})"
            for name, column, since in table.indexes
            if since == version or (new and since < version)
        ]

    def packed(self, kind: Kind) -> bool:
        """Whether this backend keeps a kind in another form than the text every part
        of the program speaks (a number, a blob, a time type)."""
        return kind in _PACKED and self.types[kind] != self.types[Kind.TEXT]

    def out(self, kind: Kind, expression: str) -> str:
        """A time or id read back as the canonical text every part of the program
        speaks: an instant as 2026-11-20T23:40:00.000Z, a minute as 2026-11-20T23:40Z,
        a day as 2026-11-20, an id as given (as stored, where the backend stores text)."""
        return expression

    def into(self, kind: Kind) -> str:
        """A `?` bound to a time's canonical text, in the form the backend compares
        with a column of this kind."""
        return "?"

    def readable(self, kind: Kind, expression: str) -> str:
        """A column as people querying the store see it in a view: the backend's own
        type where it has one for the kind, else canonical text."""
        return self.out(kind, expression)

    def stored(self, kind: Kind, expression: str) -> str:
        """A value an older version stored, in the form this kind is stored in now
        (see Migration.rebuild)."""
        return expression

    def upsert(self, table: Table, columns: Sequence[str]) -> str:
        """INSERT a batch of rows (see `rows`) into these columns, as the table's
        kind of change says: add to the counts of a key, replace the values given,
        insert a key that is absent, or append."""
        kinds = [table.column(name).kind for name in columns]
        head = f"INSERT INTO {table.name} ({', '.join(columns)}) {self.rows(kinds)} WHERE true"
        values = [name for name in columns if name not in table.key]
        key = ", ".join(table.key)
        if table.change is Change.APPEND:
            return head
        if table.change is Change.INSERT or not values:
            return f"{head} ON CONFLICT ({key}) DO NOTHING"
        if table.change is Change.ADD:
            sets = [f"{v} = {table.name}.{v} + excluded.{v}" for v in values]
        else:
            sets = [f"{v} = excluded.{v}" for v in values]
        return f"{head} ON CONFLICT ({key}) DO UPDATE SET {', '.join(sets)}"

    def rows(self, kinds: Sequence[Kind], names: Sequence[str] = ()) -> str:
        """SELECT ... a batch of rows, bound as `rows_value` says; its columns named
        `names`, if given."""
        raise NotImplementedError

    def rows_value(self, kinds: Sequence[Kind], rows: Sequence[Sequence[object]]) -> list[object]:
        """The values `rows(kinds)` is bound to."""
        raise NotImplementedError

    def each(self) -> str:
        """A relation `item` of one bound list's items, in a column `value` (see
        `list_value`)."""
        raise NotImplementedError

    def list_value(self, items: Sequence[object]) -> object:
        raise NotImplementedError

    def find(self, needle: str, haystack: str) -> str:
        """Where text `needle` starts in `haystack`, from 1 (0: it is not there)."""
        raise NotImplementedError


class SqliteDialect(Dialect):
    """SQLite has no time type: instants are ISO-8601 text (which sorts as time does),
    except the events' times, whole milliseconds since 1970 in 6 bytes instead of 24,
    and their ids, 16 bytes instead of 36 when they are UUIDs (`packed_id`)."""

    def out(self, kind: Kind, expression: str) -> str:
        if not self.packed(kind):
            return expression
        if kind is Kind.MILLIS:
            return f"strftime('%Y-%m-%dT%H:%M:%fZ', {expression} / 1000.0, 'unixepoch')"
        hyphened = " || '-' || ".join(
            f"substr(hex({expression}), {start}, {n})" for start, n in _UUID_PARTS
        )
        return (
            f"CASE WHEN typeof({expression}) = 'blob' THEN lower({hyphened}) ELSE {expression} END"
        )

    def into(self, kind: Kind) -> str:
        return millis("?") if kind is Kind.MILLIS and self.packed(kind) else "?"

    def stored(self, kind: Kind, expression: str) -> str:
        if not self.packed(kind):
            return expression
        if kind is Kind.MILLIS:
            text = f"typeof({expression}) = 'text'"
            return f"CASE WHEN {text} THEN {millis(expression)} ELSE {expression} END"
        return f"{PACKED_ID}({expression})"

    def rows(self, kinds: Sequence[Kind], names: Sequence[str] = ()) -> str:
        return _json_rows(len(kinds), tuple(names))

    def rows_value(self, kinds: Sequence[Kind], rows: Sequence[Sequence[object]]) -> list[object]:
        # One JSON array: SQLite unpacks it with the GIL free, one bound value
        # however many rows.
        return [json.dumps(rows, ensure_ascii=False)]

    def each(self) -> str:
        return "json_each(?) AS item"

    def list_value(self, items: Sequence[object]) -> object:
        return json.dumps(list(items), ensure_ascii=False)

    def find(self, needle: str, haystack: str) -> str:
        return f"instr({haystack}, {needle})"


class PostgresDialect(Dialect):
    def out(self, kind: Kind, expression: str) -> str:
        if kind not in _TIMES or self.types[kind] == self.types[Kind.TEXT]:
            return expression
        return f"to_char({expression}, '{_CANONICAL[kind]}')"  # the session is in UTC

    def readable(self, kind: Kind, expression: str) -> str:
        return expression  # timestamptz and date: what a BI tool wants

    def rows(self, kinds: Sequence[Kind], names: Sequence[str] = ()) -> str:
        arrays = ", ".join(f"CAST(? AS {self.types[kind]}[])" for kind in kinds)
        named = f" AS r ({', '.join(names)})" if names else ""
        return f"SELECT * FROM unnest({arrays}){named}"  # noqa: S608 (types)

    def rows_value(self, kinds: Sequence[Kind], rows: Sequence[Sequence[object]]) -> list[object]:
        # One array a column.
        columns = [list(column) for column in zip(*rows, strict=True)]
        return [
            [_text(v) for v in column] if kind in _TEXTS else column
            for kind, column in zip(kinds, columns, strict=True)
        ]

    def each(self) -> str:
        return "unnest(CAST(? AS text[])) AS item (value)"

    def list_value(self, items: Sequence[object]) -> object:
        return list(items)

    def find(self, needle: str, haystack: str) -> str:
        return f"strpos({haystack}, {needle})"


_TEXTS: Final = frozenset({Kind.TEXT})  # free text; ids are checked before they come
_TIMES: Final = frozenset({Kind.INSTANT, Kind.MILLIS, Kind.MINUTE, Kind.DAY})
_PACKED: Final = _TIMES | {Kind.UUID}
_CANONICAL: Final = {
    Kind.INSTANT: 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"',
    Kind.MILLIS: 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"',
    Kind.MINUTE: 'YYYY-MM-DD"T"HH24:MI"Z"',
    Kind.DAY: "YYYY-MM-DD",
}


_UUID_PARTS: Final = ((1, 8), (9, 4), (13, 4), (17, 4), (21, 12))
_UUID: Final = re.compile("-".join(f"[0-9a-f]{{{n}}}" for _, n in _UUID_PARTS))
PACKED_ID: Final = "imdb_tui_packed_id"
"""The SQL function `packed_id` is registered as on each SQLite connection that may
write (the upgrade to schema 16 packs an older file's ids with it)."""


def packed_id(value: str | bytes) -> str | bytes:
    """An event id as SQLite keeps it: a canonical UUID (lower-case hex, hyphens
    8-4-4-4-12) as its 16 bytes, any other id (or anything else) as it is. Only the
    canonical form is packed, so two ids stored apart are still told apart."""
    if type(value) is str and len(value) == 36 and _UUID.fullmatch(value):
        return bytes.fromhex(value.replace("-", ""))
    return value


_HYPHENS: Final = (8, 13, 18, 23)  # where a canonical UUID's are


def packed_ids(ids: Sequence[str]) -> list[str | bytes]:
    """`packed_id` of each id; a batch whose ids are all canonical UUIDs (the usual
    case: producers make them) is checked and packed whole, at C speed."""
    count = len(ids)
    joined = "".join(ids)
    if set(map(len, ids)) == {36} and all(joined[at::36] == "-" * count for at in _HYPHENS):
        digits = joined.replace("-", "")
        if len(digits) == 32 * count:  # no other hyphen
            try:
                raw = bytes.fromhex(digits)
            except ValueError:
                raw = b""
            if raw.hex() == digits:  # lower-case hex digits only, nothing between
                return [raw[at : at + 16] for at in range(0, 16 * count, 16)]
    return [packed_id(event_id) for event_id in ids]


def millis(expression: str) -> str:
    """SQLite: an ISO-8601 instant as whole milliseconds since 1970 (exact: julianday
    is within a few microseconds)."""
    return f"CAST(round((julianday({expression}) - 2440587.5) * 86400000) AS INTEGER)"


def _text(value: object) -> object:
    """PostgreSQL's text holds no NUL: it is kept visible, as a rejection's raw text is."""
    return value.replace("\x00", "\\x00") if isinstance(value, str) else value


@functools.cache
def _placeholders(statement: str, placeholder: str) -> str:
    return statement if placeholder == "?" else statement.replace("?", placeholder)


@functools.cache
def _json_rows(width: int, names: tuple[str, ...]) -> str:
    columns = ", ".join(
        f"json_extract(value, '$[{i}]')" + (f" AS {names[i]}" if names else "")
        for i in range(width)
    )
    return f"SELECT {columns} FROM json_each(?)"  # noqa: S608 (numbers)


_TEXT_KINDS: Final = {
    Kind.INSTANT: "TEXT",  # ISO-8601, UTC, milliseconds, Z
    Kind.MILLIS: "TEXT",
    Kind.UUID: "TEXT",
    Kind.MINUTE: "TEXT",  # YYYY-MM-DDTHH:MMZ
    Kind.DAY: "TEXT",  # YYYY-MM-DD
    Kind.ID: "TEXT",
    Kind.TEXT: "TEXT",
}
SQLITE_DIALECT: Final = SqliteDialect(
    SQLITE,
    {
        **_TEXT_KINDS,
        Kind.MILLIS: "INTEGER",  # milliseconds since 1970
        Kind.UUID: "BLOB",  # a canonical UUID's 16 bytes, any other id as text
        Kind.SEQ: "INTEGER",
        Kind.COUNT: "INTEGER",
        Kind.INT: "INTEGER",
        Kind.REAL: "REAL",
        Kind.FLAG: "INTEGER",
    },
    seq_type="INTEGER PRIMARY KEY",
    without_rowid=" WITHOUT ROWID",
    placeholder="?",
)
POSTGRES_DIALECT: Final = PostgresDialect(
    POSTGRES,
    {
        Kind.INSTANT: "timestamptz",
        Kind.MILLIS: "timestamptz",
        Kind.UUID: "text",
        Kind.MINUTE: "timestamptz",
        Kind.DAY: "date",
        Kind.ID: "text",
        Kind.TEXT: "text",
        Kind.SEQ: "bigint",
        Kind.COUNT: "bigint",
        Kind.INT: "integer",
        Kind.REAL: "double precision",
        Kind.FLAG: "boolean",
    },
    seq_type="bigserial PRIMARY KEY",
    without_rowid="",
    placeholder="%s",
    locks_rows=True,
)
POSTGRES_BEFORE_TYPES: Final = dataclasses.replace(
    POSTGRES_DIALECT,
    types={**POSTGRES_DIALECT.types, **{kind: "text" for kind in _TIMES}},
)
"""PostgreSQL before schema 13, read as it is: times and days as text."""
SQLITE_BEFORE_PACKED: Final = dataclasses.replace(
    SQLITE_DIALECT, types={**SQLITE_DIALECT.types, Kind.MILLIS: "TEXT", Kind.UUID: "TEXT"}
)
"""SQLite before schema 16, read as it is: the events' ids and times as text."""
