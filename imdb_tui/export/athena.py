"""`imdb-tui export --athena-ddl`: the statements that make Athena (or any Hive
metastore: Glue, Redshift Spectrum) read the exported tables where they are, with
partition projection on `dt`, so that no crawler or MSCK REPAIR is needed as days
are added."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from imdb_tui.export import arrow, schema_of


def hive_type(pa: Any, kind: Any) -> str:
    """A column's Parquet (Arrow) type as Hive names it."""
    if pa.types.is_dictionary(kind):
        return hive_type(pa, kind.value_type)
    if pa.types.is_list(kind):
        return f"array<{hive_type(pa, kind.value_type)}>"
    names = {
        pa.string(): "string",
        pa.int8(): "tinyint",
        pa.int16(): "smallint",
        pa.int64(): "bigint",
        pa.date32(): "date",
    }
    if pa.types.is_timestamp(kind):
        return "timestamp"
    return names[kind]


def athena_ddl(location: str, tables: Sequence[str], prefix: str = "imdb_") -> str:
    """CREATE EXTERNAL TABLE statements for `tables` exported to `location`
    (s3://BUCKET/PREFIX), each table named `prefix` + its name."""
    pa, _ = arrow()
    base = location.rstrip("/")
    statements = []
    for table in tables:
        columns = ",\n".join(
            f"  `{field.name}` {hive_type(pa, field.type)}" for field in schema_of(table)
        )
        where = f"{base}/{table}"
        statements.append(
            f"CREATE EXTERNAL TABLE IF NOT EXISTS `{prefix}{table}` (\n{columns}\n)\n"
            "PARTITIONED BY (`dt` string)\n"
            "STORED AS PARQUET\n"
            f"LOCATION '{where}/'\n"
            "TBLPROPERTIES (\n"
            "  'projection.enabled' = 'true',\n"
            "  'projection.dt.type' = 'date',\n"
            "  'projection.dt.format' = 'yyyy-MM-dd',\n"
            "  'projection.dt.range' = '2000-01-01,NOW',\n"
            "  'projection.dt.interval' = '1',\n"
            "  'projection.dt.interval.unit' = 'DAYS',\n"
            f"  'storage.location.template' = '{where}/dt=${{dt}}/'\n"
            ");"
        )
    return "\n\n".join(statements) + "\n"
