"""The overview's per-day charts as geometry for server-rendered SVG
(app/templates/admin/overview.html): the deployment is offline and the page's CSP allows
no inline script, so the bars are drawn here, not by a JavaScript chart library. One
stacked bar per day (what became of the day's messages) and one bar per day for the p95
reply time; every number a bar stands for is in its tooltip and in the table beside it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from math import floor, log10
from typing import Any

#: The stacked series, bottom up: the overview's outcomes, then everything else.
SERIES = (
    ("faq", "问答原文", "#2e7d32"),
    ("generated", "模型回答", "#1565c0"),
    ("refused", "未能回答", "#ef6c00"),
    ("handed_off", "转人工", "#6a1b9a"),
    ("failed", "失败", "#c62828"),
    ("other", "其他（固定回复、限流、处理中）", "#9e9e9e"),
)
P95_COLOUR = "#00897b"
WIDTH, HEIGHT = 760, 200
LEFT, RIGHT, TOP, BOTTOM = 48, 8, 10, 24


@dataclass(frozen=True)
class Segment:
    key: str
    name: str
    colour: str
    count: int
    y: float
    height: float


@dataclass(frozen=True)
class Bar:
    day: str
    x: float
    width: float
    value: float
    y: float
    height: float
    title: str
    segments: list[Segment] = field(default_factory=list)


@dataclass(frozen=True)
class Chart:
    """What the template draws: bars, horizontal grid lines with their labels, and the
    day labels under the bars (every day of a week, every fifth of a month)."""

    width: int
    height: int
    left: int
    bottom_y: float
    bars: list[Bar]
    ticks: list[tuple[float, str]]
    labels: list[tuple[float, str]]


def nice_max(value: float) -> float:
    """The top of the scale: ``value`` rounded up to 1, 2 or 5 times a power of ten."""
    if value <= 0:
        return 1
    power = 10 ** floor(log10(value))
    for step in (1, 2, 5, 10):
        if value <= step * power:
            return step * power
    return 10 * power


def _frame(days: Sequence[dict[str, Any]], top: float) -> tuple[float, float, Any]:
    """Each day's slot and bar width, and the y of a value on a scale up to ``top``."""
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / max(len(days), 1)

    def y_of(v: float) -> float:
        return TOP + plot_h - plot_h * v / top

    return slot, slot * 0.7, y_of


def _labels(days: Sequence[dict[str, Any]], slot: float) -> list[tuple[float, str]]:
    every = 1 if len(days) <= 10 else 5
    last = len(days) - 1
    return [
        (LEFT + slot * (i + 0.5), d["day"][5:])  # MM-DD
        for i, d in enumerate(days)
        if (last - i) % every == 0
    ]


def _ticks(top: float, y_of: Any, unit: str = "") -> list[tuple[float, str]]:
    return [(y_of(v), f"{v:g}{unit}") for v in (0, top / 2, top)]


def outcomes_chart(days: Sequence[dict[str, Any]]) -> Chart:
    """The stacked bars of the days of a summary (``overview.summary()["per_day"]``)."""
    top = nice_max(max((d["messages"] for d in days), default=0))
    slot, width, y_of = _frame(days, top)
    bars = []
    for i, d in enumerate(days):
        counts = {key: d[key] for key, _n, _c in SERIES[:-1]}
        counts["other"] = d["messages"] - sum(counts.values())
        segments, below = [], 0
        for key, name, colour in SERIES:
            n = counts[key]
            if n > 0:
                segments.append(
                    Segment(key, name, colour, n, y_of(below + n), y_of(below) - y_of(below + n))
                )
            below += n
        parts = "，".join(f"{name} {counts[key]}" for key, name, _c in SERIES if counts[key])
        title = f"{d['day']}：消息 {d['messages']}" + (f"（{parts}）" if parts else "")
        x = LEFT + slot * i + (slot - width) / 2
        bars.append(
            Bar(
                d["day"],
                x,
                width,
                d["messages"],
                y_of(below),
                y_of(0) - y_of(below),
                title,
                segments,
            )
        )
    return Chart(WIDTH, HEIGHT, LEFT, y_of(0), bars, _ticks(top, y_of), _labels(days, slot))


def p95_chart(days: Sequence[dict[str, Any]]) -> Chart:
    """One bar per day: the p95 reply time in seconds (no bar for a day without replies)."""
    seconds = [(d["p95_reply_ms"] or 0) / 1000 for d in days]
    top = nice_max(max(seconds, default=0))
    slot, width, y_of = _frame(days, top)
    bars = []
    for i, (d, s) in enumerate(zip(days, seconds, strict=True)):
        if d["p95_reply_ms"] is None:
            continue
        title = f"{d['day']}：95% 的回复在 {s:.1f} 秒内发出（{d['reply_sent']} 条消息）"
        x = LEFT + slot * i + (slot - width) / 2
        bars.append(Bar(d["day"], x, width, s, y_of(s), y_of(0) - y_of(s), title))
    return Chart(WIDTH, HEIGHT, LEFT, y_of(0), bars, _ticks(top, y_of, " 秒"), _labels(days, slot))
