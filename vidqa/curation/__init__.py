"""Curating a scored dataset from its stored clip embeddings: near-duplicate groups and text
search, with no video decoded again."""
