"""ballots.leaf and ballots.choice_ids: a ballot's Merkle leaf hash and its entry ids,
written at ingest so that a ranking run reads one row per ballot without a join

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01 09:00:00

"""
import hashlib
import struct

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

BATCH = 5000


def upgrade():
    with op.batch_alter_table('ballots', schema=None) as batch_op:
        batch_op.add_column(sa.Column('leaf', sa.LargeBinary(length=32), nullable=True))
        batch_op.add_column(sa.Column('choice_ids', sa.LargeBinary(), nullable=True))
    bind = op.get_bind()
    if bind.dialect.name == 'postgresql':
        # Set-based: one grouped pass over the choices, not one subquery per ballot.
        op.execute(
            "UPDATE ballots b SET leaf = sha256('\\x00'::bytea || convert_to(b.receipt, 'UTF8')),"
            " choice_ids = c.ids"
            " FROM (SELECT ballot_id, string_agg(int4send(entry_id), ''::bytea"
            " ORDER BY entry_id) AS ids FROM ballot_choices GROUP BY ballot_id) c"
            " WHERE c.ballot_id = b.id"
        )
        return
    # Elsewhere (SQLite): in Python, a batch of ballots (in id order) at a time.
    last = ''
    while True:
        rows = bind.execute(
            sa.text('SELECT id, receipt FROM ballots WHERE id > :last ORDER BY id LIMIT :n'),
            {'last': last, 'n': BATCH},
        ).all()
        if not rows:
            break
        chosen = {}
        for ballot_id, entry_id in bind.execute(
            sa.text(
                'SELECT ballot_id, entry_id FROM ballot_choices'
                ' WHERE ballot_id >= :lo AND ballot_id <= :hi'
            ),
            {'lo': rows[0][0], 'hi': rows[-1][0]},
        ):
            chosen.setdefault(ballot_id, []).append(entry_id)
        updates = [
            {
                'id': ballot_id,
                'leaf': hashlib.sha256(b'\x00' + receipt.encode('utf-8')).digest(),
                'ids': struct.pack(f'>{len(chosen[ballot_id])}i', *sorted(chosen[ballot_id])),
            }
            for ballot_id, receipt in rows
            if ballot_id in chosen
        ]
        if updates:
            bind.execute(
                sa.text('UPDATE ballots SET leaf = :leaf, choice_ids = :ids WHERE id = :id'),
                updates,
            )
        last = rows[-1][0]


def downgrade():
    with op.batch_alter_table('ballots', schema=None) as batch_op:
        batch_op.drop_column('choice_ids')
        batch_op.drop_column('leaf')
