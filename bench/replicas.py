"""`make bench-replicas`: the same load on one and on two of every process (doc/scaling.md).

The stack of `make bench` (bench/run.py) is started twice on fresh databases, first with one of
each process, then with two (the APIs behind NGINX as upstream members), and driven the same way:
readings posted for 10 s, each timed from its commit to its application by the patient service
(the outbox and processed_events, one PostgreSQL clock), then patients read. On a machine with 2
cores this shows what a second replica costs, not what it gains: both replicas share the cores
that wrk, NGINX and PostgreSQL use too. The figures that carry to a bigger machine are the CPU
per request, which the capacity model uses.
"""

import argparse
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run  # noqa: E402  (bench/run.py)


def measure(replicas: int, args: argparse.Namespace) -> dict[str, float]:
    args.replicas = replicas
    bench = run.Bench(args)
    try:
        bench.start()
        bench.seed_patients()
        body = run.json.dumps({"heart_rate_bpm": 72, "spo2_percent": 97, "measured_at": run.MEASURED_AT})
        window = run.db_now()
        post = bench.wrk_run(f"{replicas} of each: POST a reading", "post_json.lua", bench.reading_paths(),
                             body=body, server="measurement-api",
                             database=run.DATABASES["MEASUREMENT_DATABASE_URL"])  # fmt: skip
        posted = run.db_now()
        bench.drain_events()
        samples = run.event_hops(window, posted).total  # each reading's commit to its application
        paths = [f"/api/v1/patient/{pid}" for pid in bench.patient_ids]
        get = bench.wrk_run(f"{replicas} of each: GET a patient", "get_paths.lua", paths, server="patient-api",
                            database=run.DATABASES["PATIENT_DATABASE_URL"])  # fmt: skip
        rss = run.process_rss(bench.stack)
    finally:
        bench.stop()
        for url in [*run.DATABASES.values(), run.BASELINE_DB]:
            run.drop_database(url)
    return {
        "post_rps": post.rps, "post_p99": post.p99_ms, "post_cpu": post.cpu_ms, "post_errors": post.non_2xx,
        "get_rps": get.rps, "get_p99": get.p99_ms, "get_cpu": get.cpu_ms, "get_errors": get.non_2xx,
        "lag_p50": run.percentile(samples, 0.5) * 1000, "lag_p99": run.percentile(samples, 0.99) * 1000,
        "lag_n": len(samples), "rss": sum(rss.values()), "processes": len(rss),
    }  # fmt: skip


def table(one: dict[str, float], two: dict[str, float], seconds: float) -> str:
    rows = [
        ("POST a reading, requests/s (32 connections)", "post_rps", "{:,.0f}"),
        ("POST p99, ms", "post_p99", "{:.0f}"),
        ("measurement API CPU per POST, ms (all replicas)", "post_cpu", "{:.2f}"),
        ("GET a patient, requests/s", "get_rps", "{:,.0f}"),
        ("GET p99, ms", "get_p99", "{:.0f}"),
        ("patient API CPU per GET, ms (all replicas)", "get_cpu", "{:.2f}"),
        ("event lag p50, ms (a reading's commit to its application)", "lag_p50", "{:.0f}"),
        ("event lag p99, ms", "lag_p99", "{:.0f}"),
        ("events timed", "lag_n", "{:,.0f}"),
        ("memory of the stack's processes, MB", "rss", "{:,.0f}"),
        ("non-2xx answers (POST + GET)", None, "{:.0f}"),
    ]
    lines = [
        f"# One against two of every process ({os.cpu_count()} cores, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC)",
        "",
        f"`make bench-replicas`, {seconds:.0f} s per scenario; the same machine, load and data for both.",
        "",
        "| | 1 of each | 2 of each | 2 / 1 |",
        "|---|---:|---:|---:|",
    ]
    for label, key, fmt in rows:
        a = one[key] if key else one["post_errors"] + one["get_errors"]
        b = two[key] if key else two["post_errors"] + two["get_errors"]
        ratio = f"{b / a:.2f}" if a else "-"
        lines.append(f"| {label} | {fmt.format(a)} | {fmt.format(b)} | {ratio} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    one, two = measure(1, args), measure(2, args)
    out = table(one, two, args.seconds)
    print()
    print(out)
    path = run.BENCH / "results" / f"{datetime.now(UTC):%Y-%m-%d-%H%M}-replicas-{os.cpu_count()}cores.md"
    path.write_text(out)
    print(f"saved {path.relative_to(run.ROOT)}")


if __name__ == "__main__":
    main()
