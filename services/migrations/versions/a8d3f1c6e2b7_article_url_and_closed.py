"""articles: public URL and closed for comments

Revision ID: a8d3f1c6e2b7
Revises: 7e4b9c2d1f05
Create Date: 2026-12-06 03:40:00
"""
import sqlalchemy as sa
from alembic import op

revision = 'a8d3f1c6e2b7'
down_revision = '7e4b9c2d1f05'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('articles', schema=None) as batch_op:
        batch_op.add_column(sa.Column('url', sa.String(length=2000), nullable=True))
        batch_op.add_column(sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('articles', schema=None) as batch_op:
        batch_op.drop_column('closed_at')
        batch_op.drop_column('url')
