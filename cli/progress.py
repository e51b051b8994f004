"""Progress for long archive runs: a rich progress bar for people, JSON lines for machines."""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import asdict
from pathlib import Path
from types import TracebackType

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from core.archive.caption import FileOutcome
from core.archive.caption import Progress as RunProgress


class ProgressView:
    def __init__(self, as_json: bool, out: Console, err: Console) -> None:
        self.as_json, self.out, self.err = as_json, out, err
        self.started = time.monotonic()
        self.bar = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[detail]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=err,
            transient=False,
        )
        self.task_id = self.bar.add_task("captioning", total=None, detail="")

    def __enter__(self) -> ProgressView:
        if not self.as_json:
            self.bar.start()
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        if not self.as_json:
            self.bar.stop()

    def update(self, progress: RunProgress, outcome: FileOutcome | None) -> None:
        elapsed = max(time.monotonic() - self.started, 1e-6)
        finished = progress.done + progress.failed + progress.skipped
        if self.as_json:
            event = {"event": "file" if outcome else "start", **asdict(progress), "elapsed_s": round(elapsed, 3)}
            if outcome:
                event["file"] = asdict(outcome)
            print(json.dumps(event, ensure_ascii=False), flush=True)
            return
        rate = progress.media_seconds / elapsed
        detail = (
            f"done {progress.done} (reused {progress.reused}) failed {progress.failed} "
            f"skipped {progress.skipped} "
            f"media {progress.media_seconds / 3600:.2f} h ({rate:.1f}x real time)"
        )
        self.bar.update(self.task_id, total=progress.total, completed=finished, detail=detail)

    def summary(self, outcomes: list[FileOutcome], out_dir: Path) -> None:
        counts = Counter(o.state for o in outcomes)
        if self.as_json:
            print(json.dumps({"event": "summary", "counts": dict(counts), "manifest": str(out_dir / "manifest.jsonl")}))
            return
        table = Table("state", "files", title=f"caption run: {len(outcomes)} files")
        for state, count in sorted(counts.items()):
            table.add_row(state, str(count))
        self.err.print(table)
        for outcome in outcomes:
            if outcome.state in ("failed", "skipped") and outcome.error:
                self.err.print(f"  {outcome.state}: {outcome.path}: {outcome.error}")
        self.err.print(f"outputs in {out_dir}; manifest: {out_dir / 'manifest.jsonl'}")
