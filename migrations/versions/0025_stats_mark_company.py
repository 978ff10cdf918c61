"""statistics: a change of a booking's company or resource kind marks its day

Revision ID: 0025_stats_mark_company
Revises: 0024_stats_waits_used
Create Date: 2026-12-05 07:15:00

``stats_used`` (companies served, instruments used) and ``stats_first_use`` (new SMEs)
are keyed by ``booking.company_id`` and ``booking.resource_kind``, which the booking
trigger of 0011 did not watch: no code path changes them today, but a data fix or a
merge of companies would have left those stored rows stale with no marker. The
trigger now watches them too. Only the trigger is recreated: no table is rebuilt.
"""

from alembic import op


revision = '0025_stats_mark_company'
down_revision = '0024_stats_waits_used'
branch_labels = None
depends_on = None

OLD_COLUMNS = (
    'status, late_cancellation, fee, fee_waived, start_at, resource_id, institute_id, '
    'created_at, decided_at'
)
NEW_COLUMNS = OLD_COLUMNS + ', company_id, resource_kind'


def _sqlite_mark(row):
    return (
        'INSERT OR IGNORE INTO stats_dirty (resource_id, day, institute_id, n) '
        f'VALUES ({row}.resource_id, date({row}.start_at), {row}.institute_id, 1);'
    )


def _recreate(columns):
    if op.get_bind().dialect.name == 'sqlite':
        op.execute('DROP TRIGGER IF EXISTS stats_booking_upd')
        op.execute(
            f'CREATE TRIGGER stats_booking_upd AFTER UPDATE OF {columns} ON booking '
            f"BEGIN {_sqlite_mark('OLD')} {_sqlite_mark('NEW')} END"
        )
        return
    op.execute('DROP TRIGGER IF EXISTS stats_booking ON booking')
    op.execute(
        f'CREATE TRIGGER stats_booking AFTER INSERT OR DELETE OR UPDATE OF {columns} '
        'ON booking FOR EACH ROW EXECUTE FUNCTION stats_booking_mark()'
    )


def upgrade():
    _recreate(NEW_COLUMNS)


def downgrade():
    _recreate(OLD_COLUMNS)
