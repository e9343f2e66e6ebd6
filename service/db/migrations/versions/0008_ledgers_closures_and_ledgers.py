"""销号 acts on cases, the 适龄儿童台账, term dates and deadline rules, monthly report versions

Revision ID: 0007_ledgers
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import service.db.base

revision = "0007_ledgers"
down_revision = "0007_pages"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.add_column(sa.Column("never_enrolled", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.create_table(
        "case_closures",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("from_status", sa.String(length=16), nullable=False),
        sa.Column("date", sa.Date(), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=True),
        sa.Column("authority", sa.String(length=60), nullable=True),
        sa.Column("note", sa.String(length=200), nullable=True),
        sa.Column("actor", sa.String(length=80), nullable=False),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.Column("created_at", service.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"], name=op.f("fk_case_closures_case_id_cases")),
        sa.ForeignKeyConstraint(["created_by_id"], ["users.id"], name=op.f("fk_case_closures_created_by_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_case_closures")),
        sa.UniqueConstraint("case_id", name=op.f("uq_case_closures_case_id")),
    )

    op.create_table(
        "deadline_rules",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("bureau_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=32), nullable=False),
        sa.Column("title", sa.String(length=60), nullable=False),
        sa.Column("source", sa.String(length=60), nullable=False),
        sa.Column("anchor", sa.String(length=16), nullable=False),
        sa.Column("days", sa.Integer(), nullable=False),
        sa.Column("lead_days", sa.Integer(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("updated_at", service.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(length=80), nullable=False),
        sa.ForeignKeyConstraint(["bureau_id"], ["units.id"], name=op.f("fk_deadline_rules_bureau_id_units")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deadline_rules")),
        sa.UniqueConstraint("bureau_id", "key", name="uq_deadline_rule"),
    )
    with op.batch_alter_table("deadline_rules", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_deadline_rules_bureau_id"), ["bureau_id"], unique=False)

    op.create_table(
        "rule_done",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("unit_id", sa.Integer(), nullable=False),
        sa.Column("rule_key", sa.String(length=32), nullable=False),
        sa.Column("period", sa.String(length=16), nullable=False),
        sa.Column("done_on", sa.Date(), nullable=False),
        sa.Column("note", sa.String(length=200), nullable=True),
        sa.Column("actor", sa.String(length=80), nullable=False),
        sa.Column("created_at", service.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["unit_id"], ["units.id"], name=op.f("fk_rule_done_unit_id_units")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rule_done")),
        sa.UniqueConstraint("unit_id", "rule_key", "period", name="uq_rule_done"),
    )
    with op.batch_alter_table("rule_done", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_rule_done_unit_id"), ["unit_id"], unique=False)

    op.create_table(
        "term_starts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("bureau_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=30), nullable=False),
        sa.Column("starts_on", sa.Date(), nullable=False),
        sa.Column("created_at", service.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=80), nullable=False),
        sa.ForeignKeyConstraint(["bureau_id"], ["units.id"], name=op.f("fk_term_starts_bureau_id_units")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_term_starts")),
        sa.UniqueConstraint("bureau_id", "starts_on", name="uq_term_start"),
    )
    with op.batch_alter_table("term_starts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_term_starts_bureau_id"), ["bureau_id"], unique=False)

    op.create_table(
        "child_entries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("school_id", sa.Integer(), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("row", sa.Integer(), nullable=False),
        sa.Column("student_name", sa.String(length=30), nullable=False),
        sa.Column("id_number", sa.String(length=18), nullable=False),
        sa.Column("sex", sa.String(length=2), nullable=True),
        sa.Column("birth_date", sa.Date(), nullable=True),
        sa.Column("migrant", sa.Boolean(), nullable=False),
        sa.Column("home_address", sa.String(length=100), nullable=True),
        sa.Column("guardian_name", sa.String(length=30), nullable=True),
        sa.Column("guardian_phone", sa.String(length=20), nullable=True),
        sa.Column("reported_on", sa.Date(), nullable=True),
        sa.Column("case_id", sa.Integer(), nullable=True),
        sa.Column("created_at", service.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", service.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(length=80), nullable=False),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"], name=op.f("fk_child_entries_case_id_cases")),
        sa.ForeignKeyConstraint(["school_id"], ["units.id"], name=op.f("fk_child_entries_school_id_units")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_child_entries")),
        sa.UniqueConstraint("school_id", "year", "id_number", name="uq_child_entry"),
    )
    with op.batch_alter_table("child_entries", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_child_entries_id_number"), ["id_number"], unique=False)
        batch_op.create_index(batch_op.f("ix_child_entries_school_id"), ["school_id"], unique=False)

    op.create_table(
        "report_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("unit_id", sa.Integer(), nullable=False),
        sa.Column("period", sa.String(length=16), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("assignment_id", sa.Integer(), nullable=True),
        sa.Column("figures", sa.JSON(), nullable=False),
        sa.Column("document_id", sa.Integer(), nullable=False),
        sa.Column("actor", sa.String(length=80), nullable=False),
        sa.Column("created_at", service.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["assignment_id"], ["assignments.id"], name=op.f("fk_report_versions_assignment_id_assignments")
        ),
        sa.ForeignKeyConstraint(
            ["document_id"], ["documents.id"], name=op.f("fk_report_versions_document_id_documents")
        ),
        sa.ForeignKeyConstraint(["unit_id"], ["units.id"], name=op.f("fk_report_versions_unit_id_units")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_report_versions")),
        sa.UniqueConstraint("unit_id", "period", "version", name="uq_report_version"),
    )
    with op.batch_alter_table("report_versions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_report_versions_assignment_id"), ["assignment_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_report_versions_unit_id"), ["unit_id"], unique=False)

    op.create_table(
        "school_rolls",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("school_id", sa.Integer(), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("students", sa.Integer(), nullable=False),
        sa.Column("updated_at", service.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(length=80), nullable=False),
        sa.ForeignKeyConstraint(["school_id"], ["units.id"], name=op.f("fk_school_rolls_school_id_units")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_school_rolls")),
        sa.UniqueConstraint("school_id", "year", name="uq_school_roll"),
    )
    with op.batch_alter_table("school_rolls", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_school_rolls_school_id"), ["school_id"], unique=False)

    op.create_table(
        "column_mappings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("bureau_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("mapping", sa.JSON(), nullable=False),
        sa.Column("updated_at", service.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(length=80), nullable=False),
        sa.ForeignKeyConstraint(["bureau_id"], ["units.id"], name=op.f("fk_column_mappings_bureau_id_units")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_column_mappings")),
        sa.UniqueConstraint("bureau_id", "kind", name="uq_column_mapping"),
    )
    with op.batch_alter_table("column_mappings", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_column_mappings_bureau_id"), ["bureau_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("column_mappings", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_column_mappings_bureau_id"))

    op.drop_table("column_mappings")
    with op.batch_alter_table("school_rolls", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_school_rolls_school_id"))

    op.drop_table("school_rolls")
    with op.batch_alter_table("report_versions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_report_versions_unit_id"))
        batch_op.drop_index(batch_op.f("ix_report_versions_assignment_id"))

    op.drop_table("report_versions")
    with op.batch_alter_table("child_entries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_child_entries_school_id"))
        batch_op.drop_index(batch_op.f("ix_child_entries_id_number"))

    op.drop_table("child_entries")
    with op.batch_alter_table("term_starts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_term_starts_bureau_id"))

    op.drop_table("term_starts")
    with op.batch_alter_table("rule_done", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_rule_done_unit_id"))

    op.drop_table("rule_done")
    with op.batch_alter_table("deadline_rules", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_deadline_rules_bureau_id"))

    op.drop_table("deadline_rules")
    op.drop_table("case_closures")
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.drop_column("never_enrolled")
