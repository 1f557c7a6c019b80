"""The Home page's picture as a plain SVG: every filter's l1-norm over the training epochs.

A picture, not an interactive chart: the browser draws it at once (plotly's 4.5 MB script takes
seconds to load on a small machine), and it needs neither PyTorch nor plotly on the server. The
Filter-norm histories page has the interactive version.
"""

from __future__ import annotations

import math
from html import escape

from plasticity.card import BaseCard

WIDTH, HEIGHT = 640, 380
LEFT, RIGHT, TOP, BOTTOM = 64, 24, 44, 52  # the plot area's margins
LINE = "rgba(31, 95, 191, 0.55)"
INK = "#31333f"  # Streamlit's text colour
GRID = "#e6e9ef"
FONT = 'font-family="Source Sans, sans-serif"'


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values covering [low, high]: steps of 1, 2 or 5 times a power of ten."""
    if high <= low:
        high = low + 1
    raw = (high - low) / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.floor(low / step) * step
    ticks = []
    value = first
    while value <= high + step * 1e-9:
        ticks.append(round(value, 10))
        value += step
    if ticks[-1] < high:
        ticks.append(round(value, 10))
    return ticks


def _label(value: float) -> str:
    return f"{value:g}"


def norm_lines_svg(card: BaseCard) -> str:
    """Every filter of the card's first layer, one line each, over the epochs it trained."""
    values = [v for row in card.norms for v in row if v is not None]
    y_ticks = nice_ticks(0.0, max(values, default=1.0))
    x_low, x_high = min(card.epochs, default=0), max(card.epochs, default=1)
    x_high = max(x_high, x_low + 1)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(epoch: float) -> float:
        return LEFT + (epoch - x_low) / (x_high - x_low) * plot_w

    def y(value: float) -> float:
        return TOP + plot_h - (value - y_ticks[0]) / (y_ticks[-1] - y_ticks[0]) * plot_h

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" '
        f'role="img" aria-label="l1-norm of every filter of {escape(card.layer)} while the base trained">',
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>',
        f'<text x="{LEFT}" y="24" {FONT} font-size="17" fill="{INK}">'
        f"l1-norm of every {escape(card.layer)} filter while the base trained</text>",
    ]
    for tick in y_ticks:
        parts.append(f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{y(tick):.1f}" y2="{y(tick):.1f}" stroke="{GRID}"/>')
        parts.append(
            f'<text x="{LEFT - 8}" y="{y(tick) + 4:.1f}" {FONT} font-size="12" fill="{INK}" text-anchor="end">'
            f"{_label(tick)}</text>"
        )
    for epoch in card.epochs:
        parts.append(
            f'<text x="{x(epoch):.1f}" y="{TOP + plot_h + 18}" {FONT} font-size="12" fill="{INK}" '
            f'text-anchor="middle">{epoch}</text>'
        )
    parts.append(
        f'<text x="{LEFT + plot_w / 2}" y="{HEIGHT - 10}" {FONT} font-size="13" fill="{INK}" text-anchor="middle">'
        "training epoch (0 = initialisation)</text>"
    )
    parts.append(
        f'<text transform="translate(16 {TOP + plot_h / 2}) rotate(-90)" {FONT} font-size="13" fill="{INK}" '
        'text-anchor="middle">l1-norm of the filter</text>'
    )
    for row in card.norms:
        points = " ".join(f"{x(e):.1f},{y(v):.1f}" for e, v in zip(card.epochs, row) if v is not None)
        if points:
            parts.append(f'<polyline points="{points}" fill="none" stroke="{LINE}" stroke-width="1.8"/>')
    parts.append(
        f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{TOP + plot_h}" y2="{TOP + plot_h}" stroke="{INK}"/>'
        f'<line x1="{LEFT}" x2="{LEFT}" y1="{TOP}" y2="{TOP + plot_h}" stroke="{INK}"/>'
    )
    parts.append("</svg>")
    return "\n".join(parts)
