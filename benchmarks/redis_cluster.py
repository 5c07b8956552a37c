"""The shared quota against a Redis Cluster, with one master killed mid-run.

``python -m benchmarks.redis_cluster [--coverage yes|no] [--retries default|off]``

A three-master cluster (:mod:`benchmarks.cluster_nodes`, no replicas), a chaos server, and
``--processes`` worker processes, each with one ``RedisState`` over a
``redis.cluster.RedisCluster`` client and one engine per route. Every process makes
``--calls`` async calls on every route at once; each route allows ``--quota`` requests per
``--window`` seconds, shared by all processes through the route's slot. ``--kill-at``
seconds in, the master holding the first route's slot is SIGKILLed.

Measured from the chaos server's request log (its own clock): per route, the most
requests any window held, before and after the kill, against the quota; from the workers:
each route's StateDown events (error, reason) and the slowest call. ``--coverage`` is the
cluster's ``cluster-require-full-coverage``: ``yes`` (Redis's default) stops the whole
cluster once a slot has no master, ``no`` keeps the other masters' slots serving.
``--retries off`` gives the cluster client no retries of its own (redis-py's default
retries a dead node, with backoff and a topology refresh, before giving up).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import time
from typing import Any

from .cluster_nodes import ClusterNodes
from .redis_server import RedisServer

PREFIX = "bench"


def _worker(
    index: int,
    ports: list[int],
    urls: dict[str, str],
    options: dict[str, Any],
    start: Any,
    out: Any,
) -> None:
    import redis.cluster
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    from resilient_llm import Provider, RateLimit, ResilientLLM, RetryPolicy
    from resilient_llm.events import Event, StateDown
    from resilient_llm.state.redis import RedisState

    extra: dict[str, Any] = {}
    if options["retries"] == "off":
        extra["retry"] = Retry(NoBackoff(), 0)
    client: Any = (redis.Redis if options["single"] else redis.cluster.RedisCluster)(
        host="127.0.0.1",
        port=ports[0 if options["single"] else index % len(ports)],
        socket_timeout=0.25,
        socket_connect_timeout=0.25,
        decode_responses=True,
        **extra,
    )
    state = RedisState(client, prefix=PREFIX, retry_after=1.0)
    downs: list[dict[str, Any]] = []

    def seen(event: Event) -> None:
        if isinstance(event, StateDown):
            downs.append(
                {
                    "route": event.route,
                    "error": event.error,
                    "reason": event.reason,
                    "t": time.monotonic(),  # system-wide on Linux: the driver's timeline
                }
            )

    engines = {
        name: ResilientLLM(
            [
                Provider(
                    "openai",
                    "chaos-model",
                    name=name,
                    base_url=urls[name],
                    api_key="bench-key",
                    rate_limit=RateLimit(
                        requests_per_minute=options["quota"], window=options["window"]
                    ),
                )
            ],
            state=state,
            retry=RetryPolicy(max_retries=0),
            timeout=300.0,
            on_event=seen,
        )
        for name in options["routes"]
    }

    for engine in engines.values():
        engine.warm()  # SDK clients built now, not inside the first calls

    async def run() -> dict[str, Any]:
        slowest: dict[str, float] = {name: 0.0 for name in engines}
        errors: list[str] = []

        async def one(name: str) -> None:
            began = time.monotonic()
            try:
                await engines[name].achat("hello")
            except Exception as exc:
                errors.append(f"{name}: {type(exc).__name__}")
            slowest[name] = max(slowest[name], time.monotonic() - began)

        start.wait()
        await asyncio.gather(*(one(name) for name in engines for _ in range(options["calls"])))
        return {"slowest": slowest, "errors": errors}

    result = asyncio.run(run())
    out.put({"index": index, "downs": downs, **result})


def _at(down: dict[str, Any]) -> float:
    return float(down["t"])


def _buckets(times: list[float], first: float, window: float) -> list[int]:
    """Requests per window, the windows centred on the limiter's bursts (the first at the
    first request): robust to a burst arriving a little early or late."""
    counts: dict[int, int] = {}
    for at in times:
        index = int((at - first + window / 2) // window)
        counts[index] = counts.get(index, 0) + 1
    return [counts.get(i, 0) for i in range(max(counts, default=-1) + 1)]


def _most_in_a_window(times: list[float], window: float) -> int:
    times = sorted(times)
    most, low = 0, 0
    for high, at in enumerate(times):
        while at - times[low] >= window:
            low += 1
        most = max(most, high - low + 1)
    return most


def measure(options: dict[str, Any]) -> dict[str, Any]:
    from resilient_llm.testing.chaos import ChaosServer, Plan

    cluster: Any = (ClusterNodes(coverage=options["coverage"]), RedisServer())[options["single"]]
    with ChaosServer() as chaos, cluster:
        for name in options["routes"]:
            chaos.set_plan(name, Plan())
        if options["single"]:
            cluster.ports = [cluster.port]
            owners = {name: cluster.port for name in options["routes"]}
        else:
            owners = {
                name: cluster.owner(f"{PREFIX}:v1:{{{name}}}:log") for name in options["routes"]
            }
        context = multiprocessing.get_context("spawn")
        start, out = context.Event(), context.Queue()
        urls = {name: chaos.base_url(name) for name in options["routes"]}
        workers = [
            context.Process(
                target=_worker, args=(i, cluster.ports, urls, options, start, out), daemon=True
            )
            for i in range(options["processes"])
        ]
        for worker in workers:
            worker.start()
        time.sleep(3.0)  # the workers import and build their engines; none has called yet
        began = time.monotonic()
        start.set()
        time.sleep(options["kill_at"])
        victim = owners[options["routes"][0]]
        killed = time.monotonic()
        if options["single"]:
            cluster.stop()
        else:
            cluster.kill(victim)
        killed_after = killed - began
        reports = [out.get(timeout=600) for _ in workers]
        for worker in workers:
            worker.join(timeout=30)
        duration = time.monotonic() - began
        log = list(chaos.log)
    first = min((r.at for r in log), default=0.0)
    kill_at = first + killed_after  # the chaos clock is within ms of the driver's
    # Admissions land up to ~50 ms early on the chaos server's clock (a decision's times
    # cross the wire as offsets from the script's clock): the window is measured 100 ms
    # short, so a boundary's jitter is not counted as a second quota.
    window = options["window"] - 0.1
    routes: dict[str, Any] = {}
    for name in options["routes"]:
        times = [r.at for r in log if r.provider == name and r.status == 200]
        before = [t for t in times if t < kill_at]
        after = [t for t in times if t >= kill_at]
        downs = [d for rep in reports for d in rep["downs"] if d["route"] == name]
        routes[name] = {
            "on_killed_master": owners[name] == victim,
            "requests": len(times),
            "most_per_window_before": _most_in_a_window(before, window),
            "most_per_window_after": _most_in_a_window(after, window),
            "per_window": _buckets(times, first, options["window"]),
            "state_down": sorted({(d["error"], d["reason"]) for d in downs}),
            "processes_down": len(downs),
            "down_after_kill": [round(d["t"] - killed, 2) for d in sorted(downs, key=_at)],
            "slowest_call": round(max(rep["slowest"][name] for rep in reports), 2),
        }
        if options.get("times"):
            routes[name]["times"] = [round(t - first, 2) for t in sorted(times)]
    return {
        "options": options,
        "killed_at": round(killed_after, 2),
        "duration": round(duration, 2),
        "errors": [e for rep in reports for e in rep["errors"]][:10],
        "routes": routes,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--routes", type=int, default=6)
    parser.add_argument("--quota", type=int, default=10)
    parser.add_argument("--window", type=float, default=2.0)
    parser.add_argument("--calls", type=int, default=15)
    parser.add_argument("--kill-at", type=float, default=4.0)
    parser.add_argument("--coverage", choices=("yes", "no"), default="yes")
    parser.add_argument("--retries", choices=("default", "off"), default="default")
    parser.add_argument("--single", action="store_true", help="one redis-server, no cluster")
    parser.add_argument("--times", action="store_true", help="list each route's request times")
    args = parser.parse_args()
    options = {
        "processes": args.processes,
        "routes": [f"openai-c{i}" for i in range(args.routes)],
        "quota": args.quota,
        "window": args.window,
        "calls": args.calls,
        "kill_at": args.kill_at,
        "coverage": args.coverage,
        "retries": args.retries,
        "times": args.times,
        "single": args.single,
    }
    print(json.dumps(measure(options), indent=1))


if __name__ == "__main__":
    main()
