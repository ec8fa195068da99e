"""comments.raised_by: report-raised alerts told apart from the engine's holds

Revision ID: a9d3f1c2b7e8
Revises: a8d3f1c6e2b7
Create Date: 2026-12-06 04:20:00
"""
import sqlalchemy as sa
from alembic import op

revision = 'a9d3f1c2b7e8'
down_revision = 'a8d3f1c6e2b7'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('comments', schema=None) as batch_op:
        batch_op.add_column(sa.Column('raised_by', sa.String(length=16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('comments', schema=None) as batch_op:
        batch_op.drop_column('raised_by')
