"""One HTML page of a run's outputs: ``python -m job.chart OUT_DIR [--output FILE.html]``.

Per symbol, a candlestick chart of the one-minute bars over a volume sub-chart; then the feed's
health from the dead letters: counts per reason and the trade-id gaps that could not be filled.
plotly.js is embedded in the page, so it opens offline.
"""

from __future__ import annotations

import argparse
import html
import json
import sys
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from connectors.flink.outputs import committed_rows
from connectors.flink.rows import decode_raw

# naive UTC: plotly.js ignores time zones, the axis says UTC
EPOCH = datetime(1970, 1, 1, tzinfo=UTC).replace(tzinfo=None)
RISING, FALLING = "#26a69a", "#ef5350"


class DuplicateBar(ValueError):
    """The same (symbol, window_start) twice: the job emits each bar once, so the input is wrong."""


@dataclass(frozen=True)
class Bar:
    start: datetime
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal


@dataclass(frozen=True)
class Gap:
    symbol: str
    first_id: int
    last_id: int

    @property
    def missing(self) -> int:
        return self.last_id - self.first_id + 1


def bars_by_symbol(rows: list[tuple[str, dict]]) -> dict[str, list[Bar]]:
    """Bars per symbol in time order; a repeated (symbol, window_start) raises DuplicateBar."""
    seen: dict[tuple[str, int], str] = {}
    bars: dict[str, list[Bar]] = {}
    for where, row in rows:
        key = (row["symbol"], row["window_start"])
        start = EPOCH + timedelta(milliseconds=row["window_start"])
        if key in seen:
            raise DuplicateBar(
                f"bar {key[0]} {start:%Y-%m-%d %H:%M} UTC (window_start {key[1]}) "
                f"appears twice: {seen[key]} and {where}"
            )
        seen[key] = where
        bars.setdefault(row["symbol"], []).append(
            Bar(start, *(Decimal(row[f]) for f in ("open", "high", "low", "close", "volume")))
        )
    return {symbol: sorted(bars[symbol], key=lambda b: b.start) for symbol in sorted(bars)}


def reason_counts(dead_letters: list[tuple[str, dict]]) -> Counter:
    return Counter(row["reason"] for _, row in dead_letters)


def unfilled_gaps(dead_letters: list[tuple[str, dict]]) -> list[Gap]:
    gaps = []
    for _, row in dead_letters:
        if row["reason"] == "gap_unfilled":
            raw = row["raw"]
            if isinstance(raw, str):  # dead letters carry raw as text, or base64 if not UTF-8
                raw = json.loads(decode_raw(raw, row["raw_encoding"]))
            gaps.append(Gap(raw["symbol"], raw["first_id"], raw["last_id"]))
    return sorted(gaps, key=lambda g: (g.symbol, g.first_id))


def bar_figure(symbol: str, bars: list[Bar]) -> go.Figure:
    x = [b.start for b in bars]
    # Decimal ends here: plotly.js draws with doubles, so floats exist only for the drawing;
    # the hover text shows the exact decimal strings.
    fig = make_subplots(
        rows=2, cols=1, shared_xaxes=True, row_heights=[0.75, 0.25], vertical_spacing=0.04
    )
    fig.add_trace(
        go.Candlestick(
            x=x,
            open=[float(b.open) for b in bars],
            high=[float(b.high) for b in bars],
            low=[float(b.low) for b in bars],
            close=[float(b.close) for b in bars],
            increasing_line_color=RISING,
            decreasing_line_color=FALLING,
            name=symbol,
            hovertext=[f"O {b.open}<br>H {b.high}<br>L {b.low}<br>C {b.close}" for b in bars],
            hoverinfo="x+text",
        ),
        row=1,
        col=1,
    )
    fig.add_trace(
        go.Bar(
            x=x,
            y=[float(b.volume) for b in bars],
            name="volume",
            marker_color=[RISING if b.close >= b.open else FALLING for b in bars],
            hovertext=[f"volume {b.volume}" for b in bars],
            hoverinfo="x+text",
        ),
        row=2,
        col=1,
    )
    fig.update_layout(
        title=f"{symbol}: {len(bars)} one-minute bars",
        template="plotly_white",
        showlegend=False,
        height=480,
        margin={"l": 60, "r": 20, "t": 50, "b": 40},
        xaxis_rangeslider_visible=False,
    )
    fig.update_yaxes(title_text="price", row=1, col=1)
    fig.update_yaxes(title_text="volume", row=2, col=1)
    fig.update_xaxes(title_text="UTC", row=2, col=1)
    return fig


def health_html(counts: Counter, gaps: list[Gap]) -> str:
    reasons = "".join(
        f"<tr><td>{html.escape(reason)}</td><td>{n}</td></tr>"
        for reason, n in sorted(counts.items())
    )
    gap_rows = "".join(
        f"<tr><td>{html.escape(g.symbol)}</td><td>{g.first_id}</td>"
        f"<td>{g.last_id}</td><td>{g.missing}</td></tr>"
        for g in gaps
    )
    return (
        "<h2>Feed health</h2>"
        '<table id="dead-letters"><caption>Dead letters by reason</caption>'
        f"<tr><th>reason</th><th>count</th></tr>{reasons or '<tr><td colspan=2>none</td></tr>'}"
        "</table>"
        '<table id="unfilled-gaps"><caption>Unfillable trade-id gaps</caption>'
        "<tr><th>symbol</th><th>first id</th><th>last id</th><th>missing trades</th></tr>"
        f"{gap_rows or '<tr><td colspan=4>none</td></tr>'}</table>"
    )


def page_html(title: str, figures: dict[str, go.Figure], health: str) -> str:
    # plotly.js inline once (the first chart carries it), so the page needs no network.
    charts = "".join(
        fig.to_html(full_html=False, include_plotlyjs=i == 0, div_id=f"bars-{symbol}")
        for i, (symbol, fig) in enumerate(figures.items())
    )
    return (
        f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        "<style>body{font-family:sans-serif;margin:1em 2em}"
        "table{border-collapse:collapse;margin:0 2em 1em 0;display:inline-table;vertical-align:top}"
        "td,th{border:1px solid #ccc;padding:2px 8px}td{text-align:right}"
        "td:first-child{text-align:left}"
        "caption{font-weight:bold}</style>"
        f"</head><body><h1>{html.escape(title)}</h1>"
        f"{charts or '<p>No committed bars yet.</p>'}{health}</body></html>"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m job.chart",
        description="One self-contained HTML page of a run's bars and feed health.",
    )
    parser.add_argument("out_dir", type=Path, metavar="OUT_DIR", help="the job's --out directory")
    parser.add_argument(
        "--output",
        type=Path,
        metavar="FILE.html",
        help="page to write (default: OUT_DIR/chart.html)",
    )
    args = parser.parse_args(argv)
    if not args.out_dir.is_dir():
        parser.error(f"{args.out_dir} is not a directory")
    try:
        bars = bars_by_symbol(list(committed_rows(args.out_dir, "bars")))
    except DuplicateBar as e:
        print(f"chart: {e}", file=sys.stderr)
        return 1
    dead_letters = list(committed_rows(args.out_dir, "dead-letters"))
    page = page_html(
        f"Bars and feed health: {args.out_dir}",
        {symbol: bar_figure(symbol, b) for symbol, b in bars.items()},
        health_html(reason_counts(dead_letters), unfilled_gaps(dead_letters)),
    )
    output = args.output or args.out_dir / "chart.html"
    output.write_text(page, encoding="utf-8")
    print(output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
