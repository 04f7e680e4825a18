"""A video is ``ok`` only once its scores are written.

``videos.status`` gains ``scoring``: probed, with its scores being written (a shard marks its
videos ``ok`` after its last write). Such a video is not in the wide views yet, and one left
``scoring`` by a killed shard is finished by the next run. Bytes already ``ok`` stay ``ok``
while a new scorer runs on them.

Downgrade makes ``scoring`` videos ``ok`` again (what the older code called them).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02
"""

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

STATUS_COMMENT = ("ok (probed, and every score of its shard written) | scoring (probed, scores being written; "
                  "not in the wide views yet) | failed")


def upgrade() -> None:
    op.drop_constraint("ck_videos_status", "videos", type_="check")
    op.create_check_constraint("ck_videos_status", "videos", "status IN ('ok', 'scoring', 'failed')")
    op.execute("COMMENT ON COLUMN videos.status IS '" + STATUS_COMMENT.replace("'", "''") + "'")


def downgrade() -> None:
    op.execute("UPDATE videos SET status = 'ok' WHERE status = 'scoring'")
    op.drop_constraint("ck_videos_status", "videos", type_="check")
    op.create_check_constraint("ck_videos_status", "videos", "status IN ('ok', 'failed')")
    op.execute("COMMENT ON COLUMN videos.status IS 'ok | failed'")
