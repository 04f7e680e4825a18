"""``videos.probe`` says which prober wrote it; clips can be shots.

Videos are now probed in the process through the FFmpeg libraries (vidqa/video/probe_libav.py)
where they load, and by the ffprobe binary otherwise. Both write ffprobe's JSON shape; the
in-process one writes the fields vidqa reads plus the usual descriptive ones (not every field
ffprobe prints) and names itself in ``probe->>'prober'``. ``--clips shots`` (TransNetV2) makes
clips of kind ``shot`` with split method ``shots``. Only comments change: no stored row is
touched, and downgrade restores the old comments.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03
"""

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

NEW = ("ffprobe's format/streams JSON: from the ffprobe binary, or the same fields read in the process "
       "(probe->>'prober' names it; absent on rows probed before migration 0012, which were all ffprobe's)")
OLD = "the full ffprobe output (JSONB)"


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


COMMENTS = {  # column: (new, old)
    "videos.probe": (NEW, OLD),
    "clips.kind": ("video (the whole video) | scene | shot | window", "video (the whole video) | scene | window"),
    "video_splits.method": ("scenes | shots | windows", "scenes | windows"),
}


def upgrade() -> None:
    for column, (new, _) in COMMENTS.items():
        op.execute(f"COMMENT ON COLUMN {column} IS {_quote(new)}")


def downgrade() -> None:
    for column, (_, old) in COMMENTS.items():
        op.execute(f"COMMENT ON COLUMN {column} IS {_quote(old)}")
