"""kiosk_sessions: enrolled browsers get a credential of their own

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 12:00:00

"""
from alembic import op
import sqlalchemy as sa

from service.models._types import UTCDateTime


# revision identifiers, used by Alembic.
revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('kiosk_sessions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kiosk_id', sa.Integer(), nullable=False),
    sa.Column('secret_hash', sa.String(length=64), nullable=False),
    sa.Column('created_at', UTCDateTime(), nullable=False),
    sa.Column('revoked_at', UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['kiosk_id'], ['kiosks.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('secret_hash')
    )
    with op.batch_alter_table('kiosk_sessions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_kiosk_sessions_kiosk_id'), ['kiosk_id'], unique=False)


def downgrade():
    with op.batch_alter_table('kiosk_sessions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_kiosk_sessions_kiosk_id'))

    op.drop_table('kiosk_sessions')
