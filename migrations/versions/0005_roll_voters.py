"""electoral roll: voters of a campaign as keyed hashes, with area and grid

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 10:00:00

"""
from alembic import op
import sqlalchemy as sa

from service.models._types import UTCDateTime


# revision identifiers, used by Alembic.
revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('roll_voters',
    sa.Column('campaign_id', sa.Integer(), nullable=False),
    sa.Column('voter_key', sa.String(length=64), nullable=False),
    sa.Column('area', sa.String(length=100), nullable=True),
    sa.Column('grid', sa.String(length=100), nullable=True),
    sa.Column('added_at', UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('campaign_id', 'voter_key')
    )
    with op.batch_alter_table('roll_voters', schema=None) as batch_op:
        batch_op.create_index('ix_roll_voters_campaign_area', ['campaign_id', 'area'], unique=False)


def downgrade():
    with op.batch_alter_table('roll_voters', schema=None) as batch_op:
        batch_op.drop_index('ix_roll_voters_campaign_area')

    op.drop_table('roll_voters')
