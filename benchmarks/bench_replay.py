"""Replay throughput: 2,000 items against the recorded judge with 200 ms latency.

Prints the wall time of a concurrent run, with 10 % of the requests answered 429 (Retry-After
1 s) by default, against
* the ideal: items × latency ÷ concurrency (a perfect pipeline with no retry and zero
  overhead; the target is ≤ 1.15 of it), and requests × latency ÷ concurrency, and
* a sequential loop (one request at a time), timed on a sample and extrapolated.

The 2,000 items are the 999 PandaLM items twice over (the copy's instruction carries a
"Copy B." prefix so every prompt is distinct), with the real gpt-3.5-turbo verdicts.

    python benchmarks/bench_replay.py [--items 2000] [--latency-ms 200] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def build_set(tmp: Path, n_items: int) -> Path:
    """A copy of the PandaLM set with the items repeated up to ``n_items``."""
    src = ROOT / "calibration_sets" / "pandalm"
    dst = tmp / "pandalm2k"
    (dst / "recorded").mkdir(parents=True)
    items = [json.loads(x) for x in (src / "items.jsonl").read_text().splitlines()]
    verdicts = [
        json.loads(x) for x in (src / "recorded" / "gpt-3.5-turbo.jsonl").read_text().splitlines()
    ]
    labels = (src / "labels.csv").read_text().splitlines()
    out_items, out_verdicts, out_labels = [], [], [labels[0]]
    copies = -(-n_items // len(items))
    for k in range(copies):
        for item, verdict in zip(items, verdicts, strict=True):
            if len(out_items) >= n_items:
                break
            suffix = "" if k == 0 else f"-c{k}"
            new = dict(item, id=item["id"] + suffix)
            if k:
                new["instruction"] = f"Copy {k}. " + str(item["instruction"])
            out_items.append(new)
            out_verdicts.append(dict(verdict, id=new["id"]))
    keep = {i["id"] for i in out_items}
    for line in labels[1:]:
        item_id = line.split(",", 1)[0]
        for k in range(copies):
            new_id = item_id + ("" if k == 0 else f"-c{k}")
            if new_id in keep:
                out_labels.append(new_id + line[len(item_id) :])
    (dst / "items.jsonl").write_text("".join(json.dumps(i) + "\n" for i in out_items))
    (dst / "labels.csv").write_text("\n".join(out_labels) + "\n")
    set_yaml = (src / "set.yaml").read_text().replace("name: pandalm", "name: pandalm2k", 1)
    (dst / "set.yaml").write_text(set_yaml)
    rec = "".join(json.dumps(v) + "\n" for v in out_verdicts)
    (dst / "recorded" / "gpt-3.5-turbo.jsonl").write_text(rec)
    manifest = json.loads((src / "recorded" / "manifest.json").read_text())
    manifest["set"] = "pandalm2k"
    manifest["recordings"] = [
        dict(r, rows=len(out_verdicts), sha256=hashlib.sha256(rec.encode()).hexdigest(),
             counts=None)
        for r in manifest["recordings"]
        if r["name"] == "gpt-3.5-turbo"
    ]
    for r in manifest["recordings"]:
        r.pop("counts")
    (dst / "recorded" / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return dst


class _Remote:
    """The recorded judge in its own process, as a real judge server would be."""

    def __init__(self, proc: subprocess.Popen[str], url: str):
        self.proc = proc
        self.url = url

    def stats(self) -> dict[str, object]:
        import httpx

        return dict(httpx.get(self.url.removesuffix("/v1") + "/_judgecal/stats").json())

    def cpu_seconds(self) -> float | None:
        """CPU time the server process has used (Linux /proc; None elsewhere)."""
        import os

        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def _server_process(sets_dir: Path, latency_ms: float, faults: list[str],
                    retry_after: float) -> Iterator[_Remote]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "judgecal", "serve-recorded", "--port", "0",
         "--sets-dir", str(sets_dir), "-r", "pandalm2k:gpt-3.5-turbo",
         "--latency-ms", str(latency_ms), "--retry-after", str(retry_after),
         *[arg for f in faults for arg in ("--fault", f)]],
        stdout=subprocess.PIPE, text=True,
    )
    assert proc.stdout is not None
    first = proc.stdout.readline()
    url = first.strip().rsplit(" ", 1)[-1]
    try:
        yield _Remote(proc, url)
    finally:
        proc.terminate()
        proc.communicate(timeout=10)


def _warm_up(url: str) -> None:
    """Import openai and the modules its client loads on first use (once per process)."""
    import asyncio

    import openai

    async def models() -> None:
        client = openai.AsyncOpenAI(base_url=url, api_key="unused", max_retries=0)
        await client.models.list()  # not a chat request: the server's counts stay at zero
        assert client.chat.completions.with_raw_response.create is not None
        await client.close()

    asyncio.run(models())


def best_possible(chains: list[int], latency_s: float, concurrency: int, p_429: float,
                  retry_after_s: float, *, runs: int = 200, seed: int = 7) -> float:
    """Mean wall time of a perfect client on this workload, in seconds (a simulation).

    ``chains``: the requests each item needs one after the other (1, or more when its reply
    is re-asked). Each request is answered 429 with probability ``p_429`` (at once, as the
    recorded judge does, holding no slot) and must then wait ``retry_after_s``; otherwise it
    takes ``latency_s`` of one of ``concurrency`` slots. The client has zero overhead and
    always starts the item that has been ready longest on the first free slot; no client
    that honours Retry-After and cannot foresee which request will be throttled does better
    (the last items throttled set the end).
    """
    import heapq
    import random

    rng = random.Random(seed)
    total = 0.0
    for _ in range(runs):
        ready = [(0.0, i, n) for i, n in enumerate(chains)]
        heapq.heapify(ready)
        slots = [0.0] * concurrency
        end = 0.0
        while ready:
            free = heapq.heappop(slots)
            at, i, left = heapq.heappop(ready)
            start = max(free, at)
            if rng.random() < p_429:
                heapq.heappush(slots, start)
                heapq.heappush(ready, (start + retry_after_s, i, left))
                continue
            done = start + latency_s
            heapq.heappush(slots, done)
            if left > 1:
                heapq.heappush(ready, (done, i, left - 1))
            end = max(end, done)
        total += end
    return total / runs


def sequential_sample(url: str, n: int) -> float:
    """Seconds per request for a plain loop of blocking requests."""
    import openai

    from judgecal.calibration import load_set

    client = openai.OpenAI(base_url=url, api_key="unused", max_retries=0)
    cs = load_set(ROOT / "calibration_sets" / "pandalm")
    started = time.perf_counter()
    for item in cs.items[:n]:
        f = item.fields
        client.chat.completions.create(
            model="gpt-3.5-turbo",
            messages=[{"role": "user", "content": f"{f['instruction']}\n{f['input']}\n"
                       f"{f['response1']}\n{f['response2']}"}],
            extra_headers={"X-Judgecal-Item-Id": item.id},
        )
    client.close()
    return (time.perf_counter() - started) / n


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=2000)
    parser.add_argument("--latency-ms", type=float, default=200.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--sequential-sample", type=int, default=25)
    parser.add_argument("--fault", action="append", default=None, metavar="KIND=RATE",
                        help="faults the recorded judge injects (default: 429=0.1)")
    parser.add_argument("--retry-after", type=float, default=1.0,
                        help="Retry-After seconds of the injected 429s")
    parser.add_argument("--profile", action="store_true",
                        help="also print where the client's CPU time goes (cProfile)")
    args = parser.parse_args()
    faults = ["429=0.1"] if args.fault is None else [f for f in args.fault if f]

    from judgecal.calibration import load_set
    from judgecal.config import RunConfig, load_judge
    from judgecal.runs.replay import execute_run
    from judgecal.store import open_store

    tmp = Path(tempfile.mkdtemp(prefix="judgecal-bench-"))
    try:
        set_dir = build_set(tmp, args.items)
        cs = load_set(set_dir)
        with _server_process(tmp, args.latency_ms, faults, args.retry_after) as server:
            judge = load_judge(ROOT / "configs" / "judges" / "pandalm-gpt35.yaml")
            judge = judge.model_copy(update={"base_url": server.url,
                                             "concurrency": args.concurrency})
            cfg = RunConfig.model_validate({
                "store": f"sqlite:///{tmp / 'bench.db'}", "calibration_set": set_dir,
                "judge": judge, "run": {"bootstrap": 0},
            })
            store = open_store(cfg.store)
            # Once per process and once per set version, not once per night: timed apart so
            # the run below is a night like every night after the first.
            t0 = time.perf_counter()
            _warm_up(server.url)
            import_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            store.save_set(cs)
            store_set_s = time.perf_counter() - t0
            profiler = None
            if args.profile:
                import cProfile

                profiler = cProfile.Profile()
                profiler.enable()
            marks: dict[str, float] = {}
            replies: list[float] = []

            def on_start(_total: int, _done: int) -> None:
                marks["start"] = time.perf_counter()

            latencies: list[float] = []

            def on_reply(record: object) -> None:
                replies.append(time.perf_counter())
                latency = getattr(record, "latency_ms", None)
                if latency is not None:
                    latencies.append(float(latency))

            started = time.perf_counter()
            cpu0 = time.process_time()
            result = execute_run(cfg, store, cs, on_start=on_start, on_reply=on_reply)
            wall = time.perf_counter() - started
            cpu = time.process_time() - cpu0
            if profiler is not None:
                import pstats

                profiler.disable()
                pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)
            stats = server.stats()
            server_cpu = server.cpu_seconds()
            requests = stats["requests"]  # type: ignore[index]
            throttled = (stats.get("faults") or {}).get("429", 0)  # type: ignore[union-attr]
            store.close()
            import httpx

            httpx.post(server.url.removesuffix("/v1") + "/_judgecal/config",
                       json={"faults": {}}).raise_for_status()  # the loop is timed clean
            per_request = sequential_sample(server.url, args.sequential_sample)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    lat = args.latency_ms / 1000
    ideal_items = args.items * lat / args.concurrency
    ideal_requests = requests * lat / args.concurrency
    # The same workload for a perfect client: each unscored item re-asked parse_retries times.
    reasks = max(0, requests - throttled - args.items)
    per = max(1, judge.parse_retries)
    chains = [1] * args.items
    for k in range(reasks):
        chains[(k // per) % args.items] += 1
    p_429 = throttled / requests if requests else 0.0
    best = best_possible(chains, lat, args.concurrency, p_429, args.retry_after)
    sequential = requests * per_request
    print(f"replay: {args.items} items, {requests} requests (incl. re-asks of unparseable "
          f"replies and {throttled} answered 429, Retry-After {args.retry_after:g} s; faults "
          f"{', '.join(faults) or 'none'}), latency {args.latency_ms:.0f} ms, concurrency "
          f"{args.concurrency}")
    print(f"  client CPU                {cpu:8.2f} s   ({cpu / max(requests, 1) * 1000:.2f} ms "
          "per request)")
    print(f"  status {result.status}: {result.summary['scored']} scored, "
          f"{result.summary['unscored']} unscored")
    first = wall + import_s + store_set_s
    print(f"  wall time                 {wall:8.2f} s   (a night whose set version is already "
          "stored, in a process that has imported openai)")
    print(f"  first night, new process  {first:8.2f} s   ratio {first / ideal_items:.3f}   (+ "
          f"{import_s:.2f} s importing openai and its HTTP stack, + {store_set_s:.2f} s storing "
          "the set version)")
    print(f"  ideal (requests×lat/conc) {ideal_requests:8.2f} s   "
          f"ratio {wall / ideal_requests:.3f}")
    print(f"  ideal (items×lat/conc)    {ideal_items:8.2f} s   ratio {wall / ideal_items:.3f}"
          f"   (target ≤ 1.15)")
    print(f"  best possible client      {best:8.2f} s   ratio {best / ideal_items:.3f} of the "
          f"items ideal; measured / best {wall / best:.3f}   (zero overhead, same re-asks, "
          f"{p_429:.1%} of requests 429 with Retry-After {args.retry_after:g} s honoured)")
    print(f"  sequential loop           {sequential:8.2f} s   (extrapolated from "
          f"{args.sequential_sample} requests: {per_request * 1000:.0f} ms each)   "
          f"speed-up {sequential / wall:.1f}×")
    if replies:
        setup = marks["start"] - started
        last_regular = sorted(replies)[int(0.99 * (len(replies) - 1))] - marks["start"]
        to_first = replies[0] - marks["start"]
        print(f"  where the time goes: {setup:.2f} s before the first request (fingerprint, "
              f"prompts, store), {to_first:.2f} s to the first reply (client start, one "
              f"latency), replies until {replies[-1] - started:.2f}"
              f" s (99% of them by {last_regular + marks['start'] - started:.2f} s: the rest "
              f"is the throttled tail), {started + wall - replies[-1]:.2f} s to close the run")
    if latencies:
        latencies.sort()
        mean = sum(latencies) / len(latencies)
        p99 = latencies[int(0.99 * (len(latencies) - 1))]
        print(f"  reply latency seen by the client: mean {mean:.0f} ms, p99 {p99:.0f} ms "
              f"(the server waits {args.latency_ms:.0f} ms); server CPU "
              + ("unknown" if server_cpu is None else
                 f"{server_cpu:.2f} s ({server_cpu / max(requests, 1) * 1000:.2f} ms per request)"))
    ok = wall / ideal_items <= 1.15
    print(f"  verdict: {'within' if ok else 'OUTSIDE'} 15% of the ideal")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
