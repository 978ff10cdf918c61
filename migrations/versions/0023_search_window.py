"""catalogue_version: one row changed by triggers with every change a search sees

Revision ID: 0023_search_window
Revises: 0019_daily_ops
Create Date: 2026-12-05 03:00:00

The search keeps answers (without a time window) per process and serves one again
only while ``catalogue_version.version`` is what it was computed at. Triggers set a
new random value in the same transaction as any INSERT, UPDATE or DELETE of
resource, lab, instrument, institute, booking_rules or search_doc (and TRUNCATE on
PostgreSQL), so no write path (services, CLI, imports, restores, SQL by hand) can
forget. An UPDATE of resource that changes only ``calendar_version`` (what every
booking does, through the calendar triggers of 0004) does not count. The row is
written by an upsert, so a table emptied by hand (tests) is refilled at the next
change; while it is missing the search does not cache. Random values rather than +1,
so that a database emptied and refilled never repeats a version a cache has seen.

Only a table and triggers are added: no table is rebuilt, so no trigger is lost.
"""

from alembic import op
import sqlalchemy as sa


revision = '0023_search_window'
down_revision = '0022_stats_speed'
branch_labels = None
depends_on = None

#: Tables any change of which a search without a time window may show.
TABLES = ('lab', 'instrument', 'institute', 'booking_rules', 'search_doc')

_PG_BUMP = (
    "INSERT INTO catalogue_version (id, version) "
    "VALUES (1, (random() * 9007199254740991)::bigint) "
    "ON CONFLICT (id) DO UPDATE SET version = excluded.version"
)
_SQLITE_BUMP = (
    "INSERT INTO catalogue_version (id, version) VALUES (1, random()) "
    "ON CONFLICT (id) DO UPDATE SET version = excluded.version;"
)


def _sqlite_triggers():
    out = [
        ('catalogue_resource_ins', 'AFTER INSERT ON resource'),
        ('catalogue_resource_del', 'AFTER DELETE ON resource'),
        # The calendar triggers of 0004 are AFTER triggers that change only
        # calendar_version in an UPDATE of their own: that UPDATE does not count.
        ('catalogue_resource_upd',
         'AFTER UPDATE ON resource WHEN NEW.calendar_version IS OLD.calendar_version'),
    ]
    for table in TABLES:
        out += [
            (f'catalogue_{table}_ins', f'AFTER INSERT ON {table}'),
            (f'catalogue_{table}_upd', f'AFTER UPDATE ON {table}'),
            (f'catalogue_{table}_del', f'AFTER DELETE ON {table}'),
        ]
    return out


def upgrade():
    op.create_table(
        'catalogue_version',
        sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
        sa.Column('version', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_catalogue_version')),
    )
    if op.get_bind().dialect.name == 'postgresql':
        op.execute(_PG_BUMP)
        op.execute(f"""
            CREATE FUNCTION catalogue_touch() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                {_PG_BUMP};
                RETURN NULL;
            END $$""")
        # The BEFORE trigger of 0004 sets NEW.calendar_version on a status change,
        # so the row is compared without that column, not by it.
        op.execute(
            "CREATE TRIGGER catalogue_resource_upd AFTER UPDATE ON resource FOR EACH ROW "
            "WHEN ((to_jsonb(OLD) - 'calendar_version') IS DISTINCT FROM "
            "(to_jsonb(NEW) - 'calendar_version')) EXECUTE FUNCTION catalogue_touch()"
        )
        op.execute(
            "CREATE TRIGGER catalogue_resource AFTER INSERT OR DELETE OR TRUNCATE ON resource "
            "FOR EACH STATEMENT EXECUTE FUNCTION catalogue_touch()"
        )
        for table in TABLES:
            op.execute(
                f"CREATE TRIGGER catalogue_{table} AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE "
                f"ON {table} FOR EACH STATEMENT EXECUTE FUNCTION catalogue_touch()"
            )
    else:
        op.execute(_SQLITE_BUMP)
        for name, when in _sqlite_triggers():
            op.execute(f"CREATE TRIGGER {name} {when} BEGIN {_SQLITE_BUMP} END")


def downgrade():
    if op.get_bind().dialect.name == 'postgresql':
        for table in ('resource', *TABLES):
            op.execute(f"DROP TRIGGER IF EXISTS catalogue_{table} ON {table}")
        op.execute("DROP TRIGGER IF EXISTS catalogue_resource_upd ON resource")
        op.execute("DROP FUNCTION IF EXISTS catalogue_touch()")
    else:
        for name, _when in _sqlite_triggers():
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    op.drop_table('catalogue_version')
