"""integrations: Coral decisions, webhooks and deliveries, imported comments

Revision ID: a4d8e2f61c37
Revises: a9d3f1c2b7e8
Create Date: 2026-12-06 03:30:00
"""
import sqlalchemy as sa
from alembic import op

revision = 'a4d8e2f61c37'
down_revision = 'a9d3f1c2b7e8'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'coral_decisions',
        sa.Column('id', sa.String(length=32), nullable=False),
        sa.Column('action', sa.String(length=8), nullable=False),
        sa.Column('tenant_id', sa.String(length=200), nullable=False),
        sa.Column('tenant_domain', sa.String(length=300), nullable=False),
        sa.Column('site_id', sa.String(length=200), nullable=False),
        sa.Column('story_id', sa.String(length=200), nullable=False),
        sa.Column('story_url', sa.Text(), nullable=False),
        sa.Column('author_id', sa.String(length=200), nullable=False),
        sa.Column('author_role', sa.String(length=32), nullable=False),
        sa.Column('parent_id', sa.String(length=200), nullable=True),
        sa.Column('body', sa.Text(), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('reason_code', sa.String(length=32), nullable=True),
        sa.Column('flags', sa.JSON(), nullable=False),
        sa.Column('engine_action', sa.String(length=16), nullable=False),
        sa.Column('priority', sa.String(length=16), nullable=False),
        sa.Column('categories', sa.JSON(), nullable=False),
        sa.Column('findings', sa.JSON(), nullable=False),
        sa.Column('scores', sa.JSON(), nullable=False),
        sa.Column('policy_version', sa.String(length=64), nullable=True),
        sa.Column('previous_id', sa.String(length=32), nullable=True),
        sa.Column('elapsed_ms', sa.Float(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['previous_id'], ['coral_decisions.id']),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_coral_decisions_thread', 'coral_decisions',
                    ['tenant_id', 'story_id', 'author_id', 'created_at'])
    op.create_index('ix_coral_decisions_status', 'coral_decisions', ['status', 'created_at'])
    op.create_table(
        'webhook_endpoints',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('url', sa.Text(), nullable=False),
        sa.Column('secret', sa.String(length=200), nullable=False),
        sa.Column('events', sa.JSON(), nullable=False),
        sa.Column('enabled', sa.Boolean(), nullable=False),
        sa.Column('disabled_reason', sa.Text(), nullable=True),
        sa.Column('consecutive_failures', sa.Integer(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_table(
        'webhook_deliveries',
        sa.Column('id', sa.String(length=32), nullable=False),
        sa.Column('endpoint_id', sa.Integer(), nullable=False),
        sa.Column('event', sa.String(length=64), nullable=False),
        sa.Column('event_id', sa.String(length=64), nullable=False),
        sa.Column('payload', sa.JSON(), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('last_status_code', sa.Integer(), nullable=True),
        sa.Column('last_error', sa.Text(), nullable=True),
        sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['endpoint_id'], ['webhook_endpoints.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('endpoint_id', 'event_id', name='uq_delivery_event'),
    )
    op.create_index('ix_webhook_deliveries_endpoint', 'webhook_deliveries',
                    ['endpoint_id', 'created_at'])
    op.create_table(
        'imported_comments',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('source', sa.String(length=32), nullable=False),
        sa.Column('external_id', sa.String(length=200), nullable=False),
        sa.Column('external_parent_id', sa.String(length=200), nullable=True),
        sa.Column('comment_id', sa.String(length=32), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['comment_id'], ['comments.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('source', 'external_id', name='uq_imported_external'),
    )
    op.create_index('ix_imported_comments_comment', 'imported_comments', ['comment_id'])


def downgrade() -> None:
    op.drop_index('ix_imported_comments_comment', table_name='imported_comments')
    op.drop_table('imported_comments')
    op.drop_index('ix_webhook_deliveries_endpoint', table_name='webhook_deliveries')
    op.drop_table('webhook_deliveries')
    op.drop_table('webhook_endpoints')
    op.drop_index('ix_coral_decisions_status', table_name='coral_decisions')
    op.drop_index('ix_coral_decisions_thread', table_name='coral_decisions')
    op.drop_table('coral_decisions')
