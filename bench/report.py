"""bench/results.json (flat keys) and bench/results.md (for a person) from one run's results."""

from __future__ import annotations

import json
from pathlib import Path

TARGETS = [
    # key, description, test
    ("target_bridge_150k", "bridge >= 150,000 msg/s", lambda r: r["bridge_msgs_per_s"] >= 150_000),
    (
        "target_bridge_vs_seed_2_5x",
        "bridge >= 2.5x the seed style",
        lambda r: r["bridge_vs_seed_style"] >= 2.5,
    ),
    (
        "target_flink_30k",
        "Flink job >= 30,000 trades/s",
        lambda r: r["flink_trades_per_s"] >= 30_000,
    ),
    (
        "target_flink_vs_filesource_0_8",
        "Flink job >= 0.8x its FileSource twin",
        lambda r: r["flink_vs_filesource"] >= 0.8,
    ),
    (
        "target_one_python_operator",
        "one Python operator in the job graph (the bridge)",
        lambda r: r["flink_python_operators"] == 1,
    ),
    (
        "target_p99_1k_25ms",
        "p99 to the trades sink <= 25 ms at 1,000 msg/s",
        lambda r: r["latency_ms_p99_1k"] is not None and r["latency_ms_p99_1k"] <= 25,
    ),
    (
        "target_p99_10k_100ms",
        "p99 to the trades sink <= 100 ms at 10,000 msg/s",
        lambda r: r["latency_ms_p99_10k"] is not None and r["latency_ms_p99_10k"] <= 100,
    ),
    ("target_idle_cpu_3pct", "idle CPU <= 3% of one core", lambda r: r["idle_cpu_pct"] <= 3),
    (
        "target_wholemarket_p99_5k_100ms",
        "whole market (1,500 symbols), p99 to the trades sink <= 100 ms at 5,000 trades/s",
        lambda r: r["wholemarket_p99_ms_5k"] is not None and r["wholemarket_p99_ms_5k"] <= 100,
    ),
    (
        "target_wholemarket_2lines_hold_0",
        "whole market on two lines: a connection reset holds the watermark 0 s",
        lambda r: r["wholemarket_hold_max_s_2lines"] == 0,
    ),
]


def judge(results: dict) -> None:
    for key, _, test in TARGETS:
        results[key] = bool(test(results))


SOAK_HEADING = "## 9. Soak"  # the last section: bench/soak.py replaces it in place


def write(results: dict, profile: dict | None, soak: dict | None, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    (out / "results.md").write_text(markdown(results, profile) + soak_markdown(soak))


def replace_soak(results_md: Path, soak: dict) -> None:
    """Puts the soak's section into an existing results.md, in place of an older one."""
    text = results_md.read_text()
    kept = text.split(f"\n{SOAK_HEADING}\n")[0]
    results_md.write_text(kept.rstrip("\n") + "\n" + soak_markdown(soak))


def _n(value, digits: int = 0) -> str:
    if value is None:
        return "n/a"
    return f"{value:,.{digits}f}"


def markdown(r: dict, profile: dict | None) -> str:
    flag = "" if r["plan"] == "full" else f" --{r['plan']}"
    lines = [
        "# Benchmark results",
        "",
        f"`python bench/run.py{flag}` ({r['plan']} run), {r['date']}, "
        f"{r['cpu_count']} cores, load average {r['load_avg_start']} at the start and "
        f"{r['load_avg_end']} at the end, {r['run_seconds']:.0f} s in all. The machine is shared: "
        "absolute figures move between runs; ratios measured side by side in one run hold better. "
        "Each figure is the median of the rounds run (see `rounds` and `flink_rounds`).",
        "",
        "## Targets",
        "",
        "| target | measured | met |",
        "|---|---|---|",
    ]
    measured = {
        "target_bridge_150k": f"{_n(r['bridge_msgs_per_s'])} msg/s",
        "target_bridge_vs_seed_2_5x": f"{r['bridge_vs_seed_style']:.1f}x",
        "target_flink_30k": f"{_n(r['flink_trades_per_s'])} trades/s",
        "target_flink_vs_filesource_0_8": f"{r['flink_vs_filesource']:.2f}x",
        "target_one_python_operator": (
            f"{r['flink_python_operators']} of {r['flink_operators']} operators"
        ),
        "target_p99_1k_25ms": f"{_n(r['latency_ms_p99_1k'], 1)} ms",
        "target_p99_10k_100ms": f"{_n(r['latency_ms_p99_10k'], 1)} ms",
        "target_idle_cpu_3pct": f"{r['idle_cpu_pct']:.1f}%",
        "target_wholemarket_p99_5k_100ms": f"{_n(r['wholemarket_p99_ms_5k'], 1)} ms",
        "target_wholemarket_2lines_hold_0": f"{r['wholemarket_hold_max_s_2lines']} s",
    }
    for key, description, _ in TARGETS:
        lines.append(f"| {description} | {measured[key]} | {'yes' if r[key] else '**no**'} |")
    lines += [
        "",
        "## 1. The bridge alone (no Flink)",
        "",
        "The load server (`bench/loadserver.py`, its own process, raw sockets) writes pre-built "
        "frames of real BTCUSDT trades in ~1 MiB batches; each client (`bench/clients/`, its own "
        f"process) reads for {r['client_seconds']:g} s or {_n(r['client_count'])} messages, "
        "whichever comes first, timed from its first message. CPU is the client process's (all "
        "threads).",
        "",
        "| client | msg/s | CPU s per million msgs |",
        "|---|---|---|",
        f"| load server alone, into a raw socket that discards | {_n(r['load_server_msgs_per_s'])} "
        f"| {_n(r['load_server_cpu_s_per_million'], 2)} (the reader) |",
    ]
    for key, label in (
        ("bridge", "this project's bridge (BinanceFeed, records drained)"),
        ("bridge_backfill", "the same with gap filling on (a REST history configured)"),
        ("seed_style", "seed style: WebSocketApp defaults + json.loads"),
        ("websockets", "websockets sync client + orjson"),
        ("picows", "picows + orjson (C-level ceiling)"),
    ):
        lines.append(
            f"| {label} | {_n(r[f'{key}_msgs_per_s'])} | {_n(r[f'{key}_cpu_s_per_million'], 2)} |"
        )
    server_headroom = r["load_server_msgs_per_s"] / max(
        1, r["picows_msgs_per_s"], r["bridge_msgs_per_s"]
    )
    lines += [
        "",
        f"Bridge / seed style: **{r['bridge_vs_seed_style']:.1f}x**; bridge / picows: "
        f"{r['bridge_vs_picows']:.2f}x; with gap filling on / off: "
        f"{r['bridge_backfill_vs_bridge']:.2f}x (side by side, round by round). The server alone "
        f"delivers {server_headroom:.0f}x what the fastest client takes, so no client figure is "
        f"the server's limit. The bridge reported {r['bridge_parse_failures']} parse failures and "
        f"{r['bridge_gaps']} gaps (ids are renumbered to stay consecutive across cycles of the "
        "captures). Every client read for its full window: none reached the end of the server's "
        f"{_n(r['client_count'])} messages (a run where one does fails, with no figure).",
        "",
    ]
    if profile:
        lines += [
            "### Where the bridge's CPU goes",
            "",
            f"py-spy, {profile['samples']} samples of the thread holding the GIL (the bridge is "
            "GIL-bound), start-up imports left out. self = in the function or C code it calls "
            "directly; total = with its callees.",
            "",
            "| function (file) | self % | total % |",
            "|---|---|---|",
            *(
                f"| `{row['function']}` | {row['self_pct']} | {row['total_pct']} |"
                for row in profile["functions"]
            ),
            "",
            "| hottest lines | self % |",
            "|---|---|",
            *(f"| `{row['line']}` | {row['self_pct']} |" for row in profile["lines"]),
            "",
        ]
    lines += [
        "## 2. Flink end to end",
        "",
        f"`job/main.py` reading the flood: its graph has {r['flink_python_operators']} Python "
        f"operator(s) of {r['flink_operators']} (counted from the graph, `python -m job.graph`): "
        "the bridge parses in Python, and Flink's SQL does the rest (event time, bars, late "
        "trades, the three outputs), with the repo's conf/config.yaml. Against the same graph "
        "built by the same `job.main.build` with `binance_trades` swapped for Flink's FileSource "
        "over the same messages, parsed by the same parser in the one Python operator "
        "(`bench/filesource_job.py`). Throughput is lines reaching the trades sink (its "
        f"in-progress part files, followed as written) over {r['flink_window_s']:g} s, starting "
        f"{r['flink_warmup_s']:g} s after the first line.",
        "",
        "| pipeline | trades/s |",
        "|---|---|",
        f"| job/main.py, bridge over loopback WebSocket | {_n(r['flink_trades_per_s'])} |",
        f"| same graph, FileSource | {_n(r['flink_filesource_trades_per_s'])} |",
        "",
        f"Ratio (per round, median): **{r['flink_vs_filesource']:.2f}x**.",
        "",
        "Each round's rate is checked before it counts (`bench/validity.py`; a round that fails "
        "fails the run, with no figure): its input lasted through the window (the load server had "
        f"{_n(r.get('flink_input_trades'))} trades for the job's connection, sized to outlast "
        f"warm-up + window {r.get('input_margin')} times over at "
        f"{_n(r.get('input_ceiling_trades_per_s'))} trades/s, and sent at most "
        f"{_n(r.get('flink_input_sent_max'))} of them, never its last before the window's end; "
        f"the file held {_n(r.get('flink_filesource_input_lines'))} lines, of which at most "
        f"{_n(r.get('flink_filesource_sink_lines_max'))} were in the sink at the window's end), "
        "the window ran its full length with the sink still growing in its last 2 s, and the "
        "warm-up ended with the sink growing when the window opened. Used up: bridge "
        f"{r.get('flink_input_used_up')}, FileSource {r.get('flink_filesource_input_used_up')}; "
        f"windows filled: {r.get('flink_window_filled')}; warm-ups ended: "
        f"{r.get('flink_warmup_ended')}.",
        "",
        "### Scaling out",
        "",
        "`flink run` on a standalone cluster (`bench/scaleout.py`), every TaskManager with one "
        "slot: one shard (BTCUSDT) on one TaskManager, then two shards (BTCUSDT, ETHUSDT: a "
        "connection each) with `--parallelism 2` on two. In thread mode all subtasks of a "
        "TaskManager share its one interpreter, so the bridge scales by TaskManagers; on this "
        "2-core machine the ceiling is 2x.",
        "",
        "| cluster | trades/s |",
        "|---|---|",
        f"| 1 TaskManager, 1 shard | {_n(r['flink_scaleout_1tm_trades_per_s'])} |",
        f"| 2 TaskManagers, 2 shards | {_n(r['flink_scaleout_2tm_trades_per_s'])} |",
        "",
        f"Ratio: **{r['flink_scaleout_2tm_ratio']:.2f}x**. Checked as above, every shard's "
        f"connection to the same load server ({_n(r.get('flink_scaleout_input_trades'))} trades "
        f"each, at most {_n(r.get('flink_scaleout_input_sent_max'))} sent): used up "
        f"{r.get('flink_scaleout_input_used_up')}, windows filled "
        f"{r.get('flink_scaleout_window_filled')}, warm-ups ended "
        f"{r.get('flink_scaleout_warmup_ended')}, one connection per shard, the job running at the "
        "end.",
        "",
        "## 3. Latency",
        "",
        "The paced load server stamps each trade's `E` (and `T`) with its send time in ms; a trade "
        "is attributed to the phase that sent it. *Source*: the job runs with `--feed-factory "
        "bench.source_probe:StampedFeed`, a BinanceFeed that notes `now - E` when the bridge "
        "operator drains the trade, right before emitting it (PyFlink's bundle flush to the JVM "
        "comes after). *Trades sink*: `now - E` when the trade's line appears in the sink's "
        "in-progress part file (polled every 2 ms), i.e. written by the sink, before a checkpoint "
        "commits it (every 30 s). `E` has ms resolution: figures carry up to +1 ms. "
        f"{r['latency_warmup_s']:g} s at 1,000/s warm the job up first; each phase then lasts "
        f"{r['latency_phase_s']:g} s, and every trade sent is waited for, so none is left out.",
        "",
        "| rate | sent | to source p50 / p95 / p99 ms | to trades sink p50 / p95 / p99 ms |",
        "|---|---|---|---|",
    ]
    for label, rate in (("1k", "1,000/s"), ("10k", "10,000/s")):
        lines.append(
            f"| {rate} | {_n(r[f'sent_{label}'])} | "
            + " / ".join(_n(r[f"source_latency_ms_{q}_{label}"], 1) for q in ("p50", "p95", "p99"))
            + " | "
            + " / ".join(_n(r[f"latency_ms_{q}_{label}"], 1) for q in ("p50", "p95", "p99"))
            + " |"
        )
    lines += [
        "",
        "At a rate above what the job carries (section 2), trades queue in the bridge's buffer and "
        "the latency is the queue's: it grows with the phase's length rather than describing the "
        "pipeline.",
        "",
        "## 4. Idle cost",
        "",
        f"After the paced phases the server sends only pings (every {r['ping_interval_s']:g} s). "
        f"Once every trade has reached the sink and {r['idle_settle_s']:g} s more have passed, the "
        f"CPU time (user + system) of the job's whole process tree ({r['idle_processes']} "
        f"processes) is measured over {r['idle_window_s']:g} s"
        + (f" (shortened from 60 s by{flag})" if flag else "")
        + ". The cost: checkpoints (every 30 s), "
        "the drain timer (backing off to 200 ms while quiet), the JVM's own timers (the flushers "
        "of the network buffers and Pekko's RPC schedulers, every 100 ms: `conf/config.yaml`) and "
        "the JIT compiler still at work on what the load phases ran.",
        "",
        f"**{r['idle_cpu_pct']:.1f}% of one core**: the JVM {r['idle_cpu_pct_jvm']:.1f}%, the "
        f"job's Python process {r['idle_cpu_pct_python']:.1f}% (it hosts the Python workers in "
        "process mode, Beam's loopback; in thread mode they run inside the JVM), other processes "
        f"{r['idle_cpu_pct_other']:.1f}%.",
        "",
        "## 5. Two lines against one",
        "",
        "The job on one line, then on two (`--redundancy 2`, both to the paced server, whose every "
        "connection sends the same trades on its own schedule, a few ms apart), "
        f"{r['latency_warmup_s']:g} s at 1,000 trades/s, then {r['latency_phase_s']:g} s at "
        "10,000/s, measured over that phase: the CPU of the job's whole process tree, and the "
        "latency of each trade (its first copy) from the server to the trades sink.",
        "",
        "| lines | trades sent | CPU % of a core | CPU s per million trades "
        "| to trades sink p50 / p95 / p99 ms |",
        "|---|---|---|---|---|",
        *(
            f"| {n} | {_n(r[f'lines_{n}_sent'])} | {r[f'lines_{n}_cpu_pct']} | "
            f"{_n(r[f'lines_{n}_cpu_s_per_million'], 2)} | "
            + " / ".join(_n(r[f"lines_{n}_latency_ms_{q}"], 1) for q in ("p50", "p95", "p99"))
            + " |"
            for n in (1, 2)
        ),
        "",
        f"The second line costs **{r['lines_2_cpu_ratio']}x** the CPU per trade of one: every "
        "message is received and parsed twice, and the copy is dropped by id.",
        "",
        "## 6. Memory under a stalled consumer",
        "",
        f"BinanceFeed (buffer bound {_n(r['stalled_buffer_size'])} records, overflow `block`) "
        f"against the flood, never drained, for {r['stalled_seconds']:g} s. The buffer held "
        f"{_n(r['stalled_buffered'])} records at the end, full after {r['stalled_full_after_s']} "
        "s; the reader then blocks and the socket backs up.",
        "",
        "| RSS | MB |",
        "|---|---|",
        f"| after imports, before connecting | {r['stalled_baseline_rss_mb']:.1f} |",
        f"| when the buffer first reached its bound | {_n(r['stalled_rss_at_full_mb'], 1)} |",
        f"| at the end | {r['stalled_rss_end_mb']:.1f} |",
        f"| peak (VmHWM) | **{r['stalled_peak_rss_mb']:.1f}** |",
        "",
    ]
    lines += wholemarket_markdown(r)
    lines += history_markdown(r)
    return "\n".join(lines)


def wholemarket_markdown(r: dict) -> list[str]:
    runs = (("5k", "5,000", 1), ("5k_2lines", "5,000", 2), ("20k", "20,000", 1))
    lines = [
        "## 7. The whole market",
        "",
        "`job/main.py --symbols all` against the simulator's generated market of 1,500 symbols "
        "(Zipf activity, Poisson arrivals; `bench/wholemarket.py`), 8 connections a line, "
        f"measured over {r['wholemarket_window_s']:g} s after {r['wholemarket_warmup_s']:g} s of "
        "warm-up: trades/s into the trades sink against what the market published, latency from "
        "the exchange to the sink, the peak RSS of the job's process tree, the newest checkpoint "
        "(every 10 s).",
        "",
        "| rate | lines | published/s | trades/s | p50 / p95 / p99 / max ms | peak RSS MB "
        "| checkpoint MB, s |",
        "|---|---|---|---|---|---|---|",
    ]
    for label, rate, n in runs:
        k = f"wholemarket_{label}_"
        lines.append(
            f"| {rate} | {n} | {_n(r[k + 'published_per_s'])} | {_n(r[k + 'trades_per_s'])} | "
            + " / ".join(_n(r[f"{k}latency_ms_{q}"], 1) for q in ("p50", "p95", "p99", "max"))
            + f" | {_n(r[k + 'peak_rss_mb'])} | {r[k + 'checkpoint_mb']}, "
            f"{r.get(k + 'checkpoint_s')} |"
        )
    lines += [
        "",
        "Then one connection of the first endpoint reset, refused for 2 s, at 5,000 trades/s:",
        "",
        "| lines | REST weight | REST requests | symbols fetched | watermark held s "
        "| live trades p50 / p99 / max ms |",
        "|---|---|---|---|---|---|",
    ]
    for label, n in (("5k", 1), ("5k_2lines", 2)):
        k = f"wholemarket_{label}_"
        lines.append(
            f"| {n} | {_n(r[k + 'reset_rest_weight'])} | {r[k + 'reset_rest_requests']} | "
            f"{r[k + 'reset_symbols_fetched']} | {r[k + 'hold_s']} | "
            + " / ".join(_n(r[f"{k}reset_latency_ms_{q}"], 1) for q in ("p50", "p99", "max"))
            + " |"
        )
    lines += [
        "",
        "On one line the reset connection's symbols that traded meanwhile are fetched over REST, "
        "as many as the weight budget (`--rest-weight-budget`, 3,000 a minute) allows at once, "
        "the rest the next minute: the watermark, and that connection's live trades, wait that "
        "long. On two lines the other line delivers: no REST, no hold.",
        "",
    ]
    return lines


def history_markdown(r: dict) -> list[str]:
    return [
        "## 8. History: the archive against REST",
        "",
        f"{r['history_days']} complete days of one symbol ({r['history_rate']:g} trades a second, "
        f"{_n(r['history_archive_trades'])} trades) replayed by `BinanceFeed(since_ms=, "
        "until_ms=)` from the simulator's archive day files and from its REST history alone, "
        "and through the job (`--since --until`) into its trades sink (`bench/history.py`); "
        "every way delivered every trade of the range once.",
        "",
        "| way | trades/s | REST weight |",
        "|---|---|---|",
        f"| archive (download, checksum, read) | {_n(r['history_archive_trades_per_s'])} "
        f"| {r['history_archive_weight']} |",
        f"| REST only (loopback, no budget wait) | {_n(r['history_rest_trades_per_s'])} "
        f"| {_n(r['history_rest_weight'])} |",
        f"| archive, through the job into the trades sink | "
        f"{_n(r['history_flink_trades_per_s'])} | |",
        "",
        f"On Binance REST would also wait for its budget (3,000 weight a minute): "
        f"{r['history_rest_at_budget_s']} s for these days.",
        "",
    ]


def soak_markdown(soak: dict | None) -> str:
    """The soak run's section (``python bench/soak.py``, not part of run.py: it takes 10
    minutes)."""
    if soak is None:
        return ""
    lines = [
        "",
        SOAK_HEADING,
        "",
        f"`python bench/soak.py` ({soak['date']}): {soak['minutes']:g} minutes of `job/main.py` "
        f"against the live exchange simulator at {_n(soak['rate'])} trades/s (BTCUSDT and "
        f"ETHUSDT), a connection reset every 60 s ({soak['resets']} in all) and a malformed frame "
        f"every 1,000 messages ({_n(soak['malformed_sent'])} sent). Every 10 s: RSS, threads and "
        "open file descriptors of the job's processes (the Python driver and the JVM that runs the "
        "cluster and the Python operator).",
        "",
        "| time s | RSS MB | threads | fds |",
        "|---|---|---|---|",
        *(
            f"| {s['t_s']} | {s['rss_mb']:.1f} | {s['threads']} | {s['fds']} |"
            for s in soak["series"]
        ),
        "",
        "Growth from minute 2 to the end: "
        + ", ".join(
            f"{key.replace('_mb', '')} {value:+.1f}%"
            for key, value in soak["growth_from_minute_2_pct"].items()
        )
        + f". Trades lost: **{soak['lost_trades']}**, written twice: "
        f"**{soak['duplicate_trades']}** (every trade the exchange published between the first and "
        "the last written, per symbol); dead letters: "
        + ", ".join(f"{reason} {n}" for reason, n in sorted(soak["dead_letters"].items()))
        + ".",
        "",
    ]
    return "\n".join(lines)
