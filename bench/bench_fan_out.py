"""Fan-out over local workers: the same job scored in one flow run (the baseline, one shard at
a time in the parent's process) and fanned out as `score-shard` flow runs to 1 and 2 process
workers of a real local Prefect server (each worker one shard at a time, like one GPU each).

For every run the table gives the wall time of the parent flow run (server timestamps), the
time spent inside scoring (the `score-shard` tasks' run times), and the orchestration overhead:
the slot-seconds (slots x wall) not spent scoring, per video and as a share of slot time. It
covers shard flow-run start (process spawn, imports, pull steps), scheduling latency, polling,
the parent's listing and model preparation, and a tail where one worker idles.

    python bench/bench_fan_out.py [--videos 200] [--shard-size 50] [--frames 16] [--workers 1,2]
                                  [--out bench/results/fan_out_cpu.md]

Postgres: VIDQA_DATABASE_URL's server when set, else an embedded pgserver; each run gets a
fresh database, so nothing is skipped by the ledger.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from conftest import fresh_database  # noqa: E402
from prefect_server import REPO, Workers, parent_summary, running_prefect_server, start_parent, video_set  # noqa: E402
from vidqa.db import upgrade  # noqa: E402


def admin_url(tmp: Path) -> str:
    from sqlalchemy.engine import make_url

    given = os.environ.get("VIDQA_DATABASE_URL")
    if given:
        return make_url(given).set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    import pgserver

    return make_url(pgserver.get_server(tmp / "pg").get_uri()).set(
        drivername="postgresql+psycopg").render_as_string(hide_password=False)


def seconds(run: dict) -> float:
    return (datetime.fromisoformat(run["end_time"]) - datetime.fromisoformat(run["start_time"])).total_seconds()


def measure(srv, admin: str, tmp: Path, source: Path, n_workers: int, args) -> dict:
    with fresh_database(admin) as db:
        upgrade("head", db)
        workers = Workers(srv, db, tmp / f"run-{n_workers}")
        workers.tmp.mkdir()
        try:
            for w in range(n_workers):
                workers.start(f"worker-{w}", limit=1)
            time.sleep(3)  # workers registered before the job starts
            params = {"source": str(source), "scorers": ["technical"],
                      "technical": {"sampling": {"n": args.frames}}, "shard_size": args.shard_size,
                      "fan_out": {"enabled": n_workers > 0, "max_in_flight": 2 * max(n_workers, 1),
                                  "poll_seconds": 1}}
            # The baseline scores one shard at a time in its own process, as one worker does.
            summary = parent_summary(start_parent(workers, params, VIDQA_TASK_RUNNER_WORKERS="1"), workers, 3600)
        finally:
            workers.stop()
        engine = sa.create_engine(db)
        with engine.connect() as conn:
            parent_id = str(conn.execute(sa.text("SELECT flow_run_id FROM runs")).scalar_one())
        engine.dispose()
    assert summary["n_scored"] == args.videos and summary["n_failed"] == 0, summary
    parent = srv.get(f"/flow_runs/{parent_id}")
    flow_ids = [parent_id]
    if n_workers:
        flow_ids = [r["id"] for r in srv.post("/flow_runs/filter", {
            "flow_runs": {"tags": {"all_": [f"vidqa-run-{summary['run_id']}"]}}, "limit": 200})]
    tasks = srv.post("/task_runs/filter", {"flow_runs": {"id": {"any_": flow_ids}},
                                           "task_runs": {"name": {"like_": "score-shard"}}, "limit": 200})
    tasks = [t for t in tasks if t["name"].startswith("score-shard") and t["state_type"] == "COMPLETED"]
    wall = seconds(parent)
    scoring = sum(seconds(t) for t in tasks)
    slots = max(n_workers, 1)
    idle = slots * wall - scoring
    return {"label": f"{n_workers} worker{'s' if n_workers > 1 else ''}" if n_workers else "in one flow run",
            "workers": n_workers, "shards": len(tasks), "wall": wall, "scoring": scoring,
            "overhead_per_video": idle / args.videos, "overhead_share": idle / (slots * wall)}


def run_all(srv, tmp: Path, args) -> list[dict]:
    admin = admin_url(tmp)
    srv.cli("work-pool", "create", "vidqa", "--type", "process")
    srv.cli("--no-prompt", "deploy", "--prefect-file", "deployments/prefect.yaml", "--name", "score-shard",
            env=srv.client_env(VIDQA_PROJECT_DIR=str(REPO)))
    source = video_set(tmp / "videos", args.videos)
    return [measure(srv, admin, tmp, source, n, args) for n in [0, *map(int, args.workers.split(","))]]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--videos", type=int, default=200)
    ap.add_argument("--shard-size", type=int, default=50)
    ap.add_argument("--frames", type=int, default=16, help="technical scorer's sampled frames per video")
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "fan_out_cpu.md")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as t:
        (Path(t) / "prefect").mkdir()
        with running_prefect_server(Path(t) / "prefect") as srv:
            rows = run_all(srv, Path(t), args)

    base = rows[0]["wall"]
    one = next((r["wall"] for r in rows if r["workers"] == 1), None)
    # What the parent does with or without fan-out (list, prepare scorers, summarise, report):
    # the single flow run's overhead. The rest of a fanned-out run's overhead is per shard run.
    fixed = rows[0]["overhead_per_video"] * args.videos
    lines = [
        f"# Fan-out over local process workers ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)",
        "",
        f"{args.videos} videos (the shared sample videos, cycled), technical scorer at {args.frames} frames, "
        f"shards of {args.shard_size}; each worker runs one shard at a time. `python bench/bench_fan_out.py "
        f"--videos {args.videos} --shard-size {args.shard_size} --frames {args.frames} --workers {args.workers}`.",
        "",
        "| run | shards | wall s | scoring s | videos/s | vs one flow run | vs 1 worker | overhead s/video "
        "| overhead share | per shard run s | share of a shard |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        vs_one = f"{one / r['wall']:.2f}x" if one and r["workers"] else "-"
        per_shard = share = "-"
        if r["workers"]:
            cost = (r["overhead_per_video"] * args.videos - fixed) / r["shards"]
            per_shard, share = f"{cost:.1f}", f"{100 * cost / (cost + r['scoring'] / r['shards']):.1f}%"
        lines.append(f"| {r['label']} | {r['shards']} | {r['wall']:.1f} | {r['scoring']:.1f} | "
                     f"{args.videos / r['wall']:.2f} | {base / r['wall']:.2f}x | {vs_one} | "
                     f"{r['overhead_per_video']:.3f} | {100 * r['overhead_share']:.1f}% | {per_shard} | {share} |")
    lines += ["", "overhead = slots x wall - scoring (slots: workers, or 1 for the single flow run); "
              "scoring = sum of the score-shard task run times. per shard run = (overhead - the single "
              "flow run's overhead, which the parent pays with or without fan-out) / shards: process start, "
              "imports, pull steps, engine and API calls, worker polling; its share is of one shard's wall."]
    text = "\n".join(lines) + "\n"
    print(text)
    args.out.write_text(text)


if __name__ == "__main__":
    main()
