"""opening periods may end at 24:00 or cross midnight

Revision ID: 0014_opening_midnight
Revises: 0013_sessions_passwords
Create Date: 2026-12-04 23:50:00

An opening period is the half-open local interval [opens, closes) of its weekday;
``closes <= opens`` now means that it closes on the next day: 00:00 is 24:00 (the
end of the day) and 22:00-06:00 runs overnight. The check ``closes > opens`` goes,
and the 23:59 that stood for 24:00 becomes 00:00.

On SQLite dropping a check rebuilds the table, which drops its calendar triggers
(0004): they are recreated here with 0004's exact text, in both directions.
The downgrade turns each period that crosses midnight back into two (the part of
the next day on that day), and 24:00 back into 23:59.
"""

import datetime as dt

from alembic import op
import sqlalchemy as sa


revision = '0014_opening_midnight'
down_revision = '0013_sessions_passwords'
branch_labels = None
depends_on = None

CHECK = 'ck_opening_period_closes_after_opens'
MIDNIGHT = dt.time(0, 0)
LAST_MINUTE = dt.time(23, 59)


def _bump(where):
    return f"UPDATE resource SET calendar_version = random() WHERE {where};"  # noqa: S608


#: 0004's triggers on opening_period, word for word.
SQLITE_TRIGGERS = (
    ('calendar_opening_period_ins', "AFTER INSERT ON opening_period",
     _bump("id = NEW.lab_id")),
    ('calendar_opening_period_upd', "AFTER UPDATE ON opening_period",
     _bump("id IN (OLD.lab_id, NEW.lab_id)")),
    ('calendar_opening_period_del', "AFTER DELETE ON opening_period",
     _bump("id = OLD.lab_id")),
)

periods = sa.table(
    'opening_period',
    sa.column('id', sa.Integer),
    sa.column('lab_id', sa.Integer),
    sa.column('weekday', sa.SmallInteger),
    sa.column('opens', sa.Time),
    sa.column('closes', sa.Time),
)


def _sqlite():
    return op.get_bind().dialect.name == 'sqlite'


def _rebuild_sqlite(check):
    """Copy the table without (or with) the check, keeping its index and triggers."""
    for name, _when, _body in SQLITE_TRIGGERS:
        op.execute(f"DROP TRIGGER IF EXISTS {name}")
    with op.batch_alter_table('opening_period', recreate='always') as batch:
        if check:
            batch.create_check_constraint(op.f(CHECK), 'closes > opens')
        else:
            batch.drop_constraint(op.f(CHECK), type_='check')
    for name, when, body in SQLITE_TRIGGERS:
        op.execute(f"CREATE TRIGGER {name} {when} BEGIN {body} END")


def upgrade():
    if _sqlite():
        _rebuild_sqlite(check=False)
    else:
        op.drop_constraint(op.f(CHECK), 'opening_period', type_='check')
    op.execute(
        periods.update().where(periods.c.closes == LAST_MINUTE).values(closes=MIDNIGHT)
    )


def downgrade():
    bind = op.get_bind()
    rows = bind.execute(
        sa.select(periods.c.id, periods.c.lab_id, periods.c.weekday, periods.c.opens,
                  periods.c.closes).where(periods.c.closes <= periods.c.opens)
    ).all()
    for row in rows:
        if row.opens == LAST_MINUTE:  # 23:59-24:00 cannot be said without 24:00
            bind.execute(periods.delete().where(periods.c.id == row.id))
        else:
            bind.execute(
                periods.update().where(periods.c.id == row.id).values(closes=LAST_MINUTE)
            )
        if row.closes != MIDNIGHT:  # overnight: the next day's part on its own day
            bind.execute(periods.insert().values(
                lab_id=row.lab_id, weekday=(row.weekday + 1) % 7, opens=MIDNIGHT,
                closes=row.closes))
    if _sqlite():
        _rebuild_sqlite(check=True)
    else:
        op.create_check_constraint(op.f(CHECK), 'opening_period', 'closes > opens')
