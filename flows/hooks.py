"""State hooks of the flows that open a run: whatever ends the flow run (an error, a
cancellation, a crash), its run row is closed with the reason."""

from __future__ import annotations

from vidqa.scoring import runs


def close_open_runs(flow, flow_run, state) -> None:
    runs.close_flow_run(str(flow_run.id), state.name, state.message)


RUN_HOOKS = dict(on_failure=[close_open_runs], on_cancellation=[close_open_runs], on_crashed=[close_open_runs])
