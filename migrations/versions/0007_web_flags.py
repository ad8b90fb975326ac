"""Web abuse flags: keyed hashes of a web ballot's client address and network

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 10:00:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('ballots', schema=None) as batch_op:
        batch_op.add_column(sa.Column('client_hash', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('subnet_hash', sa.String(length=64), nullable=True))
        batch_op.create_index(
            'ix_ballots_campaign_client_accepted',
            ['campaign_id', 'client_hash', 'accepted_at'],
            unique=False,
        )
        batch_op.create_index(
            'ix_ballots_campaign_subnet_accepted',
            ['campaign_id', 'subnet_hash', 'accepted_at'],
            unique=False,
        )


def downgrade():
    with op.batch_alter_table('ballots', schema=None) as batch_op:
        batch_op.drop_index('ix_ballots_campaign_subnet_accepted')
        batch_op.drop_index('ix_ballots_campaign_client_accepted')
        batch_op.drop_column('subnet_hash')
        batch_op.drop_column('client_hash')
