"""comments: author standing index on (author_ref, status)

The worker reads the standing (approved, rejected) of every batch's authors. An index on
author_ref alone made that read every comment row of the author to learn its status; with the
status in the index the read is bounded by the trust threshold.

Revision ID: 3c1d2e9a7b40
Revises: fbfa4a37f765
Create Date: 2026-12-01 18:10:00
"""
from alembic import op

revision = '3c1d2e9a7b40'
down_revision = 'fbfa4a37f765'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('comments', schema=None) as batch_op:
        batch_op.create_index('ix_comments_author_status', ['author_ref', 'status'], unique=False)
        batch_op.drop_index('ix_comments_author_ref')


def downgrade() -> None:
    with op.batch_alter_table('comments', schema=None) as batch_op:
        batch_op.create_index('ix_comments_author_ref', ['author_ref'], unique=False)
        batch_op.drop_index('ix_comments_author_status')
