"""sessions, passwords, e-mail verification and the login throttle

Revision ID: 0013_sessions_passwords
Revises: 0012_company_members
Create Date: 2026-12-04 23:50:00

user_account: ``session_nonce`` (part of every session cookie's id; replacing it ends
the account's sessions) and ``email_verified_at`` (existing accounts count as
verified: they are set to their creation time). The doubling account lock
(``failed_logins``, ``locked_until``) gives way to ``login_throttle``, one row per
(e-mail, client address).
"""

from alembic import op  # noqa: F401
import sqlalchemy as sa  # noqa: F401


revision = '0013_sessions_passwords'
down_revision = '0012_company_members'
branch_labels = None
depends_on = None


def upgrade():
    # Plain ADD COLUMN (with a server default for the rows already there): no rebuild
    # of user_account, which many tables reference.
    op.add_column(
        'user_account',
        sa.Column('session_nonce', sa.String(length=32), server_default='0', nullable=False),
    )
    op.add_column(
        'user_account', sa.Column('email_verified_at', sa.DateTime(timezone=True), nullable=True)
    )
    op.execute('UPDATE user_account SET email_verified_at = created_at')
    # SQLite 3.35+ drops a column in place (no table rebuild).
    op.drop_column('user_account', 'failed_logins')
    op.drop_column('user_account', 'locked_until')

    op.create_table(
        'login_throttle',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('email', sa.String(length=254), nullable=False),
        sa.Column('address', sa.String(length=64), nullable=False),
        sa.Column('failures', sa.Integer(), nullable=False),
        sa.Column('blocked_until', sa.DateTime(timezone=True), nullable=True),
        sa.Column('last_failure_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_login_throttle')),
        sa.UniqueConstraint('email', 'address', name=op.f('uq_login_throttle_email')),
    )
    op.create_index(
        'ix_login_throttle_last_failure_at', 'login_throttle', ['last_failure_at']
    )


def downgrade():
    op.drop_index('ix_login_throttle_last_failure_at', table_name='login_throttle')
    op.drop_table('login_throttle')
    op.add_column(
        'user_account',
        sa.Column('failed_logins', sa.Integer(), server_default='0', nullable=False),
    )
    op.add_column(
        'user_account', sa.Column('locked_until', sa.DateTime(timezone=True), nullable=True)
    )
    op.drop_column('user_account', 'email_verified_at')
    op.drop_column('user_account', 'session_nonce')
