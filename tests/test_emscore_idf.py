"""EMScore's idf table as the reference code (ShiYaya/emscore) builds it, against an
independent float64 re-implementation of its ``get_idf_dict`` and EOS rule over open_clip's
real padded tokenization: documents are the references as the reference flattens them (one per
candidate and reference, so a reference shared by k candidates counts k times), each counted
with its padding token, and EOS weighs the mean over every entry. The distinct-documents rule
stays as ``idf_corpus: distinct`` with its old configuration hash; the new default has a new
one, so scores of the old rule are never reused for it."""

import math
from collections import Counter

import open_clip
import pytest

from vidqa.scorers import build_scorer

ROWS = [  # VATEX-EVAL style: two candidates of one video share its references; one more video
    ("/v/a.mp4", {"candidate": "a man rides a brown horse", "reference": ["a man is riding a horse", "a rider on a horse"]}),
    ("/v/a.mp4", {"candidate": "a person on an animal", "reference": ["a man is riding a horse", "a rider on a horse"]}),
    ("/v/b.mp4", {"candidate": "a dog runs in the park", "reference": "a dog is running on the grass"}),
]
# Hashes the code had before `idf_corpus` existed (random-init ViT-B-32: no weight files).
OLD_HASH_NO_IDF = "ad2bdf24fa0edf44"
OLD_HASH_DISTINCT = "78a6812b75547367"


def reference_idf(documents: list[str]) -> dict[int, float]:
    """get_idf_dict over clip.tokenize rows (77, zero-padded), then
    idf[max(keys)] = mean(idf.values()) for EOS, as emscore/scorer.py does."""
    count: Counter[int] = Counter()
    for doc in documents:
        count.update(set(open_clip.tokenize([doc])[0].tolist()))
    m = len(documents)
    idf = {t: math.log((m + 1) / (c + 1)) for t, c in count.items()}
    idf[max(idf)] = math.fsum(idf.values()) / len(idf)
    return idf


def loaded(config, rows, tiny_clip):
    base = {"clip": {"model": tiny_clip[32], "pretrained": None}, **config}
    context = build_scorer("emscore", base).context_for(rows)
    scorer = build_scorer("emscore", base, context)
    scorer.setup()
    return scorer, context


def test_the_idf_table_is_the_reference_codes(tiny_clip):
    scorer, context = loaded({}, ROWS, tiny_clip)
    flattened = ["a man is riding a horse", "a rider on a horse"] * 2 + ["a dog is running on the grass"]
    assert context["idf_corpus"] == flattened  # per candidate, as the reference flattens refs
    expected = reference_idf(flattened)
    table = scorer._idf
    assert table.num_documents == 5
    for token, value in expected.items():
        got = table.eos_idf if token == table.eos_id else table.idf[token]
        assert got == pytest.approx(value, abs=1e-12), token
    assert expected[0] == pytest.approx(0.0, abs=1e-12)  # the padding token is in every document
    unseen = open_clip.tokenize(["zebra"])[0][1].item()
    assert table.lookup([unseen])[0] == pytest.approx(math.log(6))

    # No references: the candidates are the documents, one per row.
    no_refs = [(uri, {"candidate": f["candidate"]}) for uri, f in ROWS]
    scorer, context = loaded({}, no_refs, tiny_clip)
    assert context["idf_corpus"] == [f["candidate"] for _, f in ROWS]
    assert scorer._idf.eos_idf == pytest.approx(reference_idf(context["idf_corpus"])[49407], abs=1e-12)


def test_the_distinct_rule_keeps_its_old_table_and_hash(tiny_clip):
    scorer, context = loaded({"idf_corpus": "distinct"}, ROWS, tiny_clip)
    distinct = ["a man is riding a horse", "a rider on a horse", "a dog is running on the grass"]
    assert context["idf_corpus"] == distinct
    real_tokens = [set(t for t in open_clip.tokenize([d])[0].tolist() if t != 0) for d in distinct]
    df = Counter(t for doc in real_tokens for t in doc)
    idf = {t: math.log(4 / (c + 1)) for t, c in df.items()}
    assert 0 not in scorer._idf.idf
    assert scorer._idf.eos_idf == pytest.approx(math.fsum(idf.values()) / len(idf), abs=1e-12)

    vit = {"clip": {"model": "ViT-B-32", "pretrained": None}}
    corpus = {"idf_corpus": ["a man rides a horse", "a dog runs"]}
    assert build_scorer("emscore", {**vit, "idf": False}).config_hash == OLD_HASH_NO_IDF
    assert build_scorer("emscore", {**vit, "idf_corpus": "distinct"}, corpus).config_hash == OLD_HASH_DISTINCT
    assert build_scorer("emscore", vit, corpus).config_hash not in (OLD_HASH_NO_IDF, OLD_HASH_DISTINCT)
