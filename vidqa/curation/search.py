"""Text search over stored clip embeddings: the text is encoded once with the CLIP that made
the embeddings, and ``vidqa_search`` (revision 0014) ranks the clips by cosine similarity."""

from __future__ import annotations

from typing import Any, Optional

import numpy as np
from sqlalchemy.engine import Engine

from vidqa.db.embeddings import EmbeddingSpace, require_vector, resolve_space, search
from vidqa.db.export import check_predicate
from vidqa.db.views import CLIP_VIEW
from vidqa.errors import ScorerError
from vidqa.hashing import stable_hash
from vidqa.models.clip_model import ClipModel, encode_texts, load_clip


def encoder_of(space: EmbeddingSpace, clip_model: Optional[str] = None, device: str = "cpu") -> ClipModel:
    """The CLIP whose image tower made ``space``'s embeddings, for its text tower.

    Rebuilt from the stored identity (name, pretrained tag, precision) unless ``clip_model``
    (``NAME[@PRETRAINED]``) names it: needed when the embeddings came from a local checkpoint
    or a model config file, whose paths the identity does not keep. Either way the model loaded must have the stored
    identity (its weights' SHA-256 included), or the similarities would mean nothing."""
    identity = space.identity
    if clip_model:
        name, _, pretrained = clip_model.partition("@")
        pretrained = pretrained or None
    elif identity.get("pretrained") == "local":
        raise ScorerError(f"the embeddings of {space.summary} came from a local checkpoint: name it with "
                          "--clip-model NAME@/path/to/checkpoint")
    else:
        name, pretrained = identity["name"], identity.get("pretrained")
    try:
        model = load_clip(name, pretrained, device=device, precision=identity.get("precision", "fp32"))
    except ScorerError as exc:
        if clip_model:
            raise
        raise ScorerError(f"{exc}; the embeddings of {space.summary} came from a model this process cannot "
                          "rebuild by name: give it with --clip-model NAME@PRETRAINED (a config .json or "
                          "checkpoint path)") from exc
    if stable_hash(model.identity()) != space.model_hash:
        raise ScorerError(f"the CLIP loaded ({name}@{pretrained}, weights {model.weights_id}) is not the encoder of "
                          f"the stored embeddings ({space.summary}, weights {identity.get('weights')})")
    return model


def search_text(engine: Engine, text: str, top: int = 20, model: Optional[str] = None, where: Optional[str] = None,
                clip_model: Optional[str] = None) -> tuple[EmbeddingSpace, list[dict[str, Any]]]:
    """The ``top`` clips nearest to ``text``, nearest first, with their latest scores;
    ``where`` is a condition over ``clip_scores_wide`` (as ``vidqa export --where``)."""
    if not text.strip():
        raise ValueError("nothing to search for: the text is empty")
    if top < 1:
        raise ValueError(f"--top must be at least 1, got {top}")
    predicate = None if where is None else check_predicate(where, CLIP_VIEW)
    with engine.connect() as conn:
        require_vector(conn, "vidqa search")
        space = resolve_space(conn, model)
    query = encode_texts(encoder_of(space, clip_model), [text])[0].double().numpy()
    with engine.connect() as conn:
        return space, search(conn, query / np.linalg.norm(query), top, space, predicate)
