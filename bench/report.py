#!/usr/bin/env python3
"""Medians of the suite's raw results as a markdown table (used by bench/run)."""
import json
import os
import statistics
import sys

out, runs, scenarios, brokers = sys.argv[1], int(sys.argv[2]), sys.argv[3].split(), sys.argv[4].split()


def load(scenario, broker):
    results = []
    for run in range(1, runs + 1):
        base = os.path.join(out, "raw", f"{scenario}-{broker}-{run}")
        try:
            with open(base + ".json") as f:
                summary = json.loads(f.read().strip().splitlines()[-1])
            with open(base + ".rss") as f:
                summary["rss"] = json.load(f)
            results.append(summary)
        except (OSError, ValueError, IndexError):
            pass
    return results


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt(value, digits=0):
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"


print("| scenario | broker | runs | delivered/s | published/s | loss % | p50 ms | p99 ms | max ms | connects/s | RSS/conn B |")
print("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
for scenario in scenarios:
    for broker in brokers:
        results = load(scenario, broker)
        if not results:
            print(f"| {scenario} | {broker} | 0 | - | - | - | - | - | - | - | - |")
            continue
        lat = lambda key: median([(r.get("latency_ms") or {}).get(key) for r in results])
        loss = median([
            100.0 * r["lost"] / r["expected"] if r.get("expected") else None for r in results
        ])
        per_conn = median([
            1024.0 * (r["rss"]["rss_loaded_kib"] - r["rss"]["rss_base_kib"]) / r["connected"]
            if r["rss"].get("rss_loaded_kib") and r.get("connected") else None
            for r in results
        ])
        is_conn = results[0]["mode"] == "conn"
        print(
            f"| {scenario} | {broker} | {len(results)} "
            f"| {fmt(None if is_conn else median([r['deliver_rate'] for r in results]))} "
            f"| {fmt(None if is_conn else median([r['publish_rate'] for r in results]))} "
            f"| {fmt(loss, 2)} | {fmt(lat('p50'), 3)} | {fmt(lat('p99'), 3)} | {fmt(lat('max'), 3)} "
            f"| {fmt(median([r['connect_rate'] for r in results]))} | {fmt(per_conn)} |"
        )
