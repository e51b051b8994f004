"""Faults are normal: the fault run of tests/faults.py at about 200 jobs, asserted."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.faults import run_fault_run
from tests.support import SeaweedS3

pytestmark = pytest.mark.slow


def test_no_job_output_or_webhook_is_lost_or_lands_twice_under_faults(
    tmp_path: Path, tiny_model: Path, s3: SeaweedS3, media: dict[str, Path]
) -> None:
    """Two job-worker SIGKILLs, one of the webhooks worker, one of the API, Redis kill -9 without persistence and
    a Postgres crash restart while 200 jobs run: every job finishes once, its outputs come from the run that
    committed, every Idempotency-Key names exactly one job, every final event arrives once (by webhook-id),
    signed, within 2 minutes of the last fault, and the jobs whose messages Redis lost are sent again within a
    minute of it coming back."""
    report = run_fault_run(tmp_path, tiny_model, s3, media["image_png"], jobs=200)
    print("\n".join(report.faults) + "\n" + report.line())
    assert len(report.faults) == 6
    assert report.accepted == 200 and report.lost == 0, report.line()
    assert report.failed == 0 and report.double_landed == 0, report.line()
    assert report.keys_bound_wrong == 0, report.line()
    assert report.delivered == 200 and report.duplicate_deliveries == 0 and report.unverified == 0, report.line()
    assert report.last_fault_to_last_delivery_s <= 120, report.line()
    assert report.broker_recovery_s <= 60, report.line()  # the lost messages are re-sent within a minute
