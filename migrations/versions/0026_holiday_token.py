"""calendar_state: its one row exists from the start

Revision ID: 0026_holiday_token
Revises: 0025_stats_mark_company
Create Date: 2026-12-05 06:00:00

The booking path share-locks the holiday calendar's token row (PostgreSQL), so that
a change of the calendar waits for the bookings checked against the old one and then
finds them. Before the calendar's first change there was no row, so nothing was
locked. The row is inserted here with the token that means "never changed, empty"
(``workdays.EMPTY_TOKEN``: no calendar to read, as no row meant before); every change
writes a random one. A database whose calendar was already changed keeps its row.
"""

from alembic import op
import sqlalchemy as sa


revision = '0026_holiday_token'
down_revision = '0025_stats_mark_company'
branch_labels = None
depends_on = None

EMPTY_TOKEN = "0" * 32


def upgrade() -> None:
    op.execute(
        sa.text(
            "INSERT INTO calendar_state (id, token) SELECT 1, :token "
            "WHERE NOT EXISTS (SELECT 1 FROM calendar_state WHERE id = 1)"
        ).bindparams(token=EMPTY_TOKEN)
    )


def downgrade() -> None:
    # as before: no row until the calendar's first change
    op.execute(
        sa.text("DELETE FROM calendar_state WHERE id = 1 AND token = :token").bindparams(
            token=EMPTY_TOKEN
        )
    )
