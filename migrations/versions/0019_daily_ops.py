"""daily operations: the audit log readable by institute; the institute's own ids of
its labs and instruments

Revision ID: 0019_daily_ops
Revises: 0018_search_index
Create Date: 2026-12-05 00:50:00

``audit_log.institute_id`` (the institute whose log shows the row; no foreign key,
like ``object_id``: an audit row outlives what it names), filled for the existing
rows from the object they name, and the indexes the reader's filters use.

``resource.external_id`` (a LIMS's key of a lab or instrument), unique within the
institute, so a nightly sync updates the same rows again.

``booking.booked_by_id``: the staff member who booked for the company.

Only columns and indexes are added: no table is rebuilt, so no trigger is lost.
"""

from alembic import op
import sqlalchemy as sa


revision = '0019_daily_ops'
down_revision = '0018_search_index'
branch_labels = None
depends_on = None

# object_type -> (table, the expression giving the institute from that table's row)
_DIRECT = {
    'booking': 'booking',
    'booking_series': 'booking_series',
    'booking_group': 'booking_group',
    'booking_quota': 'booking_quota',
    'resource': 'resource',
    'lab': 'resource',
    'instrument': 'resource',
    'user_account': 'user_account',
}
_BY_RESOURCE = ('booking_rules', 'closure', 'waitlist_entry', 'qualification')


def upgrade():
    op.add_column('audit_log', sa.Column('institute_id', sa.Integer(), nullable=True))
    for object_type, table in _DIRECT.items():
        op.execute(
            f"UPDATE audit_log SET institute_id = (SELECT t.institute_id FROM {table} t "
            f"WHERE t.id = audit_log.object_id) WHERE object_type = '{object_type}'"
        )
    for table in _BY_RESOURCE:
        op.execute(
            f"UPDATE audit_log SET institute_id = (SELECT r.institute_id FROM {table} t "
            f"JOIN resource r ON r.id = t.resource_id WHERE t.id = audit_log.object_id) "
            f"WHERE object_type = '{table}'"
        )
    op.execute("UPDATE audit_log SET institute_id = object_id WHERE object_type = 'institute'")
    op.create_index('ix_audit_log_institute_at', 'audit_log', ['institute_id', 'at'])
    op.create_index('ix_audit_log_actor_at', 'audit_log', ['actor_id', 'at'])
    op.create_index('ix_audit_log_action_at', 'audit_log', ['action', 'at'])
    op.add_column('resource', sa.Column('external_id', sa.String(length=100), nullable=True))
    op.add_column('booking', sa.Column('booked_by_id', sa.Integer(), nullable=True))
    op.create_index(
        'uq_resource_institute_external', 'resource', ['institute_id', 'external_id'], unique=True
    )


def downgrade():
    op.drop_column('booking', 'booked_by_id')
    op.drop_index('uq_resource_institute_external', table_name='resource')
    op.drop_column('resource', 'external_id')
    op.drop_index('ix_audit_log_action_at', table_name='audit_log')
    op.drop_index('ix_audit_log_actor_at', table_name='audit_log')
    op.drop_index('ix_audit_log_institute_at', table_name='audit_log')
    # In place (ALTER TABLE ... DROP COLUMN), never a batch copy.
    op.drop_column('audit_log', 'institute_id')
