"""Generation jobs: run in a worker thread, report steps done, can be cancelled.
At most ``max_running`` at once per process; more is refused (HTTP 429)."""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable

from imagegen import BusyError


@dataclass
class Job:
    id: str
    status: str = "queued"  # queued, running, done, failed, cancelled
    steps_done: int = 0
    steps_total: int = 0
    result: Any = None
    error: dict[str, Any] | None = None
    created: float = field(default_factory=time.time)
    cancel: threading.Event = field(default_factory=threading.Event)
    finished: threading.Event = field(default_factory=threading.Event)

    def to_dict(self) -> dict[str, Any]:
        out = {"id": self.id, "status": self.status, "steps_done": self.steps_done, "steps_total": self.steps_total}
        if self.error:
            out["error"] = self.error
        if self.result is not None:
            out["result"] = self.result
        return out


class Jobs:
    def __init__(self, max_running: int = 1, keep: int = 100) -> None:
        self.max_running = max_running
        self.keep = keep
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()

    def running(self) -> int:
        return sum(1 for j in self._jobs.values() if j.status in ("queued", "running"))

    def submit(self, work: Callable[[Job], Any], describe_error: Callable[[BaseException], dict[str, Any]]) -> Job:
        with self._lock:
            if self.running() >= self.max_running:
                raise BusyError(f"{self.running()} generation(s) already running (limit {self.max_running}); try again shortly")
            job = Job(uuid.uuid4().hex[:16])
            self._jobs[job.id] = job
            for old in sorted(self._jobs.values(), key=lambda j: j.created)[: max(0, len(self._jobs) - self.keep)]:
                if old.finished.is_set():
                    del self._jobs[old.id]

        def run() -> None:
            job.status = "running"
            try:
                job.result = work(job)
                job.status = "cancelled" if job.cancel.is_set() else "done"
            except BaseException as exc:  # noqa: BLE001 - reported through the job
                job.status = "cancelled" if job.cancel.is_set() else "failed"
                job.error = describe_error(exc)
            finally:
                job.finished.set()

        threading.Thread(target=run, name=f"job-{job.id}", daemon=True).start()
        return job

    def get(self, job_id: str) -> Job:
        job = self._jobs.get(job_id)
        if job is None:
            raise LookupError(f"no job with id {job_id!r}")
        return job
