"""SVG charts of values over time: well-formed whatever the names, points inside the plot, "no data" when empty."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

import pytest

from telemetry.charts import (
    MARGIN_BOTTOM,
    MARGIN_LEFT,
    MARGIN_RIGHT,
    MARGIN_TOP,
    Series,
    nice_ticks,
    time_chart_svg,
)

SVG = "{http://www.w3.org/2000/svg}"
T0 = datetime(2026, 11, 25, 19, 0, tzinfo=UTC)


def parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)


def points(root: ET.Element) -> list[tuple[float, float]]:
    return [(float(c.get("cx")), float(c.get("cy"))) for c in root.iter(f"{SVG}circle")]


def texts(root: ET.Element) -> list[str]:
    return ["".join(t.itertext()) for t in root.iter(f"{SVG}text")]


def test_every_point_is_drawn_inside_the_plot_area():
    series = [
        Series("duration", [(T0 + timedelta(minutes=i), v) for i, v in enumerate([3.0, 14.5, 0.2, 7.0])]),
        Series("other", [(T0 + timedelta(minutes=10), 120.0)]),
    ]
    root = parse(time_chart_svg(title="Render duration", series=series, y_label="s", width=600, height=300))
    drawn = points(root)
    assert len(drawn) == 5
    for x, y in drawn:
        assert MARGIN_LEFT <= x <= 600 - MARGIN_RIGHT
        assert MARGIN_TOP <= y <= 300 - MARGIN_BOTTOM
    xs = [x for x, _ in drawn[:4]]
    assert xs == sorted(xs) and xs[0] == MARGIN_LEFT  # the earliest point sits on the left edge
    assert drawn[4][0] == 600 - MARGIN_RIGHT  # the latest on the right edge


def test_larger_values_are_drawn_higher_and_the_axis_covers_them():
    series = [Series("vram", [(T0, 480.0), (T0 + timedelta(seconds=30), 9800.0)])]
    root = parse(time_chart_svg(title="VRAM", series=series, y_label="MiB"))
    (_, low), (_, high) = points(root)
    assert high < low  # SVG's y grows downwards
    labels = texts(root)
    assert "0" in labels and "10000" in labels
    assert "VRAM" in labels and "MiB" in labels and "vram (2)" in labels


def test_names_from_users_are_escaped_and_the_result_is_well_formed():
    hostile = "gpu <script>alert(\"x\")</script> & 'co' \x00\x1b"
    svg = time_chart_svg(
        title=f"Render duration, backend {hostile}",
        series=[Series(hostile, [(T0, 1.0), (T0 + timedelta(hours=1), 2.0)])],
        y_label=hostile,
    )
    root = parse(svg)  # raises on anything ill-formed
    assert "<script>" not in svg
    assert any("<script>" in text for text in texts(root))  # shown as text, not markup
    assert root.get("aria-label").startswith("Render duration, backend gpu <script>")


def test_an_empty_chart_says_no_data():
    for series in ([], [Series("duration", [])], [Series("a", []), Series("b", [])]):
        root = parse(time_chart_svg(title="Render duration", series=series, y_label="s"))
        assert "no data" in texts(root)
        assert points(root) == []


def test_a_single_point_and_equal_values_still_make_a_chart():
    root = parse(time_chart_svg(title="one", series=[Series("a", [(T0, 0.0)])], y_label="s"))
    ((x, y),) = points(root)
    assert math.isfinite(x) and math.isfinite(y)


def test_naive_and_aware_times_are_the_same_instant_in_utc():
    naive = T0.replace(tzinfo=None)
    series = [Series("a", [(naive, 1.0), (T0 + timedelta(minutes=1), 2.0)])]
    assert len(points(parse(time_chart_svg(title="t", series=series, y_label="s")))) == 2


@pytest.mark.parametrize(
    ("series", "message"),
    [
        ([Series("a", [(T0, float("nan"))])], "not a finite number"),
        ([Series("a", [(T0, "3")])], "not a finite number"),
        ([Series("a", [("yesterday", 3.0)])], "not a datetime"),
    ],
)
def test_bad_points_are_refused_with_the_series_named(series, message):
    with pytest.raises(ValueError, match=message) as error:
        time_chart_svg(title="t", series=series, y_label="s")
    assert "'a'" in str(error.value)


def test_a_chart_too_small_to_draw_is_refused():
    with pytest.raises(ValueError, match="at least"):
        time_chart_svg(title="t", series=[], y_label="s", width=10, height=10)


def test_ticks_are_round_and_cover_the_range():
    assert nice_ticks(0, 9800) == [0, 2000, 4000, 6000, 8000, 10000]
    assert nice_ticks(-300, 900) == [-500, 0, 500, 1000]
    ticks = nice_ticks(0, 0.3)
    assert ticks[0] == 0 and ticks[-1] >= 0.3 and all(len(str(t)) < 6 for t in ticks)
