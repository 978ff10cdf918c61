"""statistics counted at query time: covering indexes; usage_daily dropped

Revision ID: 0011_stats_truth
Revises: 0010_booking_groups
Create Date: 2026-12-04 23:40:00

Campaign figures are counted from ``booking`` and ``usage_record`` when asked
(labshare/campaign/stats.py), so the nightly roll-up table ``usage_daily`` goes.
Two indexes cover every column the statistics read, so the month's bookings are
read from the index alone (SQLite covering index, PostgreSQL index-only scan):
``ix_booking_stats`` leads with ``start_at`` (every figure is a time window),
``ix_booking_company_stats`` answers "had this company a completed booking before"
(new SMEs) and ``ix_usage_record_stats`` answers the join to usage records. Plain CREATE INDEX,
no table rebuild, so the booking table's triggers (0004, 0006) stay.

``stats_daily`` keeps the campaign counters per institute and local day, and is
never trusted stale: triggers on ``booking``, ``usage_record`` and ``institute`` (its
zone) add a ``stats_dirty`` row (resource, UTC day) in the same transaction as any
change that could move a figure, and reads count a local day live while a marker of
its institute names the UTC day before, on or after it. The bookings already there
are marked here; the ``rollup`` job recomputes the dirty days. On PostgreSQL the trigger locks the resource row before the marker (the
booking writers' order) and bumps an existing marker, so the job's DELETE of it
waits for the writer's commit.
"""

from alembic import op
import sqlalchemy as sa


revision = '0011_stats_truth'
down_revision = '0010_booking_groups'
branch_labels = None
depends_on = None

BOOKING_COLUMNS = [
    'start_at', 'institute_id', 'resource_id', 'status', 'late_cancellation',
    'company_id', 'resource_kind', 'fee', 'fee_waived', 'created_at', 'decided_at', 'id',
]
COMPANY_COLUMNS = ['company_id', 'status', 'start_at', 'institute_id', 'resource_id']
USAGE_COLUMNS = [
    'booking_id', 'service_type', 'problem_solved', 'checked_in_at', 'checked_out_at',
]


COUNTS = [
    'bookings_total', 'pending', 'approved', 'rejected', 'cancelled', 'completed',
    'no_show', 'usage_minutes', 'verification', 'calibration', 'testing', 'training',
    'consultation', 'problems_solved',
]
MARKED_COLUMNS = (
    'status, late_cancellation, fee, fee_waived, start_at, resource_id, institute_id, '
    'created_at, decided_at'
)


def _utc_day(dialect, column):
    if dialect == 'sqlite':
        return f'date({column})'
    return f"({column} AT TIME ZONE 'UTC')::date"


def mark_all(dialect, where='TRUE'):
    """Markers for the (resource, UTC day) of every booking matching ``where``."""
    day = _utc_day(dialect, 'start_at')
    return (
        'INSERT INTO stats_dirty (resource_id, day, institute_id, n) '
        f'SELECT resource_id, {day}, institute_id, 1 FROM booking WHERE {where} '
        f'GROUP BY resource_id, {day}, institute_id'
    )


PG_FUNCTIONS = [
    """
    CREATE FUNCTION stats_mark(rid integer, iid integer, at timestamptz) RETURNS void AS $$
    BEGIN
        IF rid IS NULL OR at IS NULL THEN
            RETURN;
        END IF;
        PERFORM 1 FROM resource WHERE id = rid FOR NO KEY UPDATE;
        INSERT INTO stats_dirty (resource_id, day, institute_id, n)
        VALUES (rid, (at AT TIME ZONE 'UTC')::date, iid, 1)
        ON CONFLICT (resource_id, day) DO UPDATE SET n = stats_dirty.n + 1;
    END
    $$ LANGUAGE plpgsql
    """,
    """
    CREATE FUNCTION stats_booking_mark() RETURNS trigger AS $$
    BEGIN
        IF TG_OP = 'INSERT' THEN
            PERFORM stats_mark(NEW.resource_id, NEW.institute_id, NEW.start_at);
        ELSIF TG_OP = 'DELETE' THEN
            PERFORM stats_mark(OLD.resource_id, OLD.institute_id, OLD.start_at);
        ELSIF OLD.resource_id <= NEW.resource_id THEN
            PERFORM stats_mark(OLD.resource_id, OLD.institute_id, OLD.start_at);
            PERFORM stats_mark(NEW.resource_id, NEW.institute_id, NEW.start_at);
        ELSE
            PERFORM stats_mark(NEW.resource_id, NEW.institute_id, NEW.start_at);
            PERFORM stats_mark(OLD.resource_id, OLD.institute_id, OLD.start_at);
        END IF;
        RETURN NULL;
    END
    $$ LANGUAGE plpgsql
    """,
    """
    CREATE FUNCTION stats_usage_mark() RETURNS trigger AS $$
    DECLARE
        b record;
    BEGIN
        IF TG_OP IN ('UPDATE', 'DELETE') THEN
            SELECT resource_id, institute_id, start_at INTO b FROM booking
            WHERE id = OLD.booking_id;
            IF FOUND THEN
                PERFORM stats_mark(b.resource_id, b.institute_id, b.start_at);
            END IF;
        END IF;
        IF TG_OP IN ('UPDATE', 'INSERT') THEN
            SELECT resource_id, institute_id, start_at INTO b FROM booking
            WHERE id = NEW.booking_id;
            IF FOUND THEN
                PERFORM stats_mark(b.resource_id, b.institute_id, b.start_at);
            END IF;
        END IF;
        RETURN NULL;
    END
    $$ LANGUAGE plpgsql
    """,
    f"""
    CREATE TRIGGER stats_booking AFTER INSERT OR DELETE OR UPDATE OF {MARKED_COLUMNS}
    ON booking FOR EACH ROW EXECUTE FUNCTION stats_booking_mark()
    """,
    """
    CREATE TRIGGER stats_usage_record AFTER INSERT OR DELETE OR UPDATE
    ON usage_record FOR EACH ROW EXECUTE FUNCTION stats_usage_mark()
    """,
    # A new zone moves every local day of the institute: all its days go live.
    f"""
    CREATE FUNCTION stats_institute_mark() RETURNS trigger AS $$
    BEGIN
        {mark_all('postgresql', 'institute_id = NEW.id')}
        ON CONFLICT (resource_id, day) DO UPDATE SET n = stats_dirty.n + 1;
        RETURN NULL;
    END
    $$ LANGUAGE plpgsql
    """,
    """
    CREATE TRIGGER stats_institute AFTER UPDATE OF timezone ON institute FOR EACH ROW
    WHEN (OLD.timezone IS DISTINCT FROM NEW.timezone)
    EXECUTE FUNCTION stats_institute_mark()
    """,
]


def _sqlite_mark(row):
    return (
        'INSERT OR IGNORE INTO stats_dirty (resource_id, day, institute_id, n) '
        f'VALUES ({row}.resource_id, date({row}.start_at), {row}.institute_id, 1);'
    )


def _sqlite_usage_mark(row):
    return (
        'INSERT OR IGNORE INTO stats_dirty (resource_id, day, institute_id, n) '
        'SELECT resource_id, date(start_at), institute_id, 1 FROM booking '
        f'WHERE id = {row}.booking_id;'
    )


SQLITE_TRIGGERS = [
    ('stats_booking_ins', 'AFTER INSERT ON booking', _sqlite_mark('NEW')),
    ('stats_booking_del', 'AFTER DELETE ON booking', _sqlite_mark('OLD')),
    (
        'stats_booking_upd',
        f'AFTER UPDATE OF {MARKED_COLUMNS} ON booking',
        _sqlite_mark('OLD') + ' ' + _sqlite_mark('NEW'),
    ),
    ('stats_usage_record_ins', 'AFTER INSERT ON usage_record', _sqlite_usage_mark('NEW')),
    ('stats_usage_record_del', 'AFTER DELETE ON usage_record', _sqlite_usage_mark('OLD')),
    (
        'stats_usage_record_upd',
        'AFTER UPDATE ON usage_record',
        _sqlite_usage_mark('OLD') + ' ' + _sqlite_usage_mark('NEW'),
    ),
    (
        'stats_institute_upd',
        'AFTER UPDATE OF timezone ON institute WHEN OLD.timezone IS NOT NEW.timezone',
        mark_all('sqlite', 'institute_id = NEW.id').replace('INSERT', 'INSERT OR IGNORE', 1)
        + ';',
    ),
]


def upgrade():
    op.create_index('ix_booking_stats', 'booking', BOOKING_COLUMNS, unique=False)
    op.create_index('ix_booking_company_stats', 'booking', COMPANY_COLUMNS, unique=False)
    op.create_index('ix_usage_record_stats', 'usage_record', USAGE_COLUMNS, unique=False)
    op.drop_index('ix_usage_daily_resource_id', table_name='usage_daily')
    op.drop_index('ix_usage_daily_day_institute_resource', table_name='usage_daily')
    op.drop_table('usage_daily')
    op.create_table(
        'stats_daily',
        sa.Column('day', sa.Date(), nullable=False),
        sa.Column('institute_id', sa.Integer(), nullable=False),
        *[sa.Column(name, sa.Integer(), nullable=False) for name in COUNTS],
        sa.Column('fees', sa.Numeric(precision=14, scale=2), nullable=False),
        sa.Column('fees_waived', sa.Numeric(precision=14, scale=2), nullable=False),
        sa.Column('decided', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('day', 'institute_id', name=op.f('pk_stats_daily')),
        sqlite_with_rowid=False,
    )
    op.create_table(
        'stats_dirty',
        sa.Column('resource_id', sa.Integer(), autoincrement=False, nullable=False),
        sa.Column('day', sa.Date(), nullable=False),
        sa.Column('institute_id', sa.Integer(), nullable=False),
        sa.Column('n', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('resource_id', 'day', name=op.f('pk_stats_dirty')),
    )
    op.create_index(
        'ix_stats_dirty_day_institute', 'stats_dirty', ['day', 'institute_id'], unique=False
    )
    op.create_index(
        'ix_stats_daily_institute_day', 'stats_daily', ['institute_id', 'day'], unique=False
    )
    dialect = op.get_bind().dialect.name
    # The bookings already there: every day dirty, so counted live (right, slower)
    # until the rollup job (or flask stats rebuild) fills stats_daily.
    op.execute(mark_all(dialect))
    if dialect == 'postgresql':
        for sql in PG_FUNCTIONS:
            op.execute(sql)
    else:
        for name, when, body in SQLITE_TRIGGERS:
            op.execute(f'CREATE TRIGGER {name} {when} BEGIN {body} END')


def downgrade():
    if op.get_bind().dialect.name == 'postgresql':
        op.execute('DROP TRIGGER IF EXISTS stats_usage_record ON usage_record')
        op.execute('DROP TRIGGER IF EXISTS stats_booking ON booking')
        op.execute('DROP TRIGGER IF EXISTS stats_institute ON institute')
        for name in ('stats_institute_mark()', 'stats_usage_mark()', 'stats_booking_mark()',
                     'stats_mark(integer, integer, timestamptz)'):
            op.execute(f'DROP FUNCTION IF EXISTS {name}')
    else:
        for name, _when, _body in SQLITE_TRIGGERS:
            op.execute(f'DROP TRIGGER IF EXISTS {name}')
    op.drop_index('ix_stats_dirty_day_institute', table_name='stats_dirty')
    op.drop_table('stats_dirty')
    op.drop_index('ix_stats_daily_institute_day', table_name='stats_daily')
    op.drop_table('stats_daily')
    op.create_table(
        'usage_daily',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('day', sa.Date(), nullable=False),
        sa.Column('institute_id', sa.Integer(), nullable=False),
        sa.Column('resource_id', sa.Integer(), nullable=True),
        *[
            sa.Column(name, sa.Integer(), nullable=False)
            for name in (
                'bookings_total', 'pending', 'approved', 'rejected', 'cancelled',
                'completed', 'no_show', 'usage_minutes', 'companies_served',
                'verification', 'calibration', 'testing', 'training', 'consultation',
                'problems_solved',
            )
        ],
        sa.Column('fees', sa.Numeric(precision=14, scale=2), nullable=False),
        sa.Column('fees_waived', sa.Numeric(precision=14, scale=2), nullable=False),
        sa.Column('computed_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ['institute_id'], ['institute.id'],
            name=op.f('fk_usage_daily_institute_id_institute'), ondelete='CASCADE',
        ),
        sa.ForeignKeyConstraint(
            ['resource_id'], ['resource.id'],
            name=op.f('fk_usage_daily_resource_id_resource'), ondelete='CASCADE',
        ),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_usage_daily')),
    )
    op.create_index(
        'ix_usage_daily_day_institute_resource', 'usage_daily',
        ['day', 'institute_id', 'resource_id'], unique=False,
    )
    op.create_index('ix_usage_daily_resource_id', 'usage_daily', ['resource_id'], unique=False)
    op.drop_index('ix_usage_record_stats', table_name='usage_record')
    op.drop_index('ix_booking_company_stats', table_name='booking')
    op.drop_index('ix_booking_stats', table_name='booking')
