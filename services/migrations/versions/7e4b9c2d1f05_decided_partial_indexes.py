"""comments: public, queue and author-standing indexes hold decided comments only

Every new comment is inserted pending, and no query finds pending comments through these three
indexes. As partial indexes (WHERE status != 'pending') they are left alone by that insert,
which then updates three b-trees instead of six; a decision adds the comment to them.

Revision ID: 7e4b9c2d1f05
Revises: 3c1d2e9a7b40
Create Date: 2026-12-01 21:10:00
"""
import sqlalchemy as sa
from alembic import op

revision = '7e4b9c2d1f05'
down_revision = '3c1d2e9a7b40'
branch_labels = None
depends_on = None

DECIDED_WHERE = "status != 'pending'"
INDEXES = {
    'ix_comments_public': ['article_id', 'status', 'created_at', 'id'],
    'ix_comments_queue': ['status', 'rank', 'created_at', 'id'],
    'ix_comments_author_status': ['author_ref', 'status'],
}


def upgrade() -> None:
    where = sa.text(DECIDED_WHERE)
    for name, columns in INDEXES.items():
        op.drop_index(name, table_name='comments')
        op.create_index(name, 'comments', columns, unique=False,
                        sqlite_where=where, postgresql_where=where)


def downgrade() -> None:
    for name, columns in INDEXES.items():
        op.drop_index(name, table_name='comments')
        op.create_index(name, 'comments', columns, unique=False)
