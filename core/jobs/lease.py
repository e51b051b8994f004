"""A running job's lease: a heartbeat thread keeps it fresh while a long segment runs, and knows when the run no
longer holds it (another worker took the job over, or no renewal has succeeded for a whole lease because the
database is unreachable), so the run stops at its next boundary and writes nothing final."""

from __future__ import annotations

import logging
import threading
import time

from sqlalchemy.orm import Session, sessionmaker

from core.jobs import machine

log = logging.getLogger(__name__)


class Heartbeat:
    def __init__(self, sessions: sessionmaker[Session], job_id: str, worker: str, lease_s: float) -> None:
        self._stop = threading.Event()
        self._lease_s = lease_s
        self._renewed = time.monotonic()
        self._taken = False
        every_s = max(lease_s / 3, 0.5)
        self._thread = threading.Thread(
            target=self._beat, args=(sessions, job_id, worker, every_s), daemon=True, name=f"heartbeat-{job_id}"
        )

    @property
    def lost(self) -> bool:
        return self._taken or time.monotonic() - self._renewed > self._lease_s

    def renewed(self) -> None:
        """A write of this run's that proved it still holds the job (a segment's commit) counts as a beat."""
        self._renewed = time.monotonic()

    def _beat(self, sessions: sessionmaker[Session], job_id: str, worker: str, every_s: float) -> None:
        while not self._stop.wait(every_s):
            try:
                with sessions() as session:
                    if machine.heartbeat(session, job_id, worker):
                        self._renewed = time.monotonic()
                    else:
                        self._taken = True
            except Exception:  # a missed beat shortens the lease; a lease that runs out stops the run
                log.warning("heartbeat failed for job %s", job_id, exc_info=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
