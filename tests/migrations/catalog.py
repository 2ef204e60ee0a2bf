"""Migrations tests: what PostgreSQL's catalog says about a schema, as lines two databases can diff.

Each fact is one line naming its object, so a difference reads as a unified
diff of the objects that differ (``- expected`` / ``+ actual``). Names and
definitions come from pg_catalog's own renderers (format_type, pg_get_expr,
pg_get_constraintdef, pg_get_indexdef, pg_get_triggerdef): they spell a
definition the same way whichever DDL created it, so hand-run SQL and Alembic
compare equal exactly when the objects are the same.

Column order is compared (one ``column order`` line per table) rather than
ignored: the baseline claims to be *exactly* schema.sql, and positional
consumers (``SELECT *``, ``COPY`` or ``INSERT`` without a column list, dumps
restored into the other database) break when it differs. It costs nothing to
keep, since op.create_table states the columns in the file's order.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass, fields

import sqlalchemy as sa

__all__ = ["IGNORED_TABLES", "SchemaSnapshot", "snapshot"]

# Alembic's own bookkeeping: present only in a migrated database, not a fact
# about the schema the application uses.
IGNORED_TABLES = ("alembic_version",)

_RELATIONS = """
    SELECT c.oid
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = :schema AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
      AND c.relname <> ALL(:ignored)
"""

_TABLES = f"""
    SELECT c.relname || ': kind ' || c.relkind::text || ', persistence ' || c.relpersistence::text
        || coalesce(', comment ' || quote_literal(obj_description(c.oid, 'pg_class')), '')
    FROM pg_class c WHERE c.oid IN ({_RELATIONS})
"""

_COLUMNS = f"""
    SELECT c.relname || '.' || a.attname || ': ' || format_type(a.atttypid, a.atttypmod)
        || CASE WHEN a.attnotnull THEN ' NOT NULL' ELSE ' NULL' END
        || coalesce(' DEFAULT ' || pg_get_expr(d.adbin, d.adrelid), '')
        || CASE WHEN a.attidentity <> '' THEN ' IDENTITY ' || a.attidentity::text ELSE '' END
        || CASE WHEN a.attgenerated <> '' THEN ' GENERATED ' || a.attgenerated::text ELSE '' END
        || CASE WHEN a.attcollation <> t.typcollation
                THEN ' COLLATE ' || quote_ident(co.collname) ELSE '' END
        || coalesce(' COMMENT ' || quote_literal(col_description(c.oid, a.attnum)), '')
    FROM pg_attribute a
    JOIN pg_class c ON c.oid = a.attrelid
    JOIN pg_type t ON t.oid = a.atttypid
    LEFT JOIN pg_collation co ON co.oid = a.attcollation
    LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
    WHERE c.oid IN ({_RELATIONS}) AND a.attnum > 0 AND NOT a.attisdropped
"""

_COLUMN_ORDER = f"""
    SELECT c.relname || ': ' || string_agg(a.attname, ', ' ORDER BY a.attnum)
    FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
    WHERE c.oid IN ({_RELATIONS}) AND a.attnum > 0 AND NOT a.attisdropped
    GROUP BY c.relname
"""

_CONSTRAINTS = f"""
    SELECT c.relname || '.' || con.conname || ': ' || con.contype::text || ' '
        || pg_get_constraintdef(con.oid)
        || CASE WHEN NOT con.convalidated THEN ' NOT VALID' ELSE '' END
    FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid
    WHERE c.oid IN ({_RELATIONS})
"""

_INDEXES = f"""
    SELECT c.relname || '.' || i.relname || ': ' || pg_get_indexdef(i.oid)
    FROM pg_index x
    JOIN pg_class i ON i.oid = x.indexrelid
    JOIN pg_class c ON c.oid = x.indrelid
    WHERE c.oid IN ({_RELATIONS})
"""

_SEQUENCES = """
    SELECT s.relname || ': ' || format_type(q.seqtypid, NULL)
        || ' start ' || q.seqstart || ' increment ' || q.seqincrement
        || ' min ' || q.seqmin || ' max ' || q.seqmax || ' cache ' || q.seqcache
        || CASE WHEN q.seqcycle THEN ' CYCLE' ELSE ' NO CYCLE' END
        || coalesce(' OWNED BY ' || t.relname || '.' || a.attname, '')
    FROM pg_sequence q
    JOIN pg_class s ON s.oid = q.seqrelid
    JOIN pg_namespace n ON n.oid = s.relnamespace
    LEFT JOIN pg_depend dep ON dep.objid = s.oid
        AND dep.classid = 'pg_class'::regclass AND dep.refclassid = 'pg_class'::regclass
        AND dep.deptype IN ('a', 'i')
    LEFT JOIN pg_class t ON t.oid = dep.refobjid
    LEFT JOIN pg_attribute a ON a.attrelid = dep.refobjid AND a.attnum = dep.refobjsubid
    WHERE n.nspname = :schema
"""

_TRIGGERS = f"""
    SELECT c.relname || '.' || tg.tgname || ': ' || pg_get_triggerdef(tg.oid)
    FROM pg_trigger tg JOIN pg_class c ON c.oid = tg.tgrelid
    WHERE c.oid IN ({_RELATIONS}) AND NOT tg.tgisinternal
"""

_TYPES = """
    SELECT t.typname || ': ' || CASE t.typtype
        WHEN 'e' THEN 'enum (' || (
            SELECT string_agg(quote_literal(e.enumlabel), ', ' ORDER BY e.enumsortorder)
            FROM pg_enum e WHERE e.enumtypid = t.oid) || ')'
        WHEN 'd' THEN 'domain ' || format_type(t.typbasetype, t.typtypmod)
        ELSE 'type ' || t.typtype::text END
    FROM pg_type t
    JOIN pg_namespace n ON n.oid = t.typnamespace
    LEFT JOIN pg_class c ON c.oid = t.typrelid
    WHERE n.nspname = :schema
      AND (t.typtype IN ('e', 'd', 'r') OR (t.typtype = 'c' AND c.relkind = 'c'))
"""

_FUNCTIONS = """
    SELECT p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ') '
        || coalesce(pg_get_function_result(p.oid), p.prokind::text)
        || ', body md5 ' || md5(p.prosrc)
    FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
    WHERE n.nspname = :schema AND NOT EXISTS (
        SELECT FROM pg_depend dep
        WHERE dep.objid = p.oid AND dep.classid = 'pg_proc'::regclass AND dep.deptype = 'e')
"""


@dataclass(frozen=True, slots=True)
class SchemaSnapshot:
    """The catalog's facts about one schema, per kind of object, each a sorted tuple of lines."""

    tables: tuple[str, ...]
    columns: tuple[str, ...]
    column_order: tuple[str, ...]
    constraints: tuple[str, ...]
    indexes: tuple[str, ...]
    sequences: tuple[str, ...]
    triggers: tuple[str, ...]
    types: tuple[str, ...]
    functions: tuple[str, ...]

    def diff(self, actual: SchemaSnapshot, *, expected_name: str, actual_name: str) -> str:
        """A unified diff per kind of object that differs; the empty string when none does."""
        parts: list[str] = []
        for field in fields(self):
            mine: tuple[str, ...] = getattr(self, field.name)
            theirs: tuple[str, ...] = getattr(actual, field.name)
            if mine != theirs:
                parts.append(f"{field.name.replace('_', ' ')}:")
                lines = difflib.unified_diff(
                    mine, theirs, fromfile=expected_name, tofile=actual_name, lineterm="", n=0
                )
                # Hunk headers number lines of a sorted list: noise to the reader.
                parts.extend(line for line in lines if not line.startswith("@@"))
        return "\n".join(parts)

    @classmethod
    def empty(cls) -> SchemaSnapshot:
        """What an empty schema looks like: what base must look like after a full downgrade."""
        return cls(**{field.name: () for field in fields(cls)})


def snapshot(
    connection: sa.Connection,
    *,
    schema: str = "public",
    ignored_tables: Iterable[str] = IGNORED_TABLES,
) -> SchemaSnapshot:
    """What the catalog says about ``schema``, leaving out ``ignored_tables`` and their parts."""
    params = {"schema": schema, "ignored": list(ignored_tables)}

    def lines(query: str) -> tuple[str, ...]:
        return tuple(sorted(connection.scalars(sa.text(query), params)))

    return SchemaSnapshot(
        tables=lines(_TABLES),
        columns=lines(_COLUMNS),
        column_order=lines(_COLUMN_ORDER),
        constraints=lines(_CONSTRAINTS),
        indexes=lines(_INDEXES),
        sequences=lines(_SEQUENCES),
        triggers=lines(_TRIGGERS),
        types=lines(_TYPES),
        functions=lines(_FUNCTIONS),
    )
