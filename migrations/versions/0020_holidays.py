"""public holidays and make-up workdays

Revision ID: 0020_holidays
Revises: 0019_daily_ops
Create Date: 2026-12-05 02:50:00

``calendar_day``: the national calendar (region '') and a province's extra days
(region = ``institute.province_code``): holidays and make-up workdays (调休) with the
weekday whose opening hours a make-up day has. ``calendar_state``: one row whose
token changes with every change of ``calendar_day`` (the in-process copy's key).
``institute.follows_holidays`` and ``lab.follows_holidays``: the opt-outs.

Only tables and columns are added (ALTER TABLE ... ADD COLUMN on SQLite): no table
with triggers is rebuilt.
"""

from alembic import op
import sqlalchemy as sa


revision = "0020_holidays"
down_revision = "0019_daily_ops"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "calendar_day",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("region", sa.String(6), nullable=False, server_default=""),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("name_en", sa.String(100), nullable=True),
        sa.Column("works_as", sa.SmallInteger(), nullable=True),
        sa.Column("source", sa.String(10), nullable=False, server_default="admin"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("region", "day", name="uq_calendar_day_region_day"),
        sa.CheckConstraint(
            "kind IN ('holiday', 'workday')", name="ck_calendar_day_calendar_day_kind"
        ),
        sa.CheckConstraint(
            "works_as IS NULL OR (works_as >= 0 AND works_as <= 6)",
            name="ck_calendar_day_works_as_range",
        ),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "calendar_state",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("token", sa.String(32), nullable=False),
    )
    op.add_column(
        "institute",
        sa.Column("follows_holidays", sa.Boolean(), nullable=False, server_default=sa.true()),
    )
    op.add_column(
        "lab", sa.Column("follows_holidays", sa.Boolean(), nullable=False, server_default=sa.true())
    )


def downgrade() -> None:
    # In place on SQLite (ALTER TABLE ... DROP COLUMN): institute keeps its triggers.
    op.drop_column("lab", "follows_holidays")
    op.drop_column("institute", "follows_holidays")
    op.drop_table("calendar_state")
    op.drop_table("calendar_day")
