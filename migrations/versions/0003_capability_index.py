"""instrument capability search index: (measurand, range_min_base, range_max_base)

Revision ID: 0003_capability_index
Revises: 0002
Create Date: 2026-11-27 11:00:00

Capability search asks "measurand = ? AND range_min_base <= ? AND range_max_base >= ?"
(labshare/catalogue/search.py); with 37,000 instruments it should seek, not scan.
"""
from alembic import op


revision = '0003_capability_index'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('instrument', schema=None) as batch_op:
        batch_op.create_index(
            'ix_instrument_capability',
            ['measurand', 'range_min_base', 'range_max_base'],
            unique=False,
        )


def downgrade():
    with op.batch_alter_table('instrument', schema=None) as batch_op:
        batch_op.drop_index('ix_instrument_capability')
