"""``embed-dataset`` on 20,000 real sentences: the local engine (one process, 2 threads)
against the Ray engine with two single-thread actors on a local Ray instance of 2 CPUs.

Each run is a fresh process, engines alternating round by round (this machine is shared and
drifts). Reported per engine: rows/s of the whole job (planning, reading, embedding, writing
Parquet; Ray's instance is started before the clock and timed apart), and peak RSS: for the
local engine the process's VmHWM; for Ray the largest sum of RSS over the driver and every
process it started (GCS, raylet, workers), sampled every 0.1 s, and the largest actor. Ray's
overhead is 1 - (Ray rows/s) / (local rows/s). Also: the time to plan (scan) the input, the
one part of a job that runs on the driver alone.

    python benches/bench_embed_dataset.py [--sentences 20000] [--rounds 2]

Needs pyarrow and ray[data]; the corpus packages of ``tests/corpus.py`` for the sentences.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
MIB = 1024 * 1024


def _rss_of_tree(root: int) -> tuple[int, dict[int, int]]:
    """(sum of RSS, RSS by pid) over ``root`` and its descendants, in bytes."""
    parents: dict[int, int] = {}
    rss: dict[int, int] = {}
    page = os.sysconf("SC_PAGE_SIZE")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            parents[int(entry.name)] = int(fields[1])
            rss[int(entry.name)] = int((entry / "statm").read_text().split()[1]) * page
        except (OSError, IndexError, ValueError):
            continue
    tree, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent and pid not in tree]
        tree.update(children)
        frontier.extend(children)
    by_pid = {pid: rss.get(pid, 0) for pid in tree}
    return sum(by_pid.values()), by_pid


def _actor_pids() -> set[int]:
    pids = set()
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and b"MapBatches(Embedder)" in (entry / "cmdline").read_bytes():
                pids.add(int(entry.name))
        except OSError:
            continue
    return pids


def child(engine: str, source: Path, output: Path) -> dict[str, Any]:
    """Runs in a fresh process: one job; returns the measurements."""
    import oxiformer
    from oxiformer.datasets import embed_file

    result: dict[str, Any] = {"engine": engine}
    if engine == "ray":
        import ray

        started = time.perf_counter()
        ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR")
        result["ray_start_s"] = time.perf_counter() - started
        peaks = {"total": 0, "actor": 0}
        stop = threading.Event()

        def sample() -> None:
            while not stop.is_set():
                total, by_pid = _rss_of_tree(os.getpid())
                peaks["total"] = max(peaks["total"], total)
                actors = [by_pid.get(pid, 0) for pid in _actor_pids()]
                peaks["actor"] = max([peaks["actor"], *actors])
                stop.wait(0.1)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
    else:
        oxiformer.set_num_threads(2)
    started = time.perf_counter()
    summary = embed_file(source, output, engine=engine, workers=2, worker_cpus=1, quiet=True)
    result["seconds"] = time.perf_counter() - started
    result["rows"] = summary.rows
    if engine == "ray":
        stop.set()
        sampler.join()
        ray.shutdown()
        result["peak_rss_mib"] = peaks["total"] / MIB
        result["peak_actor_rss_mib"] = peaks["actor"] / MIB
    with open("/proc/self/status", encoding="ascii") as status:
        hwm = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    result["driver_peak_rss_mib"] = hwm / 1024
    if engine == "local":
        result["peak_rss_mib"] = hwm / 1024
    return result


def plan_seconds(source: Path) -> float:
    from oxiformer._inputs import input_files, make_plan

    started = time.perf_counter()
    make_plan(input_files(source), "text", None, 10_000)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sentences", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--child", nargs=3, metavar=("ENGINE", "SOURCE", "OUTPUT"))
    args = parser.parse_args()
    if args.child:
        engine, source, output = args.child
        print(json.dumps(child(engine, Path(source), Path(output))))
        return

    sys.path.insert(0, str(ROOT / "benches"))
    from _common import machine_header, real_sentences

    print(machine_header(2))

    with tempfile.TemporaryDirectory(prefix="bench-embed-dataset-") as tmp:
        source = Path(tmp) / "sentences.txt"
        sentences = real_sentences(args.sentences)
        if len(sentences) < args.sentences:
            raise SystemExit(f"the corpus gave {len(sentences)} sentences, not {args.sentences}")
        source.write_text("".join(s + "\n" for s in sentences), encoding="utf-8")
        runs: dict[str, list[dict[str, Any]]] = {"local": [], "ray": []}
        for index in range(args.rounds):
            for engine in ("local", "ray") if index % 2 == 0 else ("ray", "local"):
                output = Path(tmp) / f"out-{engine}-{index}"
                done = subprocess.run(
                    [sys.executable, __file__, "--child", engine, str(source), str(output)],
                    capture_output=True, text=True, check=True,
                )  # fmt: skip
                run = json.loads(done.stdout.strip().splitlines()[-1])
                runs[engine].append(run)
                print(f"round {index + 1} {engine}: {json.dumps(run)}", file=sys.stderr)
        planned = plan_seconds(source)
        size = source.stat().st_size

    rate = {e: [r["rows"] / r["seconds"] for r in rs] for e, rs in runs.items()}
    best = {e: max(r) for e, r in rate.items()}
    median = {e: statistics.median(r) for e, r in rate.items()}
    start = statistics.median(r["ray_start_s"] for r in runs["ray"])
    local_peak = max(r["peak_rss_mib"] for r in runs["local"])
    ray_peak = max(r["peak_rss_mib"] for r in runs["ray"])
    actor_peak = max(r["peak_actor_rss_mib"] for r in runs["ray"])
    driver_peak = max(r["driver_peak_rss_mib"] for r in runs["ray"])
    lines = [
        f"{args.sentences:,} real sentences, MiniLM fp32, {os.cpu_count()} CPUs; "
        f"best / median of {args.rounds} rounds, engines alternating",
        "",
        "| engine | rows/s (best) | rows/s (median) | peak RSS |",
        "|---|---:|---:|---:|",
        f"| local, 2 threads | {best['local']:.1f} | {median['local']:.1f} | "
        f"{local_peak:.0f} MiB |",
        f"| Ray, 2 actors x 1 thread | {best['ray']:.1f} | {median['ray']:.1f} | "
        f"{ray_peak:.0f} MiB all processes (driver {driver_peak:.0f}, "
        f"largest actor {actor_peak:.0f}) |",
        "",
        f"Ray overhead: {1 - best['ray'] / best['local']:.1%} (best), "
        f"{1 - median['ray'] / median['local']:.1%} (median); "
        f"Ray instance start {start:.1f} s (not in rows/s)",
        f"per core: {best['ray'] / 2:.1f} rows/s (Ray: one actor, one core); planning "
        f"{planned * 1e3:.0f} ms for {size / MIB:.1f} MiB ({size / MIB / planned:.0f} MiB/s)",
    ]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
