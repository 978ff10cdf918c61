"""search index: the lower-cased names indexed with the id, for the exact-name tier

Revision ID: 0029_stext_exact_name_order
Revises: 0028_stext_name_index
Create Date: 2026-12-05 11:20:00

A text search's page needs the first exact names in id order. Indexed by the
lower-cased name alone, every resource of that name was read and sorted (666
named 恒温油槽 at the bench: 5,600 buffers, 9 ms for a page of 20); indexed with
the id, the probe walks them in id order and stops at the page
(labshare/catalogue/search_tiers.py).
"""

from alembic import op


revision = "0029_stext_exact_name_order"
down_revision = "0028_stext_name_index"
branch_labels = None
depends_on = None


def _index(columns: str) -> None:
    for name, column in (
        ("ix_resource_lower_name", "name"),
        ("ix_resource_lower_name_en", "name_en"),
    ):
        op.execute(f"DROP INDEX IF EXISTS {name}")
        op.execute(f"CREATE INDEX {name} ON resource (lower({column}){columns})")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ANALYZE resource")  # the planner's figures for the new expressions


def upgrade() -> None:
    _index(", id")


def downgrade() -> None:
    _index("")
