"""Near-duplicate groups and text search over the stored clip embeddings.

- ``dedup_settings``: one row per deduplication setting (encoder, sampling and threshold) that
  ``vidqa dedup`` has run, with its keeper rule and counts. The most recently run one is the
  *current* deduplication, which the wide views show.
- ``duplicate_groups``: every clip that setting has compared, in its group (a group of one
  when it has no duplicate), with the group's keeper; a rerun compares only clips with no row.
- ``clip_embeddings.frames``: the frames summary (``frames``, ``requested``,
  ``frame_indices``, ``skipped_corrupt``, ``capped``) scores carry in their details, so a
  score computed from stored embeddings (``--from-embeddings``) stores the same details.
- The wide views gain ``duplicate_of`` (clip view: the keeper's clip id; video view: the
  keeper's video id) under the current deduplication; ``NULL`` for keepers, unique clips and
  clips never compared, so ``export --where "duplicate_of is null"`` is a deduplicated set.
- ``vidqa_search(query real[], k, model, clip_ids, sampling)``: the ``k`` clips whose stored embedding
  is nearest to ``query`` (cosine), through the HNSW index; it needs pgvector and says so.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

from vidqa.db.views import drop_wide_views, refresh_wide_views

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

COMMENTS = {
    "dedup_settings": ("Each near-duplicate setting vidqa dedup has run (encoder, sampling and threshold); the most "
                       "recently run is the one the wide views' duplicate_of shows.", {
        "dedup_key": "identity of the setting: a hash of model_hash, sampling_hash and threshold",
        "model_hash": "the encoder whose embeddings are compared (embedding_models.model_hash)",
        "sampling_hash": "the sampling whose embeddings are compared (clip_embeddings.sampling_hash)",
        "threshold": "two clips are duplicates when the cosine similarity of their embeddings is at least this",
        "keep_by": "the metric whose highest value picks each group's keeper (then longest, then oldest)",
        "neighbours": "nearest neighbours looked up per clip",
        "n_clips": "clips compared so far",
        "n_groups": "groups of two or more clips",
        "n_duplicates": "clips that are not their group's keeper",
        "created_at": "first run",
        "updated_at": "latest run (the latest setting is the current deduplication)",
    }),
    "duplicate_groups": ("Every clip a deduplication setting compared, in its group (a group of one when it "
                         "has no duplicate).", {
        "dedup_key": "the setting (dedup_settings.dedup_key)",
        "clip_id": "the clip (clips.id)",
        "group_id": "the group: the lowest clip id in it",
        "duplicate_of": "the group's keeper (clips.id); NULL for the keeper and for a clip with no duplicate",
        "similarity": "cosine similarity of the clip's embedding and the keeper's (1 for the keeper)",
        "reason": "unique | keeper | content (the same frames of the same video as the keeper) | "
                  "embedding (similar embeddings)",
        "compared_at": "when the clip was compared",
    }),
}
FRAMES_COMMENT = ("the frames summary of the pooled frames (frames, requested, frame_indices, skipped_corrupt, "
                  "capped), as scores' details carry it; NULL for rows stored before revision 0014")

# Dynamic SQL so that the partial HNSW index of the query's width is the one used (its
# predicate and cast need the width as a literal) and so that the function can be created
# on a server without pgvector, where it says what is missing.
SEARCH_FUNCTION = r"""
CREATE FUNCTION vidqa_search(query real[], k integer DEFAULT 20, model text DEFAULT NULL,
                             clip_ids bigint[] DEFAULT NULL, sampling text DEFAULT NULL)
RETURNS TABLE (rank integer, clip_id bigint, video_id bigint, uri text, start_time_s double precision,
               end_time_s double precision, similarity double precision, model_hash text, sampling_hash text)
LANGUAGE plpgsql STABLE AS $fn$
#variable_conflict use_variable
DECLARE
    d integer := cardinality(query);
    m text;
    s text;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'vector') THEN
        RAISE EXCEPTION 'vidqa_search needs the pgvector extension (vector) in this database'
            USING HINT = 'install pgvector on the server and run CREATE EXTENSION vector as a role that may '
                         '(docs: README, Clip embeddings)';
    END IF;
    IF sampling IS NOT NULL AND EXISTS (SELECT 1 FROM embedding_models em WHERE em.model_hash = model AND em.dim = d)
    THEN
        m := model;  -- both named in full (as vidqa search does): nothing to resolve
        s := sampling;
    ELSE
        SELECT e.model_hash, e.sampling_hash INTO m, s
          FROM clip_embeddings e JOIN embedding_models em ON em.model_hash = e.model_hash
         WHERE e.dim = d AND (model IS NULL OR e.model_hash LIKE model || '%' OR em.summary LIKE model || '%')
           AND (sampling IS NULL OR e.sampling_hash = sampling)
         GROUP BY e.model_hash, e.sampling_hash
         ORDER BY count(*) DESC, max(e.created_at) DESC LIMIT 1;
    END IF;
    IF m IS NULL THEN
        RAISE EXCEPTION 'no stored clip embeddings of width % match model %', d, coalesce(model, '(any)');
    END IF;
    -- The index holds every encoder of this width: look further when several share it.
    PERFORM set_config('hnsw.ef_search', least(1000, greatest(40, k) * greatest(1, (
        SELECT count(*) FROM embedding_models em WHERE em.dim = d)))::text, true);
    RETURN QUERY EXECUTE format(
        'SELECT (row_number() OVER (ORDER BY n.dist, n.clip_id))::integer, n.clip_id, c.video_id, v.uri, '
        '       c.start_time_s, c.end_time_s, 1 - n.dist, $2, $3 '
        '  FROM (SELECT e.clip_id, e.embedding::vector(%1$s) <=> $1::vector(%1$s) AS dist '
        '          FROM clip_embeddings e '
        '         WHERE e.dim = %1$s AND e.model_hash = $2 AND e.sampling_hash = $3 '
        '           AND ($5 IS NULL OR e.clip_id = ANY($5)) '
        '         ORDER BY e.embedding::vector(%1$s) <=> $1::vector(%1$s) LIMIT $4) n '
        '  JOIN clips c ON c.id = n.clip_id JOIN videos v ON v.id = c.video_id '
        ' ORDER BY n.dist, n.clip_id', d)
    USING query, m, s, k, clip_ids;
END
$fn$
"""
SEARCH_COMMENT = ("The k clips whose stored embedding (clip_embeddings) is nearest to query, by cosine "
                  "similarity, under the encoder whose model_hash or summary starts with model (default: the one "
                  "with most embeddings of the query's width) and sampling_hash sampling (default: the one with most clips); "
                  "clip_ids limits the search to those clips. "
                  "Needs pgvector.")


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def upgrade() -> None:
    conn = op.get_bind()
    drop_wide_views(conn)
    op.create_table(
        "dedup_settings",
        sa.Column("dedup_key", sa.Text, primary_key=True),
        sa.Column("model_hash", sa.Text, sa.ForeignKey("embedding_models.model_hash"), nullable=False),
        sa.Column("sampling_hash", sa.Text, nullable=False),
        sa.Column("threshold", sa.Float, nullable=False),
        sa.Column("keep_by", sa.Text, nullable=False),
        sa.Column("neighbours", sa.Integer, nullable=False),
        sa.Column("n_clips", sa.Integer, nullable=False, server_default="0"),
        sa.Column("n_groups", sa.Integer, nullable=False, server_default="0"),
        sa.Column("n_duplicates", sa.Integer, nullable=False, server_default="0"),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    )
    op.create_table(
        "duplicate_groups",
        sa.Column("dedup_key", sa.Text, sa.ForeignKey("dedup_settings.dedup_key", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("clip_id", sa.BigInteger, sa.ForeignKey("clips.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("group_id", sa.BigInteger, nullable=False),
        sa.Column("duplicate_of", sa.BigInteger),
        sa.Column("similarity", sa.Float, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("compared_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    )
    op.create_index("ix_duplicate_groups_group", "duplicate_groups", ["dedup_key", "group_id"])
    op.create_index("ix_duplicate_groups_clip", "duplicate_groups", ["clip_id"])
    op.add_column("clip_embeddings", sa.Column("frames", JSONB))
    for table, (about, columns) in COMMENTS.items():
        op.execute(f"COMMENT ON TABLE {table} IS {_quote(about)}")
        for column, text in columns.items():
            op.execute(f"COMMENT ON COLUMN {table}.{column} IS {_quote(text)}")
    op.execute(f"COMMENT ON COLUMN clip_embeddings.frames IS {_quote(FRAMES_COMMENT)}")
    op.execute(SEARCH_FUNCTION)
    op.execute(f"COMMENT ON FUNCTION vidqa_search(real[], integer, text, bigint[], text) IS {_quote(SEARCH_COMMENT)}")
    refresh_wide_views(conn, revision=revision)


def downgrade() -> None:
    conn = op.get_bind()
    drop_wide_views(conn)
    op.execute("DROP FUNCTION vidqa_search(real[], integer, text, bigint[], text)")
    op.drop_column("clip_embeddings", "frames")
    op.drop_table("duplicate_groups")
    op.drop_table("dedup_settings")
    refresh_wide_views(conn, revision=down_revision)
