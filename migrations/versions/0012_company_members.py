"""companies with members: confirmation, company and institute administrators,
invitations

Revision ID: 0012_company_members
Revises: 0011_stats_truth
Create Date: 2026-12-04 23:40:00

``company.status`` (pending/confirmed/rejected; existing companies are confirmed,
so nothing that books today stops booking) and ``company.decided_at``;
``user_account.company_admin`` and ``user_account.institute_admin``;
``notification.to_email`` (a message to an address without an account); the
``company_invitation`` table (only the SHA-256 digest of a link's secret).

Every change adds a column or a table: no table is rebuilt, so no trigger is lost.
Existing companies get one administrator each: their earliest active member.
"""

from alembic import op
import sqlalchemy as sa


revision = "0012_company_members"
down_revision = "0011_stats_truth"
branch_labels = None
depends_on = None


def upgrade():
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        # An inline CHECK in ADD COLUMN: SQLite cannot add a constraint later.
        op.execute(
            "ALTER TABLE company ADD COLUMN status VARCHAR(32) DEFAULT 'confirmed' NOT NULL "
            "CONSTRAINT ck_company_company_status "
            "CHECK (status IN ('pending', 'confirmed', 'rejected'))"
        )
    else:
        op.add_column(
            "company",
            sa.Column("status", sa.String(length=32), server_default="confirmed", nullable=False),
        )
        op.create_check_constraint(
            "ck_company_company_status",
            "company",
            "status IN ('pending', 'confirmed', 'rejected')",
        )
    op.create_index(op.f("ix_company_status"), "company", ["status"])
    op.add_column("company", sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column(
        "user_account",
        sa.Column("company_admin", sa.Boolean(), server_default=sa.false(), nullable=False),
    )
    op.add_column(
        "user_account",
        sa.Column("institute_admin", sa.Boolean(), server_default=sa.false(), nullable=False),
    )
    op.add_column("notification", sa.Column("to_email", sa.String(length=254), nullable=True))
    op.create_table(
        "company_invitation",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("company_id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("salt", sa.String(length=64), nullable=True),
        sa.Column("invited_by_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("accepted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("accepted_user_id", sa.Integer(), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["company_id"],
            ["company.id"],
            ondelete="CASCADE",
            name=op.f("fk_company_invitation_company_id_company"),
        ),
        sa.ForeignKeyConstraint(
            ["invited_by_id"],
            ["user_account.id"],
            ondelete="SET NULL",
            name=op.f("fk_company_invitation_invited_by_id_user_account"),
        ),
        sa.ForeignKeyConstraint(
            ["accepted_user_id"],
            ["user_account.id"],
            ondelete="SET NULL",
            name=op.f("fk_company_invitation_accepted_user_id_user_account"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_company_invitation")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_company_invitation_token_hash")),
    )
    op.create_index(op.f("ix_company_invitation_company_id"), "company_invitation", ["company_id"])
    op.create_index(op.f("ix_company_invitation_email"), "company_invitation", ["email"])
    # Each existing company gets an administrator: its earliest active member.
    op.execute(
        "UPDATE user_account SET company_admin = TRUE WHERE id IN ("
        " SELECT MIN(u.id) FROM user_account u"
        " WHERE u.role = 'sme' AND u.active AND u.company_id IS NOT NULL"
        " GROUP BY u.company_id)"
    )


def downgrade():
    op.drop_index(op.f("ix_company_invitation_email"), table_name="company_invitation")
    op.drop_index(op.f("ix_company_invitation_company_id"), table_name="company_invitation")
    op.drop_table("company_invitation")
    op.drop_column("notification", "to_email")
    op.drop_column("user_account", "institute_admin")
    op.drop_column("user_account", "company_admin")
    op.drop_column("company", "decided_at")
    op.drop_index(op.f("ix_company_status"), table_name="company")
    if op.get_bind().dialect.name == "sqlite":
        # The CHECK is part of the column's own definition, which SQLite's DROP
        # COLUMN allows (no table rebuild).
        op.execute("ALTER TABLE company DROP COLUMN status")
    else:
        op.drop_constraint("ck_company_company_status", "company", type_="check")
        op.drop_column("company", "status")
