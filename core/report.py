"""What a run did and what it cost: a report of an archive run (report.html beside manifest.jsonl) or a batch
(GET /v1/batches/{id}/report), as JSON and as a self-contained HTML page (inline SVG charts, no external assets).

Figures: files and hours of media by outcome, failures by class with examples, languages, speakers, caption
quality findings by check, wall time,
engine seconds per hour of media, the realtime factor (media time over wall time), and the accelerator cost per
hour of media at OMNIMEDIA_ACCELERATOR_HOUR_COST (engine hours x price / media hours)."""

from __future__ import annotations

import html
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any

EXAMPLES_PER_CLASS = 3


@dataclass(frozen=True)
class ReportLine:
    """One file of the run."""

    name: str
    state: str  # succeeded | failed | skipped | canceled | ...
    media_s: float = 0.0
    engine_s: float = 0.0
    failure_class: str | None = None
    reason: str | None = None
    language: str | None = None
    speakers: int = 0
    quality: dict[str, int] | None = None  # the result's caption quality findings by check (core.quality)


def build_report(title: str, lines: list[ReportLine], wall_s: float, hour_cost: float | None) -> dict[str, Any]:
    by_state: dict[str, dict[str, float]] = defaultdict(lambda: {"files": 0, "media_hours": 0.0})
    for line in lines:
        by_state[line.state]["files"] += 1
        by_state[line.state]["media_hours"] += line.media_s / 3600
    failures: dict[str, dict[str, Any]] = {}
    for line in lines:
        if line.state in ("failed", "skipped", "rejected", "canceled") and (line.failure_class or line.reason):
            kind = line.failure_class or line.state
            entry = failures.setdefault(kind, {"files": 0, "examples": []})
            entry["files"] += 1
            if len(entry["examples"]) < EXAMPLES_PER_CLASS:
                entry["examples"].append({"file": line.name, "reason": line.reason})
    quality: Counter[str] = Counter()
    for line in lines:
        quality.update(line.quality or {})
    media_s = sum(line.media_s for line in lines if line.state == "succeeded")
    engine_s = sum(line.engine_s for line in lines)
    media_h = media_s / 3600
    cost = (engine_s / 3600) * hour_cost if hour_cost is not None else None
    return {
        "title": title,
        "files": len(lines),
        "media_hours": round(media_h, 4),
        "media_s": round(media_s, 3),
        "by_state": {
            state: {"files": int(v["files"]), "media_hours": round(v["media_hours"], 4)}
            for state, v in sorted(by_state.items())
        },
        "failures": failures,
        "languages": dict(Counter(line.language for line in lines if line.language).most_common()),
        "speakers": sum(line.speakers for line in lines),
        "quality": dict(sorted(quality.items())),  # caption findings to review, by check, over every file
        "wall_s": round(wall_s, 3),
        "engine_s": round(engine_s, 3),
        "engine_s_per_media_hour": round(engine_s / media_h, 1) if media_h else None,
        "realtime_factor": round(media_s / wall_s, 2) if wall_s > 0 else None,
        "accelerator_hour_cost": hour_cost,
        "cost": round(cost, 4) if cost is not None else None,
        "cost_per_media_hour": round(cost / media_h, 4) if cost is not None and media_h else None,
        "per_file": [
            {
                "name": line.name,
                "state": line.state,
                "media_s": round(line.media_s, 3),
                "engine_s": round(line.engine_s, 3),
            }
            for line in lines
        ],
    }


def bar_chart(title: str, values: list[tuple[str, float]], unit: str) -> str:
    """A horizontal bar chart as inline SVG (labels escaped)."""
    if not values:
        return f"<p>{html.escape(title)}: nothing to show.</p>"
    top = max(v for _, v in values) or 1.0
    row, width, label_w = 22, 360, 220
    parts = [
        f'<figure><figcaption>{html.escape(title)}</figcaption><svg role="img" width="{label_w + width + 90}" '
        f'height="{row * len(values) + 4}" xmlns="http://www.w3.org/2000/svg">'
    ]
    for index, (label, value) in enumerate(values):
        y = index * row
        bar = max(1.0, width * value / top)
        parts.append(
            f'<text x="0" y="{y + 15}" font-size="12">{html.escape(label[:34])}</text>'
            f'<rect x="{label_w}" y="{y + 3}" width="{bar:.1f}" height="{row - 8}" fill="#4a7fb5"/>'
            f'<text x="{label_w + bar + 6:.1f}" y="{y + 15}" font-size="12">{value:.3g} {unit}</text>'
        )
    parts.append("</svg></figure>")
    return "".join(parts)


def report_html(report: dict[str, Any]) -> str:
    """The report as one self-contained page."""
    esc = html.escape

    def cell(value: Any) -> str:
        return esc("—" if value is None else str(value))

    summary = [
        ("files", report["files"]),
        ("hours of media (succeeded)", report["media_hours"]),
        ("wall time (s)", report["wall_s"]),
        ("engine seconds per hour of media", report["engine_s_per_media_hour"]),
        ("realtime factor", report["realtime_factor"]),
        ("speakers found", report["speakers"]),
        ("caption findings to review", sum(report["quality"].values())),
        ("accelerator price per hour", report["accelerator_hour_cost"]),
        ("cost per hour of media", report["cost_per_media_hour"]),
    ]
    rows = "".join(f"<tr><th>{esc(k)}</th><td>{cell(v)}</td></tr>" for k, v in summary)
    states = "".join(
        f"<tr><td>{esc(s)}</td><td>{v['files']}</td><td>{v['media_hours']}</td></tr>"
        for s, v in report["by_state"].items()
    )
    failures = "".join(
        f"<tr><td>{esc(kind)}</td><td>{v['files']}</td><td>"
        + "<br>".join(f"{esc(e['file'])}: {esc(e['reason'] or '')}" for e in v["examples"])
        + "</td></tr>"
        for kind, v in report["failures"].items()
    )
    languages = ", ".join(f"{esc(k)} ({v})" for k, v in report["languages"].items()) or "none detected"
    charts = bar_chart("Hours of media by outcome", [(s, v["media_hours"]) for s, v in report["by_state"].items()], "h")
    slowest = sorted(report["per_file"], key=lambda f: -f["engine_s"])[:20]
    charts += bar_chart("Engine time per file (the 20 longest)", [(f["name"], f["engine_s"]) for f in slowest], "s")
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>" + esc(report["title"]) + "</title><style>"
        "body{font-family:sans-serif;margin:2em;max-width:60em}table{border-collapse:collapse;margin:1em 0}"
        "td,th{border:1px solid #ccc;padding:4px 10px;text-align:left}figure{margin:1.5em 0}</style></head><body>"
        f"<h1>{esc(report['title'])}</h1><table>{rows}</table>"
        f"<h2>Outcomes</h2><table><tr><th>state</th><th>files</th><th>hours of media</th></tr>{states}</table>"
        f"{charts}<h2>Failures</h2>"
        + (
            f"<table><tr><th>class</th><th>files</th><th>examples</th></tr>{failures}</table>"
            if failures
            else "<p>none</p>"
        )
        + f"<h2>Languages</h2><p>{languages}</p></body></html>"
    )
