"""Wide views for filtering in SQL: clip_scores_wide, video_scores_wide (one column per metric).

Created from the metrics present at migration time; `vidqa db refresh-views` and the end of
each run recreate them when new metrics appear (see vidqa.db.views).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22
"""

from alembic import op

from vidqa.db.views import drop_wide_views, refresh_wide_views

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    refresh_wide_views(op.get_bind(), revision=revision)  # the views as of this revision


def downgrade() -> None:
    drop_wide_views(op.get_bind())
