"""recurring booking series

Revision ID: 0007_recurrence
Revises: 0006_policies
Create Date: 2026-11-27 06:00:00

``booking_series`` holds a recurrence rule; each occurrence is an ordinary
``booking`` row pointing at it through the nullable ``booking.series_id``.

On SQLite the column is added with a plain ``ALTER TABLE ... ADD COLUMN ...
REFERENCES`` (SQLite allows a foreign key there when the default is NULL) rather
than a batch copy of the table, which would drop the booking table's
calendar_version triggers (0004). The downgrade drops the index, then the column
(SQLite >= 3.35).
"""

from alembic import op
import sqlalchemy as sa



revision = '0007_recurrence'
down_revision = '0006_policies'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'booking_series',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('company_id', sa.Integer(), nullable=False),
        sa.Column('resource_id', sa.Integer(), nullable=False),
        sa.Column('institute_id', sa.Integer(), nullable=False),
        sa.Column('freq', sa.String(length=16), nullable=False),
        sa.Column('interval_n', sa.Integer(), nullable=False),
        sa.Column('weekdays', sa.String(length=20), nullable=True),
        sa.Column('until_date', sa.Date(), nullable=True),
        sa.Column('count_n', sa.Integer(), nullable=True),
        sa.Column('start_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('end_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('timezone', sa.String(length=64), nullable=False),
        sa.Column('purpose', sa.String(length=500), nullable=False),
        sa.Column('samples', sa.Text(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "freq IN ('daily', 'weekly', 'monthly')", name=op.f('ck_booking_series_freq_known')
        ),
        sa.CheckConstraint('interval_n >= 1', name=op.f('ck_booking_series_interval_positive')),
        sa.CheckConstraint(
            '(until_date IS NULL AND count_n IS NOT NULL) '
            'OR (until_date IS NOT NULL AND count_n IS NULL)',
            name=op.f('ck_booking_series_until_or_count'),
        ),
        sa.CheckConstraint('end_at > start_at', name=op.f('ck_booking_series_end_after_start')),
        sa.ForeignKeyConstraint(
            ['company_id'], ['company.id'], name=op.f('fk_booking_series_company_id_company')
        ),
        sa.ForeignKeyConstraint(
            ['institute_id'], ['institute.id'],
            name=op.f('fk_booking_series_institute_id_institute'),
        ),
        sa.ForeignKeyConstraint(
            ['resource_id'], ['resource.id'], name=op.f('fk_booking_series_resource_id_resource')
        ),
        sa.ForeignKeyConstraint(
            ['user_id'], ['user_account.id'], name=op.f('fk_booking_series_user_id_user_account')
        ),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_booking_series')),
    )
    for column in ('company_id', 'institute_id', 'resource_id', 'user_id'):
        op.create_index(f'ix_booking_series_{column}', 'booking_series', [column], unique=False)

    if op.get_bind().dialect.name == 'sqlite':
        op.execute(
            'ALTER TABLE booking ADD COLUMN series_id INTEGER '
            'CONSTRAINT fk_booking_series_id_booking_series REFERENCES booking_series (id)'
        )
    else:
        op.add_column('booking', sa.Column('series_id', sa.Integer(), nullable=True))
        op.create_foreign_key(
            'fk_booking_series_id_booking_series', 'booking', 'booking_series',
            ['series_id'], ['id'],
        )
    op.create_index('ix_booking_series_id', 'booking', ['series_id'], unique=False)


def downgrade():
    op.drop_index('ix_booking_series_id', table_name='booking')
    if op.get_bind().dialect.name == 'sqlite':
        op.execute('ALTER TABLE booking DROP COLUMN series_id')
    else:
        op.drop_constraint('fk_booking_series_id_booking_series', 'booking', type_='foreignkey')
        op.drop_column('booking', 'series_id')
    for column in ('company_id', 'institute_id', 'resource_id', 'user_id'):
        op.drop_index(f'ix_booking_series_{column}', table_name='booking_series')
    op.drop_table('booking_series')
