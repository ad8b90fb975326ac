"""Office console: staff accounts, their sessions and campaigns, one-time links, drafts

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 10:00:00

"""
from alembic import op
import sqlalchemy as sa

from service.models._types import UTCDateTime


# revision identifiers, used by Alembic.
revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('campaigns', schema=None) as batch_op:
        batch_op.add_column(sa.Column('draft', sa.Boolean(), server_default=sa.false(), nullable=False))

    op.create_table('staff',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('password_hash', sa.String(length=255), nullable=True),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('failed_logins', sa.Integer(), nullable=False),
    sa.Column('locked_until', UTCDateTime(), nullable=True),
    sa.Column('last_login_at', UTCDateTime(), nullable=True),
    sa.Column('created_at', UTCDateTime(), nullable=False),
    sa.CheckConstraint("role IN ('admin', 'manager', 'observer')", name='ck_staff_role'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name')
    )
    op.create_table('staff_campaigns',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('staff_id', sa.Integer(), nullable=False),
    sa.Column('campaign_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['staff_id'], ['staff.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('staff_id', 'campaign_id', name='uq_staff_campaigns')
    )
    with op.batch_alter_table('staff_campaigns', schema=None) as batch_op:
        batch_op.create_index('ix_staff_campaigns_staff_id', ['staff_id'], unique=False)
        batch_op.create_index('ix_staff_campaigns_campaign_id', ['campaign_id'], unique=False)

    op.create_table('staff_sessions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('staff_id', sa.Integer(), nullable=False),
    sa.Column('secret_hash', sa.String(length=64), nullable=False),
    sa.Column('created_at', UTCDateTime(), nullable=False),
    sa.Column('last_seen_at', UTCDateTime(), nullable=False),
    sa.Column('revoked_at', UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['staff_id'], ['staff.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('secret_hash')
    )
    with op.batch_alter_table('staff_sessions', schema=None) as batch_op:
        batch_op.create_index('ix_staff_sessions_staff_id', ['staff_id'], unique=False)

    op.create_table('one_time_links',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('purpose', sa.String(length=16), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('staff_id', sa.Integer(), nullable=True),
    sa.Column('kiosk_id', sa.Integer(), nullable=True),
    sa.Column('created_at', UTCDateTime(), nullable=False),
    sa.Column('expires_at', UTCDateTime(), nullable=False),
    sa.Column('used_at', UTCDateTime(), nullable=True),
    sa.CheckConstraint("purpose IN ('set_password', 'kiosk_enrol')", name='ck_one_time_links_purpose'),
    sa.ForeignKeyConstraint(['kiosk_id'], ['kiosks.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['staff_id'], ['staff.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('token_hash')
    )
    with op.batch_alter_table('one_time_links', schema=None) as batch_op:
        batch_op.create_index('ix_one_time_links_staff_id', ['staff_id'], unique=False)
        batch_op.create_index('ix_one_time_links_kiosk_id', ['kiosk_id'], unique=False)


def downgrade():
    with op.batch_alter_table('one_time_links', schema=None) as batch_op:
        batch_op.drop_index('ix_one_time_links_kiosk_id')
        batch_op.drop_index('ix_one_time_links_staff_id')
    op.drop_table('one_time_links')
    with op.batch_alter_table('staff_sessions', schema=None) as batch_op:
        batch_op.drop_index('ix_staff_sessions_staff_id')
    op.drop_table('staff_sessions')
    with op.batch_alter_table('staff_campaigns', schema=None) as batch_op:
        batch_op.drop_index('ix_staff_campaigns_campaign_id')
        batch_op.drop_index('ix_staff_campaigns_staff_id')
    op.drop_table('staff_campaigns')
    op.drop_table('staff')
    with op.batch_alter_table('campaigns', schema=None) as batch_op:
        batch_op.drop_column('draft')
