"""Task runners chosen by configuration, and the resources GPU shards request from them.

``VIDQA_TASK_RUNNER=thread`` (default) runs a flow's shard tasks on a bounded thread pool in
the flow's process (``VIDQA_TASK_RUNNER_WORKERS`` threads); ``dask`` runs them on a Dask
cluster: an existing one at ``VIDQA_DASK_ADDRESS``, else a temporary local one. Models stay
resident in each Dask worker process, so a worker loads a scorer's model once, not per shard.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from typing import Optional

from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner

from vidqa.config import Settings, get_settings


def task_runner(settings: Optional[Settings] = None) -> TaskRunner:
    s = settings or get_settings()
    if s.task_runner == "dask":
        try:
            from prefect_dask import DaskTaskRunner
        except ImportError as exc:  # an optional extra
            raise RuntimeError(
                "VIDQA_TASK_RUNNER=dask needs prefect-dask on the worker: pip install 'vidqa[dask]'"
            ) from exc
        if s.dask_address:
            return DaskTaskRunner(address=s.dask_address)
        # One thread per worker process: scorers run their own threads (torch, ffmpeg).
        return DaskTaskRunner(cluster_kwargs={"n_workers": s.task_runner_workers, "threads_per_worker": 1,
                                              "processes": True})
    return ThreadPoolTaskRunner(max_workers=s.task_runner_workers)


def gpu_request(gpus: float, settings: Optional[Settings] = None) -> AbstractContextManager:
    """The context to submit a shard task in: on an existing Dask cluster, a shard of GPU
    scorers requests ``gpus`` of the workers' GPU resource, so the scheduler places it only
    on a worker that declared one and never runs more shards than a GPU can take. (A
    temporary local cluster declares no resources; a thread runner has none to request.)"""
    s = settings or get_settings()
    if s.task_runner != "dask" or not s.dask_address or gpus <= 0:
        return nullcontext()
    import dask

    return dask.annotate(resources={s.dask_gpu_resource: gpus})
