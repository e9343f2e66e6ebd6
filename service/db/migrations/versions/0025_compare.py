"""四查三比对: the source lists a bureau receives (versioned, 身份证号 sealed with a blind index),
the comparison's runs, and its findings (sealed, one per rule and child, answered with a reason)

Revision ID: 0025_compare
Revises: 0024_token_domains
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import service.db.base

revision = "0025_compare"
down_revision = "0024_token_domains"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "compare_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("bureau_id", sa.Integer(), nullable=False),
        sa.Column("trigger", sa.String(length=16), nullable=False),
        sa.Column("lists", sa.JSON(), nullable=False),
        sa.Column("counts", sa.JSON(), nullable=False),
        sa.Column("new_findings", sa.Integer(), nullable=False),
        sa.Column("started_at", service.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("seconds", sa.Float(), nullable=False),
        sa.Column("actor", sa.String(length=80), nullable=False),
        sa.ForeignKeyConstraint(["bureau_id"], ["units.id"], name=op.f("fk_compare_runs_bureau_id_units")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_compare_runs")),
    )
    with op.batch_alter_table("compare_runs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_compare_runs_bureau_id"), ["bureau_id"], unique=False)

    op.create_table(
        "source_lists",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("bureau_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("filename", sa.String(length=128), nullable=False),
        sa.Column("children", sa.Integer(), nullable=False),
        sa.Column("invalid_ids", sa.Integer(), nullable=False),
        sa.Column("uploaded_at", service.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("uploaded_by", sa.String(length=80), nullable=False),
        sa.ForeignKeyConstraint(["bureau_id"], ["units.id"], name=op.f("fk_source_lists_bureau_id_units")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_source_lists")),
        sa.UniqueConstraint("bureau_id", "kind", "version", name="uq_source_list"),
    )
    with op.batch_alter_table("source_lists", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_source_lists_bureau_id"), ["bureau_id"], unique=False)

    op.create_table(
        "findings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("bureau_id", sa.Integer(), nullable=False),
        sa.Column("rule", sa.String(length=16), nullable=False),
        sa.Column("unit_id", sa.Integer(), nullable=False),
        sa.Column("township", sa.String(length=30), nullable=False),
        sa.Column("village", sa.String(length=30), nullable=False),
        sa.Column("student_name", sa.String(length=30), nullable=False),
        sa.Column("id_number_sealed", sa.LargeBinary(), nullable=True),
        sa.Column("id_number_bidx", sa.String(length=64), nullable=False),
        sa.Column("birth_date", sa.Date(), nullable=True),
        sa.Column("sources", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("current", sa.Boolean(), nullable=False),
        sa.Column("first_run_id", sa.Integer(), nullable=False),
        sa.Column("last_run_id", sa.Integer(), nullable=False),
        sa.Column("found_at", service.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_found_at", service.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("answer", sa.String(length=16), nullable=True),
        sa.Column("answer_note", sa.String(length=200), nullable=True),
        sa.Column("answered_at", service.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("answered_by", sa.String(length=80), nullable=True),
        sa.Column("evidence_filename", sa.String(length=128), nullable=True),
        sa.Column("evidence_sha256", sa.String(length=64), nullable=True),
        sa.Column("row_key", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(["bureau_id"], ["units.id"], name=op.f("fk_findings_bureau_id_units")),
        sa.ForeignKeyConstraint(
            ["first_run_id"], ["compare_runs.id"], name=op.f("fk_findings_first_run_id_compare_runs")
        ),
        sa.ForeignKeyConstraint(
            ["last_run_id"], ["compare_runs.id"], name=op.f("fk_findings_last_run_id_compare_runs")
        ),
        sa.ForeignKeyConstraint(["unit_id"], ["units.id"], name=op.f("fk_findings_unit_id_units")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_findings")),
        sa.UniqueConstraint("bureau_id", "rule", "id_number_bidx", name="uq_finding"),
    )
    with op.batch_alter_table("findings", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_findings_bureau_id"), ["bureau_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_findings_status"), ["status"], unique=False)
        batch_op.create_index(batch_op.f("ix_findings_unit_id"), ["unit_id"], unique=False)

    op.create_table(
        "source_children",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("list_id", sa.Integer(), nullable=False),
        sa.Column("row", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=30), nullable=False),
        sa.Column("id_number_sealed", sa.LargeBinary(), nullable=True),
        sa.Column("id_number_bidx", sa.String(length=64), nullable=True),
        sa.Column("id_valid", sa.Boolean(), nullable=False),
        sa.Column("birth_date", sa.Date(), nullable=True),
        sa.Column("school_id", sa.Integer(), nullable=True),
        sa.Column("township", sa.String(length=30), nullable=False),
        sa.Column("village", sa.String(length=30), nullable=False),
        sa.Column("row_key", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(["list_id"], ["source_lists.id"], name=op.f("fk_source_children_list_id_source_lists")),
        sa.ForeignKeyConstraint(["school_id"], ["units.id"], name=op.f("fk_source_children_school_id_units")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_source_children")),
    )
    with op.batch_alter_table("source_children", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_source_children_id_number_bidx"), ["id_number_bidx"], unique=False)
        batch_op.create_index(batch_op.f("ix_source_children_list_id"), ["list_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("source_children", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_source_children_list_id"))
        batch_op.drop_index(batch_op.f("ix_source_children_id_number_bidx"))

    op.drop_table("source_children")
    with op.batch_alter_table("findings", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_findings_unit_id"))
        batch_op.drop_index(batch_op.f("ix_findings_status"))
        batch_op.drop_index(batch_op.f("ix_findings_bureau_id"))

    op.drop_table("findings")
    with op.batch_alter_table("source_lists", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_source_lists_bureau_id"))

    op.drop_table("source_lists")
    with op.batch_alter_table("compare_runs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_compare_runs_bureau_id"))

    op.drop_table("compare_runs")
