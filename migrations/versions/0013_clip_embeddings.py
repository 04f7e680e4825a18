"""Clip embeddings: the pooled CLIP embedding of each clip's sampled frames, kept next to the
scores (written by the CLIP scorers as a by-product, and by the ``embedding`` scorer).

Embeddings are stored as ``real[]``, which every Postgres has, so the table exists and is
written everywhere. Where the server has pgvector (the embedded Postgres ships 0.6.2; most
managed services offer it) and this role may create it, ``CREATE EXTENSION vector`` runs and
each common width gets an HNSW index on the cast ``(embedding::vector(d))`` with
``vector_cosine_ops``, partial on ``dim = d``: 512 (ViT-B), 768 (ViT-L), 1024 (ViT-H). Without
pgvector the migration creates the tables and no index, and nothing else changes. Downgrade
drops the tables and indexes; the extension stays (other schemas may use it).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-04
"""

import logging

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, REAL, UUID

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

log = logging.getLogger("alembic.runtime.migration")

INDEXED_DIMS = (512, 768, 1024)  # ViT-B, ViT-L, ViT-H

COMMENTS = {
    "embedding_models": ("Each image encoder whose embeddings are stored: what its model_hash means.", {
        "model_hash": "identity of the encoder: a hash of its name, weights and configuration (identity)",
        "identity": "the encoder's identity: model name, pretrained tag, weights and config SHA-256",
        "dim": "embedding width",
        "summary": "the encoder in a few words, e.g. ViT-B-32@openai (1a2b3c4d)",
        "created_at": "when its first embedding was stored",
    }),
    "clip_embeddings": ("The pooled embedding of a clip's sampled frames under one encoder and one "
                        "sampling: the mean of the frames' L2-normalised embeddings, normalised again.", {
        "clip_id": "the clip (clips.id)",
        "model_hash": "the encoder (embedding_models.model_hash)",
        "sampling_hash": "identity of the sampling that chose the frames (sampling)",
        "sampling": "the sampling settings that chose the frames",
        "dim": "embedding width (equals embedding_models.dim)",
        "embedding": "the pooled, unit-length embedding (real[]; cast with ::vector(dim) for pgvector)",
        "frame_indices": "the frames pooled (positions in the video's frame table)",
        "frame_embeddings": "each frame's unit embedding (n_frames x dim), when VIDQA_STORE_FRAME_EMBEDDINGS "
                            "is on; NULL otherwise",
        "run_id": "the run that stored it",
        "created_at": "when it was stored",
    }),
}


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _vector_extension(bind) -> bool:
    """Create pgvector when the server has it and this role may; say why not otherwise."""
    available = bind.execute(sa.text("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'")).first()
    if not available:
        log.warning("pgvector (extension 'vector') is not installed on this server: clip embeddings are "
                    "stored without an HNSW index (README, Embeddings, says how to add it later)")
        return False
    savepoint = bind.begin_nested()
    try:
        bind.execute(sa.text("CREATE EXTENSION IF NOT EXISTS vector"))
    except sa.exc.DBAPIError as exc:
        savepoint.rollback()
        log.warning("CREATE EXTENSION vector failed (%s): clip embeddings are stored without an HNSW index "
                    "(README, Embeddings, says how to add it later)", str(exc.orig).strip().splitlines()[0])
        return False
    savepoint.commit()
    return True


def upgrade() -> None:
    op.create_table(
        "embedding_models",
        sa.Column("model_hash", sa.Text, primary_key=True),
        sa.Column("identity", JSONB, nullable=False),
        sa.Column("dim", sa.Integer, nullable=False),
        sa.Column("summary", sa.Text),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    )
    op.create_table(
        "clip_embeddings",
        sa.Column("clip_id", sa.BigInteger, sa.ForeignKey("clips.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("model_hash", sa.Text, sa.ForeignKey("embedding_models.model_hash"), primary_key=True),
        sa.Column("sampling_hash", sa.Text, primary_key=True),
        sa.Column("sampling", JSONB, nullable=False),
        sa.Column("dim", sa.Integer, nullable=False),
        sa.Column("embedding", ARRAY(REAL), nullable=False),
        sa.Column("frame_indices", ARRAY(sa.Integer), nullable=False),
        sa.Column("frame_embeddings", ARRAY(REAL, dimensions=2)),
        sa.Column("run_id", UUID(as_uuid=True), sa.ForeignKey("runs.id", ondelete="SET NULL")),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.CheckConstraint("cardinality(embedding) = dim", name="ck_clip_embeddings_dim"),
    )
    op.create_index("ix_clip_embeddings_model", "clip_embeddings", ["model_hash", "sampling_hash"])
    for table, (about, columns) in COMMENTS.items():
        op.execute(f"COMMENT ON TABLE {table} IS {_quote(about)}")
        for column, text in columns.items():
            op.execute(f"COMMENT ON COLUMN {table}.{column} IS {_quote(text)}")
    if _vector_extension(op.get_bind()):
        for dim in INDEXED_DIMS:
            op.execute(f"CREATE INDEX ix_clip_embeddings_hnsw_{dim} ON clip_embeddings USING hnsw "
                       f"((embedding::vector({dim})) vector_cosine_ops) WHERE dim = {dim}")


def downgrade() -> None:
    op.drop_table("clip_embeddings")
    op.drop_table("embedding_models")
