"""The review page's HTML: the player with the captions as a track, and the cue list beside it (words with their
times, speakers in colour, quality findings), every text escaped here (model output and edits are text, never
markup); api/static/review.js follows playback, seeks and saves edits."""

from __future__ import annotations

from html import escape
from typing import Any

from core.jobs.transcript import cues_of
from core.schema import Job

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2")


def _clock(seconds: float) -> str:
    minutes, rest = divmod(max(seconds, 0.0), 60)
    return f"{int(minutes):02d}:{rest:05.2f}"


def _player(kind: str, base: str) -> str:
    track = f'<track kind="captions" src="{base}/captions.vtt" label="Captions" default>'
    if kind == "image":
        return f'<img id="media" src="{base}/media" alt="the job\'s image">'
    tag = "video" if kind == "video" else "audio"
    return f'<{tag} id="media" controls preload="auto" src="{base}/media">{track}</{tag}>'


def review_html(job: Job, result: dict[str, Any], findings: list[dict[str, Any]], base: str, root: str) -> str:
    """The page of one job at its latest revision."""
    speakers = [s["label"] for s in result.get("speakers", [])]
    colour = {label: PALETTE[i % len(PALETTE)] for i, label in enumerate(speakers)}
    flags: dict[int, list[str]] = {}
    for finding in findings:
        flags.setdefault(finding["cue"], []).append(f"{finding['check'].replace('_', ' ')}: {finding['detail']}")
    items = []
    for index, cue in enumerate(cues_of(result)):
        if cue.words:
            words = " ".join(
                f'<span class="word" data-start="{w.start:.3f}" data-end="{w.end:.3f}">{escape(w.text)}</span>'
                for w in cue.words
            )
        else:
            words = escape(cue.text)
        who = ""
        if cue.speaker:
            style = f' style="color:{colour.get(cue.speaker, "#555")}"'
            who = f'<button class="speaker" data-label="{escape(cue.speaker)}"{style}>{escape(cue.speaker)}</button> '
        notes = "".join(f"<li>{escape(flag)}</li>" for flag in flags.get(index, []))
        items.append(
            f'<li class="cue{" flagged" if notes else ""}" data-index="{index}" data-start="{cue.start:.3f}" '
            f'data-end="{cue.end:.3f}"><span class="time">{_clock(cue.start)} – {_clock(cue.end)}</span> {who}'
            f'<span class="text">{words}</span> <button class="edit">Edit</button>'
            f"{f'<ul class=flags>{notes}</ul>' if notes else ''}</li>"
        )
    counts: dict[str, int] = {}
    for finding in findings:
        counts[finding["check"]] = counts.get(finding["check"], 0) + 1
    summary = ", ".join(f"{n} {check.replace('_', ' ')}" for check, n in sorted(counts.items())) or "no findings"
    approved = f"approved by {escape(job.approved_by or '')}" if job.approved_at else "not approved"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Review {escape(job.id)}</title><link rel="stylesheet" href="{root}/review-assets/review.css"></head>
<body data-base="{escape(base)}" data-revision="{job.revision}" data-approved="{1 if job.approved_at else 0}">
<header><h1>Review <code>{escape(job.id)}</code> · {escape(job.task)}</h1>
<p>revision <b id="revision">{job.revision}</b> · <span id="approval">{approved}</span> · quality: {escape(summary)}
 <button id="approve"{" disabled" if job.approved_at else ""}>Approve</button></p>
<p id="status" role="status"></p></header>
<main><section class="player">{_player(str(result.get("media_kind")), escape(base))}</section>
<ol id="cues">{"".join(items)}</ol></main>
<script src="{root}/review-assets/review.js"></script></body></html>"""
