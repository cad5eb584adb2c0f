"""Server-rendered SVG charts of values over time, for the admin's telemetry pages.

Pure Python (no Django). Public API:

    Series(name, points)          points: (datetime, number) pairs, in any order
    time_chart_svg(*, title, series, y_label, ...) -> str   one <svg> element

Every piece of text (the title, axis labels, series names, which come from users)
is escaped, and characters XML 1.0 cannot hold are dropped, so the result is
always well-formed XML that can be inlined into an HTML page. A chart whose
series hold no point at all says "no data" instead of drawing empty axes.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from xml.sax.saxutils import escape

# Colour-blind-safe (Okabe-Ito); series beyond the palette reuse it in order.
PALETTE = ("#0072b2", "#d55e00", "#009e73", "#cc79a7", "#e69f00", "#56b4e9")
MIN_WIDTH, MIN_HEIGHT = 240, 160
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 64, 20, 52, 44
Y_TICKS = 5
X_TICKS = 5
# XML 1.0 forbids most control characters even when escaped; a name holding one would break the page.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


@dataclass(frozen=True)
class Series:
    name: str
    points: Sequence[tuple[datetime, float]]


def _text(value: str) -> str:
    return escape(_NOT_XML.sub("", str(value)))


def _attr(value: str) -> str:
    return escape(_NOT_XML.sub("", str(value)), {'"': "&quot;", "'": "&#x27;"})


def _utc(moment: datetime) -> datetime:
    # Naive times are taken as UTC, the studio's storage zone.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _number(value: float) -> str:
    """Tick labels: short, without float noise (0.30000000000000004 → 0.3)."""
    if value == 0:
        return "0"
    return f"{value:.6g}" if abs(value) < 1e6 else f"{value:.3g}"


def nice_ticks(low: float, high: float, count: int = Y_TICKS) -> list[float]:
    """Round tick values (1, 2 or 5 times 10^k apart) covering [low, high]."""
    if not (math.isfinite(low) and math.isfinite(high)) or high < low:
        raise ValueError(f"ticks need a finite range with low ≤ high, got {low!r}..{high!r}")
    if high == low:
        high = low + 1
    raw = (high - low) / max(count, 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    first = math.floor(low / step)
    ticks = [round((first + i) * step, 10) for i in range(count * 3)]  # far more than needed
    last = next(i for i, tick in enumerate(ticks) if tick >= high)
    return ticks[: last + 1]


def _checked(series: Sequence[Series]) -> list[tuple[str, list[tuple[float, float]]]]:
    checked = []
    for one in series:
        points = []
        for moment, value in one.points:
            if not isinstance(moment, datetime):
                raise ValueError(f"series {one.name!r}: {moment!r} is not a datetime")
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise ValueError(f"series {one.name!r}: {value!r} is not a finite number")
            points.append((_utc(moment).timestamp(), float(value)))
        checked.append((one.name, sorted(points)))
    return checked


def _time_label(seconds: float, span: float) -> str:
    moment = datetime.fromtimestamp(seconds, UTC)
    return moment.strftime("%Y-%m-%d" if span > 3 * 86400 else "%m-%d %H:%M" if span > 600 else "%H:%M:%S")


def time_chart_svg(
    *,
    title: str,
    series: Sequence[Series],
    y_label: str,
    x_label: str = "time (UTC)",
    width: int = 720,
    height: int = 280,
    lines: bool = True,
) -> str:
    """One chart: every series as points (joined by lines when `lines`), time across, values up."""
    if width < MIN_WIDTH or height < MIN_HEIGHT:
        raise ValueError(f"a chart needs at least {MIN_WIDTH}x{MIN_HEIGHT} pixels, got {width}x{height}")
    data = _checked(series)
    left, right = MARGIN_LEFT, width - MARGIN_RIGHT
    top, bottom = MARGIN_TOP, height - MARGIN_BOTTOM
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="telemetry-chart" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" role="img" aria-label="{_attr(title)}" '
        'font-family="sans-serif" font-size="11">',
        f"<title>{_text(title)}</title>",
        f'<text x="{width / 2:.1f}" y="18" text-anchor="middle" font-size="14" '
        f'font-weight="bold">{_text(title)}</text>',
        f'<rect x="{left}" y="{top}" width="{right - left}" height="{bottom - top}" '
        'fill="none" stroke="#999"/>',
    ]
    every = [point for _, points in data for point in points]
    if not every:
        parts.append(
            f'<text class="no-data" x="{(left + right) / 2:.1f}" y="{(top + bottom) / 2:.1f}" '
            'text-anchor="middle" fill="#666" font-size="13">no data</text>'
        )
        parts.append("</svg>")
        return "".join(parts)

    t_low, t_high = min(t for t, _ in every), max(t for t, _ in every)
    if t_high == t_low:  # one moment: centre it in a minute either side
        t_low, t_high = t_low - 60, t_high + 60
    ticks = nice_ticks(min(0.0, min(v for _, v in every)), max(0.0, max(v for _, v in every)))
    v_low, v_high = ticks[0], ticks[-1]

    def x_of(seconds: float) -> float:
        return left + (seconds - t_low) / (t_high - t_low) * (right - left)

    def y_of(value: float) -> float:
        return bottom - (value - v_low) / (v_high - v_low) * (bottom - top)

    for tick in ticks:
        y = y_of(tick)
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{right}" y2="{y:.1f}" stroke="#eee"/>')
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{_number(tick)}</text>')
    span = t_high - t_low
    for i in range(X_TICKS):
        seconds = t_low + span * i / (X_TICKS - 1)
        x = x_of(seconds)
        anchor = "start" if i == 0 else "end" if i == X_TICKS - 1 else "middle"
        parts.append(f'<line x1="{x:.1f}" y1="{bottom}" x2="{x:.1f}" y2="{bottom + 4}" stroke="#999"/>')
        parts.append(
            f'<text x="{x:.1f}" y="{bottom + 16}" text-anchor="{anchor}">{_time_label(seconds, span)}</text>'
        )
    parts.append(
        f'<text x="{(left + right) / 2:.1f}" y="{height - 6}" text-anchor="middle" '
        f'fill="#444">{_text(x_label)}</text>'
    )
    parts.append(
        f'<text x="14" y="{(top + bottom) / 2:.1f}" text-anchor="middle" fill="#444" '
        f'transform="rotate(-90 14 {(top + bottom) / 2:.1f})">{_text(y_label)}</text>'
    )

    legend_x = left
    for index, (name, points) in enumerate(data):
        colour = PALETTE[index % len(PALETTE)]
        label = f"{name} ({len(points)})"
        parts.append(f'<rect x="{legend_x}" y="30" width="10" height="10" fill="{colour}"/>')
        parts.append(f'<text x="{legend_x + 14}" y="39">{_text(label)}</text>')
        legend_x += 24 + 7 * len(label)
        if lines and len(points) > 1:
            path = " ".join(f"{x_of(t):.1f},{y_of(v):.1f}" for t, v in points)
            parts.append(
                f'<polyline class="series" fill="none" stroke="{colour}" stroke-width="1.5" points="{path}"/>'
            )
        for t, v in points:
            when = datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%S")
            parts.append(
                f'<circle class="point" cx="{x_of(t):.1f}" cy="{y_of(v):.1f}" r="3" fill="{colour}">'
                f"<title>{_text(f'{name}: {_number(v)} at {when} UTC')}</title></circle>"
            )
    parts.append("</svg>")
    return "".join(parts)
