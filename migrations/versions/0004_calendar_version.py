"""resource.calendar_version, kept by triggers; trigram indexes for text search

Revision ID: 0004_calendar_version
Revises: 0003_capability_index
Create Date: 2026-11-27 12:00:00

``resource.calendar_version`` changes (to a new random value) in the same
transaction as anything that changes the resource's availability: its bookings
(insert, delete, status/time/resource change), its closures, its lab's opening
periods (on the lab's row), its status or institute, an instrument's calibration
date or lab, a lab's capacity, its institute's time zone. Triggers do it, so no
code path (services, CLI, imports, jobs, SQL by hand) can forget. An instrument's
calendar also depends on its lab's row (closures, opening hours): readers compare
both versions. Random values rather than +1, so that a table emptied and refilled
(tests, a restored backup) never repeats a version a cache has seen.

pg_trgm GIN indexes (PostgreSQL; plain indexes of the same names on SQLite) so that ``ILIKE '%term%'`` on names, model
and manufacturer is an index scan instead of a scan of every resource.
"""

from alembic import op
import sqlalchemy as sa


revision = '0004_calendar_version'
down_revision = '0003_capability_index'
branch_labels = None
depends_on = None

#: (table, the column naming the resource, columns whose UPDATE matters or None = any)
TOUCHING = (
    ('booking', 'resource_id', 'status, start_at, end_at, resource_id'),
    ('closure', 'resource_id', None),
    ('opening_period', 'lab_id', None),
)
#: (table, columns): an UPDATE of these on the resource's own row of that table
SELF_UPDATES = (
    ('instrument', 'calibration_valid_until, lab_id'),
    ('lab', 'capacity'),
)

TRGM_INDEXES = (
    ('ix_resource_name_trgm', 'resource', 'name'),
    ('ix_resource_name_en_trgm', 'resource', 'name_en'),
    ('ix_instrument_model_trgm', 'instrument', 'model'),
    ('ix_instrument_manufacturer_trgm', 'instrument', 'manufacturer'),
)


def _upgrade_postgresql():
    op.execute("""
        CREATE FUNCTION calendar_touch() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE old_id bigint; new_id bigint;
        BEGIN
            IF TG_OP <> 'INSERT' THEN old_id := (to_jsonb(OLD) ->> TG_ARGV[0])::bigint; END IF;
            IF TG_OP <> 'DELETE' THEN new_id := (to_jsonb(NEW) ->> TG_ARGV[0])::bigint; END IF;
            UPDATE resource SET calendar_version = (random() * 9007199254740991)::bigint
             WHERE id IN (old_id, new_id);
            RETURN NULL;
        END $$""")
    op.execute("""
        CREATE FUNCTION calendar_touch_self() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            NEW.calendar_version := (random() * 9007199254740991)::bigint;
            RETURN NEW;
        END $$""")
    op.execute("""
        CREATE FUNCTION calendar_touch_institute() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            UPDATE resource SET calendar_version = (random() * 9007199254740991)::bigint
             WHERE institute_id = NEW.id;
            RETURN NULL;
        END $$""")
    for table, column, columns in TOUCHING:
        update = f'UPDATE OF {columns}' if columns else 'UPDATE'
        op.execute(
            f"CREATE TRIGGER calendar_{table} AFTER INSERT OR DELETE OR {update} ON {table} "
            f"FOR EACH ROW EXECUTE FUNCTION calendar_touch('{column}')"
        )
    for table, columns in SELF_UPDATES:
        op.execute(
            f"CREATE TRIGGER calendar_{table} AFTER UPDATE OF {columns} ON {table} "
            f"FOR EACH ROW EXECUTE FUNCTION calendar_touch('id')"
        )
    op.execute(
        "CREATE TRIGGER calendar_resource BEFORE INSERT OR UPDATE OF status, institute_id "
        "ON resource FOR EACH ROW EXECUTE FUNCTION calendar_touch_self()"
    )
    op.execute(
        "CREATE TRIGGER calendar_institute AFTER UPDATE OF timezone ON institute "
        "FOR EACH ROW WHEN (OLD.timezone IS DISTINCT FROM NEW.timezone) "
        "EXECUTE FUNCTION calendar_touch_institute()"
    )
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    for name, table, column in TRGM_INDEXES:
        op.execute(f"CREATE INDEX {name} ON {table} USING gin ({column} gin_trgm_ops)")


def _downgrade_postgresql():
    for name, _table, _column in TRGM_INDEXES:
        op.execute(f"DROP INDEX IF EXISTS {name}")
    for table in ('booking', 'closure', 'opening_period', 'instrument', 'lab', 'resource',
                  'institute'):
        op.execute(f"DROP TRIGGER IF EXISTS calendar_{table} ON {table}")
    for fn in ('calendar_touch', 'calendar_touch_self', 'calendar_touch_institute'):
        op.execute(f"DROP FUNCTION IF EXISTS {fn}()")


def _sqlite_bump(where):
    return f"UPDATE resource SET calendar_version = random() WHERE {where};"  # noqa: S608


def _sqlite_triggers():
    out = []
    for table, column, columns in TOUCHING:
        update = f'UPDATE OF {columns}' if columns else 'UPDATE'
        out += [
            (f'calendar_{table}_ins', f"AFTER INSERT ON {table}",
             _sqlite_bump(f"id = NEW.{column}")),
            (f'calendar_{table}_upd', f"AFTER {update} ON {table}",
             _sqlite_bump(f"id IN (OLD.{column}, NEW.{column})")),
            (f'calendar_{table}_del', f"AFTER DELETE ON {table}",
             _sqlite_bump(f"id = OLD.{column}")),
        ]
    for table, columns in SELF_UPDATES:
        out.append((f'calendar_{table}_upd', f"AFTER UPDATE OF {columns} ON {table}",
                    _sqlite_bump("id = NEW.id")))
    out += [
        ('calendar_resource_ins', "AFTER INSERT ON resource", _sqlite_bump("id = NEW.id")),
        ('calendar_resource_upd', "AFTER UPDATE OF status, institute_id ON resource",
         _sqlite_bump("id = NEW.id")),
        ('calendar_institute_upd',
         "AFTER UPDATE OF timezone ON institute WHEN OLD.timezone IS NOT NEW.timezone",
         _sqlite_bump("institute_id = NEW.id")),
    ]
    return out


def upgrade():
    op.add_column(
        'resource',
        sa.Column('calendar_version', sa.BigInteger(), server_default=sa.text('0'),
                  nullable=False),
    )
    if op.get_bind().dialect.name == 'postgresql':
        _upgrade_postgresql()
    else:
        for name, when, body in _sqlite_triggers():
            op.execute(f"CREATE TRIGGER {name} {when} BEGIN {body} END")
        # Plain indexes of the same names (the models declare them; GIN is PG-only).
        for name, table, column in TRGM_INDEXES:
            op.create_index(name, table, [column])


def downgrade():
    if op.get_bind().dialect.name == 'postgresql':
        _downgrade_postgresql()
    else:
        for name, _when, _body in _sqlite_triggers():
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
        for name, table, _column in TRGM_INDEXES:
            op.drop_index(name, table_name=table)
    # ALTER TABLE ... DROP COLUMN on both (SQLite >= 3.35): a batch copy of the
    # resource table would fire its foreign keys' ON DELETE CASCADE.
    op.drop_column('resource', 'calendar_version')
