"""`omnimedia caption --server URL`: the same archive run, sent to a running service over HTTP.

Unique contents are uploaded once and submitted as jobs; the job id of each (sha256, task, params) is kept in
OUT/.omnimedia-remote.json as soon as it exists, so a rerun after a stop resubmits nothing that was accepted."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import httpx

from core.archive.caption import (
    CaptionOptions,
    FileOutcome,
    Progress,
    ProgressCallback,
    group_by_content,
    write_manifest,
    write_sidecar,
)
from core.archive.walk import ArchiveEntry
from core.states import FINAL_JOB_STATES, JobState

FINAL = {state.value for state in FINAL_JOB_STATES}


class RemoteCaptionRun:
    def __init__(
        self,
        server: str,
        api_key: str | None,
        options: CaptionOptions,
        on_progress: ProgressCallback | None = None,
        client: httpx.Client | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.client = client or httpx.Client(base_url=server.rstrip("/"), headers=headers, timeout=120)
        self.options = options
        self.on_progress = on_progress or (lambda _p, _o: None)
        self.progress = Progress()
        self.state_path = options.out_dir / ".omnimedia-remote.json"
        params_key = json.dumps(options.params, sort_keys=True)
        self.key_suffix = f"|{options.task}|{params_key}"

    def _load_state(self) -> dict[str, str]:
        return dict(json.loads(self.state_path.read_text())) if self.state_path.is_file() else {}

    def _save_state(self, state: dict[str, str]) -> None:
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.state_path.with_suffix(".part")
        tmp.write_text(json.dumps(state, indent=1))
        os.replace(tmp, self.state_path)

    def _submit(self, entry: ArchiveEntry) -> str:
        with entry.path.open("rb") as fh:
            upload = self.client.post("/v1/uploads", files={"file": (Path(entry.rel).name, fh)})
        if upload.status_code != 201:
            raise RuntimeError(f"upload of {entry.rel} refused: {upload.text[:300]}")
        body = {"task": self.options.task, "input": upload.json()["id"], "params": self.options.params}
        job = self.client.post("/v1/jobs", json=body)
        if job.status_code != 202:
            raise RuntimeError(f"job for {entry.rel} refused: {job.text[:300]}")
        return str(job.json()["id"])

    def run(self, source: Path) -> list[FileOutcome]:
        by_sha, outcomes = group_by_content(source, self.options.include_hidden)
        self.progress.total = len(outcomes) + sum(len(v) for v in by_sha.values())
        self.progress.skipped = len(outcomes)
        state = self._load_state()
        for sha, entries in by_sha.items():
            if sha + self.key_suffix not in state:
                state[sha + self.key_suffix] = self._submit(entries[0])
                self._save_state(state)
        pending = {sha: state[sha + self.key_suffix] for sha in by_sha}
        while pending:
            for sha, job_id in list(pending.items()):
                job = self.client.get(f"/v1/jobs/{job_id}").json()
                if job["state"] in FINAL:
                    outcomes += self._export(sha, by_sha[sha], job)
                    del pending[sha]
            if pending:
                time.sleep(1.0)
        write_manifest(self.options.out_dir, outcomes)
        return outcomes

    def _track_files(self, entry: ArchiveEntry, language: str, track_id: str) -> list[str]:
        """A translated track's SRT and VTT as NAME.<lang>.*, once its job is done (none if it failed)."""
        while (track := self.client.get(f"/v1/jobs/{track_id}").json())["state"] not in FINAL:
            time.sleep(1.0)
        if track["state"] != JobState.SUCCEEDED:
            return []
        written = []
        for fmt in (f for f in self.options.formats if f in ("srt", "vtt")):
            body = self.client.get(f"/v1/jobs/{track_id}/result", params={"format": fmt}).content
            written.append(write_sidecar(self.options.out_dir, entry.rel, f"{language}.{fmt}", body))
        return written

    def _export(self, sha: str, entries: list[ArchiveEntry], job: dict[str, Any]) -> list[FileOutcome]:
        results = []
        for position, entry in enumerate(entries):
            outcome = FileOutcome(
                entry.rel, sha, job["state"], job.get("media_seconds"), job_id=job["id"], reused=position > 0
            )
            if job["state"] == JobState.SUCCEEDED:
                result = self.client.get(f"/v1/jobs/{job['id']}/result", params={"format": "json"}).json()
                for fmt in self.options.formats:
                    if fmt in job["result_formats"]:
                        body = self.client.get(f"/v1/jobs/{job['id']}/result", params={"format": fmt}).content
                        name = "descriptions.vtt" if fmt == "vtt" and result.get("audio_description") else fmt
                        outcome.outputs.append(write_sidecar(self.options.out_dir, entry.rel, name, body))
                for language, track_id in (result.get("subtitle_tracks") or {}).items():
                    outcome.outputs += self._track_files(entry, language, track_id)
                self.progress.done += 1
                self.progress.media_seconds += job.get("media_seconds") or 0.0
            else:
                outcome.error = job.get("failure_reason") or job["state"]
                self.progress.failed += 1
            results.append(outcome)
            self.on_progress(self.progress, outcome)
        return results
