"""Embeddings in Postgres at scale: 100k synthetic 512-d clip embeddings in the embedded
Postgres (pgvector), through the real schema and the real code paths.

Rows, each with a baseline run in the same process:

- insert: COPY into clip_embeddings against row-by-row INSERTs (executemany) of a subset;
- index: building the HNSW index of revision 0013 (m=16, ef_construction=64) over every row;
- search: ``vidqa_search`` (the index) against the same query as an exact scan, and numpy
  brute force in float64; latency p50/p99 and recall@10 against brute force;
- dedup: ``vidqa dedup`` over every clip against a numpy all-pairs brute force (blocked
  float32 matmul): time, and the duplicate pairs each finds; then an incremental run over 1%
  new clips.

The data: clusters of related clips (cosine ~0.5 within a cluster, as one topic) plus planted
near-duplicates (cosine ~0.98 to a random clip), so the expected duplicate pairs are known.

    python bench/bench_embeddings.py [--n 100000] [--queries 200] [--out bench/results/embeddings_cpu.md]
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DIM = 512
MODEL = "bench-synthetic-512"
SAMPLING = "bench-sampling"


def synthetic(n: int, rng: np.random.Generator, duplicate_share: float = 0.02) -> tuple[np.ndarray, set]:
    """``n`` unit embeddings: clusters of ~50 (cosine ~0.5 to each other) and, for a share of
    them, a near copy of an earlier one (cosine ~0.98). Returns them and the planted pairs."""
    n_dup = int(n * duplicate_share)
    n_base = n - n_dup
    centres = rng.normal(size=(max(1, n_base // 50), DIM)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    noise = rng.normal(size=(n_base, DIM)).astype(np.float32)
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    base = centres[rng.integers(0, len(centres), n_base)] + noise  # 45 degrees from the centre
    base /= np.linalg.norm(base, axis=1, keepdims=True)
    of = rng.choice(n_base, n_dup, replace=False)
    wobble = rng.normal(size=(n_dup, DIM)).astype(np.float32)
    wobble /= np.linalg.norm(wobble, axis=1, keepdims=True)
    copies = base[of] + 0.2 * wobble  # ~11 degrees: cosine ~0.98
    copies /= np.linalg.norm(copies, axis=1, keepdims=True)
    out = np.concatenate([base, copies])
    order = rng.permutation(n)
    position = np.empty(n, dtype=np.int64)
    position[order] = np.arange(n)
    planted = {tuple(sorted((int(position[o]), int(position[n_base + k])))) for k, o in enumerate(of)}
    return out[order], planted


def percentile_ms(seconds: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(seconds) * 1000, q))


def brute_force_pairs(e: np.ndarray, threshold: float, block: int = 4096) -> set:
    pairs = set()
    for start in range(0, len(e), block):
        sims = e[start:start + block] @ e.T
        rows, cols = np.nonzero(sims >= threshold)
        for r, c in zip(rows + start, cols):
            if r < c:
                pairs.add((int(r), int(c)))
    return pairs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "embeddings_cpu.md"))
    args = ap.parse_args()

    os.environ.setdefault("VIDQA_HOME", tempfile.mkdtemp(prefix="vidqa-bench-emb-"))
    import sqlalchemy as sa
    from psycopg.types.json import Jsonb

    from vidqa.curation.dedup import deduplicate
    from vidqa.db import database_url, get_engine, upgrade
    from vidqa.db.embeddings import EmbeddingSpace, register_embedding_model, search

    admin_url = database_url()
    name = f"vidqa_bench_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.engine.make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    upgrade("head", url)
    engine = get_engine(url)
    rng = np.random.default_rng(0)
    n_new = max(1, args.n // 100)
    emb, _ = synthetic(args.n + n_new, rng)
    initial, new = emb[:args.n], emb[args.n:]
    table: list[tuple[str, str, str, str]] = []

    raw = engine.raw_connection()
    cur = raw.cursor()
    cur.execute("INSERT INTO videos (uri, content_id, status) SELECT '/bench/v' || g || '.mp4', 'sha256:' || g, 'ok' "
                "FROM generate_series(1, %s) g", [(args.n + n_new) // 100 + 2])
    cur.execute("INSERT INTO clips (video_id, kind, start_frame, end_frame, start_time_s, end_time_s, split_hash) "
                "SELECT 1 + (g - 1) / 100, 'scene', ((g - 1) %% 100) * 100, ((g - 1) %% 100) * 100 + 50, "
                "((g - 1) %% 100) * 4.0, ((g - 1) %% 100) * 4.0 + 2, 'bench' FROM generate_series(1, %s) g",
                [args.n + n_new])
    raw.commit()
    with engine.begin() as conn:
        register_embedding_model(conn, MODEL, {"name": "synthetic"}, DIM, "synthetic 512-d (bench)")
    cur.execute("DROP INDEX ix_clip_embeddings_hnsw_512")
    raw.commit()

    def rows(block: np.ndarray, first_id: int):
        for k, v in enumerate(block):
            yield (first_id + k, MODEL, SAMPLING, Jsonb({"method": "bench"}), DIM, v.tolist(), [0])

    def copy_text(block: np.ndarray, first_id: int, chunk: int = 2000):
        """COPY's text format, the arrays formatted by numpy (per-element Python formatting is
        what limits a client otherwise)."""
        for start in range(0, len(block), chunk):
            buf = io.StringIO()
            np.savetxt(buf, block[start:start + chunk], fmt="%.8g", delimiter=",")
            yield "".join(f'{first_id + start + k}\t{MODEL}\t{SAMPLING}\t{{"method": "bench"}}\t{DIM}\t{{{line}}}\t{{0}}\n'
                          for k, line in enumerate(buf.getvalue().splitlines()))

    columns = "clip_id, model_hash, sampling_hash, sampling, dim, embedding, frame_indices"
    subset = min(5000, args.n // 4)
    t = time.perf_counter()
    cur.executemany(f"INSERT INTO clip_embeddings ({columns}) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                    list(rows(initial[:subset], 1)))
    raw.commit()
    insert_rate = subset / (time.perf_counter() - t)
    t = time.perf_counter()
    with cur.copy(f"COPY clip_embeddings ({columns}) FROM STDIN") as copy:
        for text in copy_text(initial[subset:], subset + 1):
            copy.write(text)
    raw.commit()
    copy_rate = (args.n - subset) / (time.perf_counter() - t)
    table.append(("insert 512-d rows", f"COPY {copy_rate:,.0f} rows/s", f"INSERT {insert_rate:,.0f} rows/s",
                  f"{copy_rate / insert_rate:.1f}x"))

    cur.execute("SET maintenance_work_mem = '2GB'")
    t = time.perf_counter()
    cur.execute("CREATE INDEX ix_clip_embeddings_hnsw_512 ON clip_embeddings USING hnsw "
                "((embedding::vector(512)) vector_cosine_ops) WHERE dim = 512")
    raw.commit()
    build_s = time.perf_counter() - t
    table.append((f"HNSW index build ({args.n:,} rows)", f"{build_s:.1f} s", "", ""))
    cur.execute("ANALYZE clip_embeddings")
    raw.commit()
    raw.close()

    space = EmbeddingSpace(MODEL, SAMPLING, DIM, {"name": "synthetic"}, "synthetic", {}, args.n)
    queries = initial[rng.choice(args.n, args.queries, replace=False)] + 0.5 * rng.normal(size=(args.queries, DIM)) / np.sqrt(DIM)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    ids = np.arange(1, args.n + 1)
    index_s, exact_s, numpy_s, recalls = [], [], [], []
    e64 = initial.astype(np.float64)
    for q in queries:
        t = time.perf_counter()
        truth = ids[np.argsort(-(e64 @ q))[:10]]
        numpy_s.append(time.perf_counter() - t)
        with engine.connect() as conn:
            t = time.perf_counter()
            found = [r["clip_id"] for r in search(conn, q, 10, space)]
            index_s.append(time.perf_counter() - t)
        with engine.connect() as conn:
            conn.execute(sa.text("SET enable_indexscan = off"))  # for the session: the exact scan
            conn.commit()
            t = time.perf_counter()
            exact = [r["clip_id"] for r in search(conn, q, 10, space)]
            exact_s.append(time.perf_counter() - t)
            conn.rollback()
            conn.execute(sa.text("RESET enable_indexscan"))  # the pooled connection goes back as it came
            conn.commit()
        recalls.append(len(set(found) & set(truth)) / 10)
        assert set(exact) == set(truth.tolist()), "the exact scan must equal numpy brute force"
    for label, seconds in (("index", index_s), ("exact", exact_s), ("numpy", numpy_s)):
        table.append((f"search top-10, {label} p50 / p99", f"{percentile_ms(seconds, 50):.1f} / "
                      f"{percentile_ms(seconds, 99):.1f} ms", "", ""))
    table[-3] = (*table[-3][:2], f"exact scan {percentile_ms(exact_s, 50):.1f} ms",
                 f"{percentile_ms(exact_s, 50) / percentile_ms(index_s, 50):.1f}x")
    table.append((f"recall@10 vs brute force ({args.queries} queries)", f"{np.mean(recalls):.3f}", "", ""))

    t = time.perf_counter()
    result = deduplicate(engine)
    dedup_s = time.perf_counter() - t
    t = time.perf_counter()
    expected = brute_force_pairs(initial, 0.95)
    brute_s = time.perf_counter() - t
    with engine.connect() as conn:
        grouped = conn.execute(sa.text(
            "SELECT group_id, array_agg(clip_id) FROM duplicate_groups WHERE dedup_key = :k AND reason <> 'unique' "
            "GROUP BY group_id"), {"k": result.dedup_key}).all()
    group_of = {c - 1: g for g, members in grouped for c in members}
    found = sum(1 for a, b in expected if a in group_of and group_of.get(b) == group_of[a])
    table.append((f"dedup {args.n:,} clips (threshold 0.95)", f"{dedup_s:.1f} s, {result.n_groups:,} groups",
                  f"numpy all pairs {brute_s:.1f} s, {len(expected):,} pairs", f"{brute_s / dedup_s:.2f}x"))
    table.append(("dedup pairs found / brute-force pairs", f"{found:,} / {len(expected):,} "
                  f"({found / max(1, len(expected)):.4f})", "", ""))

    with engine.begin() as conn:
        conn.exec_driver_sql("SELECT 1")
        raw = conn.connection.driver_connection
        with raw.cursor().copy(f"COPY clip_embeddings ({columns}) FROM STDIN") as copy:
            for text in copy_text(new, args.n + 1):
                copy.write(text)
    t = time.perf_counter()
    again = deduplicate(engine)
    again_s = time.perf_counter() - t
    table.append((f"dedup rerun: {n_new:,} new clips", f"{again_s:.1f} s, {again.compared:,} compared",
                  f"first run {dedup_s:.1f} s", f"{dedup_s / again_s:.1f}x"))

    engine.dispose()
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE "{name}" WITH (FORCE)'))
    lines = ["| measure | vidqa | baseline (same process) | ratio |", "|---|---|---|---|"]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in table]
    header = (f"# Embeddings in Postgres: {args.n:,} synthetic 512-d clips\n\nEmbedded Postgres (pgserver) with "
              f"pgvector, HNSW m=16 ef_construction=64; {os.cpu_count()} CPU cores. `python bench/bench_embeddings.py "
              f"--n {args.n}`\n\n")
    text = header + "\n".join(lines) + "\n"
    print(text)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
