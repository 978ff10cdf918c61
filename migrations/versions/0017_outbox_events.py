"""outbox rows may hold an event, rendered when read or sent

Revision ID: 0017_outbox_events
Revises: 0016_service_orders
Create Date: 2026-12-05 01:00:00

``notification.subject`` and ``body_text`` become nullable: an event row (a
booking event) stores the event and the recipient's ``locale`` (new column), and
is rendered at delivery and in the inbox. The notification table has no
triggers, so SQLite's batch rebuild of it is safe. The downgrade renders nothing:
it gives pending event rows a placeholder text so the columns can be NOT NULL again.
"""

from alembic import op
import sqlalchemy as sa


revision = '0017_outbox_events'
down_revision = '0016_service_orders'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('notification') as batch:
        batch.add_column(sa.Column('locale', sa.String(length=10), nullable=True))
        batch.alter_column('subject', existing_type=sa.String(length=300), nullable=True)
        batch.alter_column('body_text', existing_type=sa.Text(), nullable=True)


def downgrade():
    op.execute(
        "UPDATE notification SET subject = kind, body_text = kind WHERE body_text IS NULL"
    )
    with op.batch_alter_table('notification') as batch:
        batch.alter_column('body_text', existing_type=sa.Text(), nullable=False)
        batch.alter_column('subject', existing_type=sa.String(length=300), nullable=False)
        batch.drop_column('locale')
