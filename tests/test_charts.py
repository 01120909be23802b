"""The SVG charts (mdmportal/charts.py) alone: what they draw for given values, escaped and accessible."""
import re

from mdmportal import charts


def test_bars_are_proportional_and_labelled():
    svg = charts.bars("k", "Devices by kind", [("PC", 10), ("HoloLens <2>", 5)])
    assert svg.startswith('<svg xmlns="http://www.w3.org/2000/svg" class="chart chart-bars"')
    assert 'role="img" aria-labelledby="k-title k-desc"' in svg
    assert '<title id="k-title">Devices by kind</title><desc id="k-desc">PC: 10; HoloLens &lt;2&gt;: 5</desc>' in svg
    widths = [float(w) for w in re.findall(r'<rect class="bar" x="\d+" y="\d+" width="([\d.]+)"', svg)]
    assert widths[0] == 2 * widths[1] > 0
    assert ">HoloLens &lt;2&gt;</text>" in svg and "style=" not in svg


def test_empty_charts_say_so():
    assert "No data yet" in charts.bars("k", "Nothing", [])
    svg = charts.columns("c", "Per day", [("1 Dec.", 0), ("2 Dec.", 0)])
    assert svg.count('<rect class="bar"') == 2 and 'height="0"' in svg


def test_columns_label_every_week_and_the_last_day_without_crowding():
    rows = [(f"d{i}", i) for i in range(30)]
    svg = charts.columns("c", "Per day", rows)
    labels = re.findall(r'<text class="tick" x="[\d.]+" y="192" text-anchor="middle">(d\d+)</text>', svg)
    assert labels == ["d0", "d7", "d14", "d21", "d29"]  # not d28, next to d29
