"""Planning that streams (models.planning): a long file's segments are settled while its audio is still being
scanned, they are the segments a plan of the whole file gives, and a scan stopped part-way goes on from its stored
plan instead of from the start."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from models.chunking import coverage_gaps
from models.media import MediaLimits, probe
from models.planning import Planning
from models.segments import Plan, PlanScan, plan_file
from tests.support import long_speech, spy_scan_starts

SEGMENT_S = 40.0


@pytest.fixture(scope="module")
def eight_minutes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return long_speech(tmp_path_factory.mktemp("long"), 8.0)


def test_segments_settle_while_the_scan_goes_on_and_match_the_whole_files_plan(eight_minutes: Path) -> None:
    info, limits = probe(eight_minutes), MediaLimits()
    whole = plan_file(eight_minutes, info, SEGMENT_S, limits)
    assert whole.complete and whole.decoded
    with Planning(PlanScan(eight_minutes, info, SEGMENT_S, limits), SEGMENT_S) as planning:
        settled, complete_when_first = [], None
        for segment in planning.settled():
            if complete_when_first is None:
                complete_when_first = planning.complete
            settled.append(segment)
    assert complete_when_first is False, "the first segment was handed out before the scan had finished"
    assert [s.span for s in settled] == whole.segments(SEGMENT_S), "streamed segments are the whole plan's"
    assert [s.last for s in settled] == [False] * (len(settled) - 1) + [True]
    assert len(settled) >= 12 and planning.plan.to_json() == whole.to_json()


def test_a_scan_stopped_part_way_goes_on_from_its_stored_plan(
    eight_minutes: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    info, limits = probe(eight_minutes), MediaLimits()
    scan = PlanScan(eight_minutes, info, SEGMENT_S, limits)
    grown: list[Plan] = []
    for plan in scan.run(lambda: len(grown) >= 4):
        grown.append(plan)
    stored = scan.plan.to_json()
    assert stored["complete"] is False and 100 < stored["duration_s"] < 200, stored
    partial = Plan.from_json(stored)
    settled_before = partial.segments(SEGMENT_S)
    assert settled_before, "a partial plan already settles the first segments"

    starts = spy_scan_starts(monkeypatch)
    resumed = PlanScan(eight_minutes, info, SEGMENT_S, limits, partial)
    for _plan in resumed.run():
        pass
    assert starts == [partial.duration_s], "the resumed scan seeks to where the stored one stopped"
    final = resumed.plan
    assert final.complete and final.duration_s == pytest.approx(info.duration_s, abs=0.1)
    spans = final.segments(SEGMENT_S)
    assert spans[: len(settled_before)] == settled_before, "segments settled before the stop stay as they were"
    assert not coverage_gaps(spans, final.duration_s)
    assert all(b.start - a.end < 1e-6 for a, b in itertools.pairwise(spans))
