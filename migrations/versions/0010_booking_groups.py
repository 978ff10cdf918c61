"""bookings of several resources together

Revision ID: 0010_booking_groups
Revises: 0009_checkin
Create Date: 2026-11-27 06:00:00

``booking_group`` (one row per request that booked a lab and some of its
instruments, or an instrument bundle, together), ``booking.group_id`` and
``instrument.bundle`` (instruments of one lab with the same bundle name are always
booked together). See labshare/booking/policies/groups.py.

On SQLite the foreign key of ``booking.group_id`` is declared inline in ``ALTER
TABLE ... ADD COLUMN`` (allowed for a nullable column): a batch copy of the booking
table would lose its calendar triggers (0004). ``DROP COLUMN`` works on both
(SQLite >= 3.35) once the index is gone.
"""

from alembic import op
import sqlalchemy as sa


revision = '0010_booking_groups'
down_revision = '0009_checkin'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'booking_group',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('lab_id', sa.Integer(), nullable=False),
        sa.Column('institute_id', sa.Integer(), nullable=False),
        sa.Column('company_id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('purpose', sa.String(length=500), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['lab_id'], ['lab.id'],
                                name=op.f('fk_booking_group_lab_id_lab')),
        sa.ForeignKeyConstraint(['institute_id'], ['institute.id'],
                                name=op.f('fk_booking_group_institute_id_institute')),
        sa.ForeignKeyConstraint(['company_id'], ['company.id'],
                                name=op.f('fk_booking_group_company_id_company')),
        sa.ForeignKeyConstraint(['user_id'], ['user_account.id'],
                                name=op.f('fk_booking_group_user_id_user_account')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_booking_group')),
    )
    op.create_index(op.f('ix_booking_group_lab_id'), 'booking_group', ['lab_id'])
    op.create_index(op.f('ix_booking_group_institute_id'), 'booking_group', ['institute_id'])
    op.create_index(op.f('ix_booking_group_company_id'), 'booking_group', ['company_id'])

    if op.get_bind().dialect.name == 'postgresql':
        op.add_column('booking', sa.Column('group_id', sa.Integer(), nullable=True))
        op.create_foreign_key(op.f('fk_booking_group_id_booking_group'), 'booking',
                              'booking_group', ['group_id'], ['id'])
    else:
        op.execute(
            "ALTER TABLE booking ADD COLUMN group_id INTEGER "
            "CONSTRAINT fk_booking_group_id_booking_group REFERENCES booking_group (id)"
        )
    op.create_index(op.f('ix_booking_group_id'), 'booking', ['group_id'])

    op.add_column('instrument', sa.Column('bundle', sa.String(length=50), nullable=True))


def downgrade():
    op.drop_column('instrument', 'bundle')
    op.drop_index(op.f('ix_booking_group_id'), table_name='booking')
    if op.get_bind().dialect.name == 'postgresql':
        op.drop_constraint(op.f('fk_booking_group_id_booking_group'), 'booking',
                           type_='foreignkey')
    op.drop_column('booking', 'group_id')
    op.drop_index(op.f('ix_booking_group_company_id'), table_name='booking_group')
    op.drop_index(op.f('ix_booking_group_institute_id'), table_name='booking_group')
    op.drop_index(op.f('ix_booking_group_lab_id'), table_name='booking_group')
    op.drop_table('booking_group')
