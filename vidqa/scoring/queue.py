"""Clips waiting for each scorer, scored a batch at a time (frames of many videos in one
encoder batch) and written to the ledger."""

from __future__ import annotations

import logging
import threading
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Optional

from sqlalchemy.engine import Engine

from vidqa.db import repository as repo
from vidqa.errors import ScorerError
from vidqa.scorers import Metric, ScoreItem, Scorer
from vidqa.scoring.embeddings import store_clip_embedding
from vidqa.scoring.ledger import Pending
from vidqa.scoring.outcomes import VideoOutcome
from vidqa.scoring.provenance import config_summary

log = logging.getLogger(__name__)

# Clips handed to each scorer's ``score`` in this process: what "computed nothing" means.
SCORER_CALLS: Counter[str] = Counter()


@dataclass
class Job:
    outcome: VideoOutcome
    clip_id: int
    item: ScoreItem
    pending: Pending


class ScoreQueue:
    """Clips waiting for each scorer; scored a batch at a time and written to the ledger.
    A scorer's models load when its first batch is due, so a shard with nothing left to
    score loads none.

    ``score_on_submit`` scores a full batch in the thread that submits its last clip. Off,
    ``submit`` only queues (decode threads call it) and the scoring thread calls
    :meth:`score_full`: models are used from one thread only."""

    def __init__(self, engine: Engine, run_id: Optional[uuid.UUID], score_on_submit: bool = True):
        self.engine = engine
        self.run_id = run_id
        self.score_on_submit = score_on_submit
        self.jobs: dict[tuple[str, str], list[Job]] = defaultdict(list)
        self.scorers: dict[tuple[str, str], Scorer] = {}
        self._lock = threading.Lock()

    def submit(self, job: Job) -> None:
        scorer = job.pending.scorer
        key = (scorer.name, scorer.config_hash)
        with self._lock:
            self.scorers[key] = scorer
            self.jobs[key].append(job)
            job.outcome.scorers_run.append(scorer.name)
            full = len(self.jobs[key]) >= scorer.queue_size
        if full and self.score_on_submit:
            self._flush(key)

    def score_full(self) -> None:
        """Score every batch that is full."""
        with self._lock:
            full = [k for k, jobs in self.jobs.items() if len(jobs) >= self.scorers[k].queue_size]
        for key in full:
            self._flush(key, self.scorers[key].queue_size)

    def fail(self, clip_id: int, pending: Pending, reason: str) -> None:
        with self.engine.begin() as conn:
            self._register(conn, pending)
            repo.write_scorer_failure(conn, clip_id, pending.scorer.name, pending.scorer.config_hash, reason,
                                      self.run_id, pending.input_hash)

    def flush(self) -> None:
        with self._lock:
            keys = list(self.jobs)
        for key in keys:
            self._flush(key)

    def _flush(self, key: tuple[str, str], limit: Optional[int] = None) -> None:
        with self._lock:
            queued = self.jobs.get(key, [])
            jobs = queued[:limit] if limit else list(queued)
            del queued[:len(jobs)]
            if not queued:
                self.jobs.pop(key, None)
            scorer = self.scorers.get(key)
        if not jobs:
            return
        # Not inside the try below: a model that does not load fails the shard (to be retried),
        # it is not every clip's recorded failure.
        scorer.setup()
        SCORER_CALLS[scorer.name] += len(jobs)
        try:
            results = scorer.score([j.item for j in jobs])
        except Exception as exc:
            log.exception("%s failed on a batch of %d", scorer.name, len(jobs))
            # One bad clip must not sink its batch: score each alone to find it.
            results = [exc] if len(jobs) == 1 else [self._score_one(scorer, j.item) for j in jobs]
        for job, result in zip(jobs, results, strict=True):
            self._write(job, result)

    @staticmethod
    def _score_one(scorer: Scorer, item: ScoreItem):
        try:
            (result,) = scorer.score([item])
            return result
        except Exception as exc:
            return exc

    def _register(self, conn, pending: Pending) -> None:
        s = pending.scorer
        repo.register_scorer_config(conn, s.name, s.config_hash, s.identity_record,
                                    config_summary(s.config_hash, s.identity_record))
        repo.register_inputs(conn, pending.input_hash, pending.inputs)

    def _write(self, job: Job, result: dict[str, Metric] | Exception) -> None:
        p = job.pending
        with self.engine.begin() as conn:
            self._register(conn, p)
            if isinstance(result, Exception):
                reason = str(result) if isinstance(result, ScorerError) else f"{type(result).__name__}: {result}"
                repo.write_scorer_failure(conn, job.clip_id, p.scorer.name, p.scorer.config_hash, reason,
                                          self.run_id, p.input_hash)
                return
            frame_info = job.item.frames.summary()
            job.outcome.capped_scores += bool(job.item.frames.capped)
            values = {metric: (m.value, {**frame_info, **(m.details or {})}) for metric, m in result.items()}
            job.outcome.scores_written += repo.write_scores(
                conn, job.clip_id, p.scorer.name, p.scorer.config_hash, values, self.run_id, p.input_hash
            )
            store_clip_embedding(conn, job.clip_id, p.scorer, job.item.frames, self.run_id)
