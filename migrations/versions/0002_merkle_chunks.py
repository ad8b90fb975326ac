"""merkle chunks for receipt proofs; one publication per run

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01 10:00:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('merkle_chunks',
    sa.Column('run_id', sa.String(length=36), nullable=False),
    sa.Column('chunk_index', sa.Integer(), nullable=False),
    sa.Column('first_receipt', sa.String(length=32), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('receipts', sa.Text(), nullable=False),
    sa.Column('root', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['run_id'], ['ranking_runs.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('run_id', 'chunk_index')
    )
    with op.batch_alter_table('publications', schema=None) as batch_op:
        batch_op.create_index('uq_publications_run_id', ['run_id'], unique=True)


def downgrade():
    with op.batch_alter_table('publications', schema=None) as batch_op:
        batch_op.drop_index('uq_publications_run_id')

    op.drop_table('merkle_chunks')
