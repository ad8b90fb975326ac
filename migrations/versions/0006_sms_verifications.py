"""SMS one-time codes: verifications and send counters

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 10:00:00

"""
from alembic import op
import sqlalchemy as sa

from service.models._types import UTCDateTime


# revision identifiers, used by Alembic.
revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('sms_verifications',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('campaign_id', sa.Integer(), nullable=False),
    sa.Column('voter_key', sa.String(length=64), nullable=False),
    sa.Column('code_hash', sa.String(length=64), nullable=False),
    sa.Column('created_at', UTCDateTime(), nullable=False),
    sa.Column('expires_at', UTCDateTime(), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('used_at', UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('sms_verifications', schema=None) as batch_op:
        batch_op.create_index('ix_sms_verifications_campaign_id', ['campaign_id'], unique=False)
        batch_op.create_index('ix_sms_verifications_voter_created', ['voter_key', 'created_at'], unique=False)

    op.create_table('sms_counters',
    sa.Column('scope', sa.String(length=80), nullable=False),
    sa.Column('day', sa.String(length=10), nullable=False),
    sa.Column('used', sa.Integer(), nullable=False),
    sa.Column('last_sent_at', UTCDateTime(), nullable=True),
    sa.PrimaryKeyConstraint('scope', 'day')
    )


def downgrade():
    op.drop_table('sms_counters')
    with op.batch_alter_table('sms_verifications', schema=None) as batch_op:
        batch_op.drop_index('ix_sms_verifications_voter_created')
        batch_op.drop_index('ix_sms_verifications_campaign_id')

    op.drop_table('sms_verifications')
