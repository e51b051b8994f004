"""Planning that streams: a file's audio is scanned for pauses on a thread of its own while the engine works on
the segments already settled, so the first segment of a long file reaches the engine seconds after the job starts,
and the plan (stored with each finished segment) lets a resumed job skip what was planned and done."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass

from models.chunking import Span
from models.segments import PlanScan


@dataclass(frozen=True)
class Settled:
    """A segment whose span no later scanning can change."""

    index: int
    span: Span
    last: bool  # the plan is complete and this is its final segment


class Planning:
    """The plan of one file as it grows: `spans` (settled so far, never changed once there), `plan` (the latest,
    to store), and `settled()`, which yields segments as the scan settles them. `close()` stops the scan."""

    def __init__(self, scan: PlanScan, segment_s: float) -> None:
        self.segment_s = segment_s
        self._scan = scan
        self._changed = threading.Condition()
        self._stop = False
        self._error: BaseException | None = None
        self.plan = scan.plan
        self.spans: list[Span] = scan.plan.segments(segment_s)
        self._thread: threading.Thread | None = None
        if not self.plan.complete:
            self._thread = threading.Thread(target=self._run, name="omnimedia-planning", daemon=True)
            self._thread.start()

    @property
    def complete(self) -> bool:
        return self.plan.complete

    def _run(self) -> None:
        try:
            for plan in self._scan.run(lambda: self._stop):
                spans = plan.segments(self.segment_s)
                with self._changed:
                    self.plan, self.spans = plan, spans
                    self._changed.notify_all()
        except BaseException as exc:  # handed to the consumer, which fails the job with it
            with self._changed:
                self._error = exc
                self._changed.notify_all()

    def settled(self) -> Iterator[Settled]:
        """Each segment once its span is settled, in order (waits for the scan; raises what the scan raised)."""
        index = 0
        while True:
            with self._changed:
                while index >= len(self.spans) and not self.plan.complete and self._error is None:
                    self._changed.wait()
                if index < len(self.spans):
                    span, last = self.spans[index], self.plan.complete and index == len(self.spans) - 1
                elif self._error is not None:
                    raise self._error
                else:
                    return
            yield Settled(index, span, last)
            index += 1

    def close(self) -> None:
        with self._changed:
            self._stop = True
        if self._thread is not None:
            self._thread.join(timeout=30)

    def __enter__(self) -> Planning:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
