"""Charts drawn on the server as inline SVG: no script, so they work under the console's strict
Content-Security-Policy (mdmportal/csp.py), and no JavaScript charting library to ship and update.

Each chart is an <svg role="img"> named by its <title> and described by a <desc> that reads out every
value (WAI-ARIA Graphics Module: the `img` role, named by title, described by desc), with its labels
and values drawn as text too. Colours and type sizes come from classes in static/css/console.css:
the CSP refuses style attributes, not SVG presentation attributes such as x, width or text-anchor.
"""
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe
from django.utils.translation import gettext as _

WIDTH = 640


def _frame(key, title, desc, height, body, css_class):
    return format_html(
        '<svg xmlns="http://www.w3.org/2000/svg" class="chart {}" viewBox="0 0 {} {}" role="img" '
        'aria-labelledby="{}-title {}-desc"><title id="{}-title">{}</title><desc id="{}-desc">{}</desc>{}</svg>',
        css_class, WIDTH, height, key, key, key, title, key, desc, body)


def _describe(rows):
    return _("; ").join(f"{label}: {value}" for label, value in rows)


def columns(key, title, rows, *, every=7):
    """A column per (label, value) in order (a time series), the label written under every `every`-th
    column and the last; the highest value marked on the axis. `key` prefixes the ids of the chart's
    title and description, unique on the page."""
    left, top, bottom, height = 40, 16, 28, 200
    plot_h = height - top - bottom
    peak = max((value for _label, value in rows), default=0)
    scale = plot_h / peak if peak else 0
    step = (WIDTH - left - 8) / max(len(rows), 1)
    parts = [format_html('<line class="axis" x1="{}" y1="{}" x2="{}" y2="{}"/>', left, top + plot_h, WIDTH - 8,
                         top + plot_h),
             format_html('<text class="tick" x="{}" y="{}" text-anchor="end">{}</text>', left - 6, top + 4, peak),
             format_html('<text class="tick" x="{}" y="{}" text-anchor="end">0</text>', left - 6, top + plot_h)]
    for i, (label, value) in enumerate(rows):
        bar_h = round(value * scale, 1)
        x = round(left + i * step + 1, 1)
        parts.append(format_html('<rect class="bar" x="{}" y="{}" width="{}" height="{}"><title>{}: {}</title></rect>',
                                 x, round(top + plot_h - bar_h, 1), round(step - 2, 1), bar_h, label, value))
        last = i == len(rows) - 1
        if last or (i % every == 0 and len(rows) - 1 - i >= every // 2):  # no label crowding the last one
            parts.append(format_html('<text class="tick" x="{}" y="{}" text-anchor="middle">{}</text>',
                                     round(x + step / 2, 1), height - 8, label))
    return _frame(key, title, _describe(rows), height, mark_safe("".join(parts)), "chart-columns")


def bars(key, title, rows):
    """A horizontal bar per (label, value), the label on the left and the value at the bar's end."""
    label_w, row_h, top = 260, 26, 6
    height = top * 2 + row_h * max(len(rows), 1)
    peak = max((value for _label, value in rows), default=0)
    room = WIDTH - label_w - 60
    lines = []
    for i, (label, value) in enumerate(rows):
        y = top + i * row_h
        width = round(value * room / peak, 1) if peak else 0
        lines.append((label_w - 8, y + 17, label, label_w, y + 4, width, label_w + width + 6, y + 17, value))
    if not rows:
        body = format_html('<text class="tick" x="{}" y="{}">{}</text>', 8, top + 17, _("No data yet"))
    else:
        body = format_html_join(
            "", '<text class="label" x="{}" y="{}" text-anchor="end">{}</text>'
                '<rect class="bar" x="{}" y="{}" width="{}" height="18"/>'
                '<text class="value" x="{}" y="{}">{}</text>', lines)
    return _frame(key, title, _describe(rows) or _("No data yet"), height, body, "chart-bars")
