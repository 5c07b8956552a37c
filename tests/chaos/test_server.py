"""The server itself: lifecycle, binding, prefixes, plans at runtime, the log, the CLI entry."""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest

import resilient_llm.testing.chaos
from resilient_llm import ConfigurationError, FakeClock
from resilient_llm.testing.chaos import ChaosServer, Fault, Plan, RequestRecord, serve
from resilient_llm.testing.chaos.server import protocol_of
from resilient_llm.testing.chaos.wire import Carried

from .sdk import PROMPT, anthropic_client, eventually, openai_client

USER: list[Any] = [{"role": "user", "content": PROMPT}]


def post(url: str, body: bytes) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(url, data=body, method="POST")
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_public_names_are_pinned() -> None:
    assert resilient_llm.testing.chaos.__all__ == [
        "ChaosServer",
        "Fault",
        "Plan",
        "RequestRecord",
        "serve",
    ]


def test_urls_and_protocols(chaos: ChaosServer) -> None:
    assert chaos.url.startswith("http://127.0.0.1:")
    assert chaos.base_url("openai") == f"{chaos.url}/openai/v1"
    assert chaos.base_url("groq") == f"{chaos.url}/groq/v1"
    assert chaos.base_url("anthropic-b") == f"{chaos.url}/anthropic-b"
    assert chaos.base_url("gemini") == f"{chaos.url}/gemini"
    assert [protocol_of(p) for p in ("openrouter", "Anthropic2", "google-x", "gemini")] == [
        "openai",
        "anthropic",
        "gemini",
        "gemini",
    ]
    with pytest.raises(ConfigurationError):
        chaos.base_url("a/b")


def test_binds_only_127_0_0_1(chaos: ChaosServer) -> None:
    port = int(chaos.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=2):
        pass
    # Another loopback address reaches the same host but not a socket bound to 127.0.0.1.
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.2", port), timeout=2).close()


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.10", "::", "::1", "example.com"])
def test_serve_refuses_other_hosts(host: str) -> None:
    with pytest.raises(ConfigurationError, match="loopback"):
        serve({}, host=host, port=0)


def test_serve_runs_until_interrupted(tmp_path: Path) -> None:
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"anthropic": {"script": ["overloaded"]}}))
    code = (
        "import sys; from resilient_llm.testing.chaos import Plan, serve; "
        "serve(Plan.load(sys.argv[1]), port=0)"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", code, str(plan)], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    first = process.stdout.readline()
    assert "chaos providers on http://127.0.0.1:" in first
    line = process.stdout.readline().split()
    assert line[:2] == ["anthropic", "anthropic"]
    status, body = post(
        f"{line[2]}/v1/messages",
        json.dumps({"model": "m", "max_tokens": 5, "messages": USER}).encode(),
    )
    assert (status, body["error"]["type"]) == (529, "overloaded_error")
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=10) == 0
    process.stdout.close()


def test_lifecycle() -> None:
    server = ChaosServer()
    with pytest.raises(RuntimeError):
        _ = server.url
    assert server.start() is server
    assert server.start() is server  # idempotent
    url = server.url
    server.stop()
    server.stop()
    with pytest.raises(RuntimeError):
        _ = server.url
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1])), timeout=2).close()


def test_stop_ends_an_open_hang() -> None:
    server = ChaosServer({"openai": Plan(script=["hang"])}).start()
    client = openai_client(server, timeout=30)
    failures: list[BaseException] = []

    def call() -> None:
        try:
            client.chat.completions.create(model="m", messages=USER)
        except BaseException as exc:
            failures.append(exc)

    caller = threading.Thread(target=call)
    caller.start()
    # Wait until the request is in (admitted to its route's quota window); the log only
    # records a request when it ends.
    assert eventually(lambda: bool(server._routes["openai"].window))
    server.stop()
    caller.join(timeout=10)
    assert not caller.is_alive()
    assert isinstance(failures[0], openai.APIConnectionError)
    assert [(r.fault, r.status) for r in server.log] == [("hang", 0)]
    client.close()


def test_script_is_consumed_in_order(chaos: ChaosServer, oai: openai.OpenAI) -> None:
    chaos.script("openai", "server_error", Fault("rate_limit", retry_after=0.5))
    chaos.script("openai", "auth")
    seen = []
    for _ in range(4):
        try:
            oai.chat.completions.create(model="m", messages=USER)
            seen.append(200)
        except openai.APIStatusError as exc:
            seen.append(exc.status_code)
    assert seen == [500, 429, 401, 200]
    assert [r.fault for r in chaos.log] == ["server_error", "rate_limit", "auth", "ok"]


def test_seeded_error_rate_is_deterministic(chaos: ChaosServer, oai: openai.OpenAI) -> None:
    def run() -> list[str]:
        chaos.set_plan(
            "openai", Plan(error_rate=0.5, error_kinds=("server_error", "overloaded"), seed=7)
        )
        chaos.clear_log()
        for _ in range(12):
            with contextlib.suppress(openai.APIStatusError):
                oai.chat.completions.create(model="m", messages=USER)
        return [r.fault for r in chaos.log]

    first = run()
    assert first == run()
    assert {"ok", "server_error", "overloaded"} <= set(first)


def test_outage_window(clocked: tuple[ChaosServer, FakeClock]) -> None:
    server, clock = clocked
    server.set_plan("anthropic", Plan(outages=[(10.0, 20.0)]))
    with anthropic_client(server) as client:

        def status() -> int:
            try:
                client.messages.create(model="m", max_tokens=5, messages=USER)
            except anthropic.APIStatusError as exc:
                return exc.status_code
            return 200

        assert status() == 200
        clock.advance(10)
        assert status() == 529
        clock.advance(9.5)
        assert status() == 529
        clock.advance(0.5)
        assert status() == 200
        # set_plan restarts the outage clock.
        server.set_plan("anthropic", Plan(outages=[(0.0, 5.0)]))
        assert status() == 529
    assert [r.fault for r in server.log] == ["ok", "outage", "outage", "ok", "outage"]


def test_two_prefixes_of_one_protocol_are_independent(chaos: ChaosServer) -> None:
    chaos.set_plan("openai-b", Plan(script=["rate_limit"], rpm=1))
    with openai_client(chaos, "openai-b") as b:
        with pytest.raises(openai.RateLimitError):
            b.chat.completions.create(model="m", messages=USER)
        with pytest.raises(openai.RateLimitError):  # its rpm=1 was spent by the first call
            b.chat.completions.create(model="m", messages=USER)
    with openai_client(chaos) as a:
        for _ in range(3):
            a.chat.completions.create(model="m", messages=USER)
    assert [(r.provider, r.status, r.fault) for r in chaos.log] == [
        ("openai-b", 429, "rate_limit"),
        ("openai-b", 429, "quota"),
        ("openai", 200, "ok"),
        ("openai", 200, "ok"),
        ("openai", 200, "ok"),
    ]


def test_request_log(chaos: ChaosServer, oai: openai.OpenAI, ant: anthropic.Anthropic) -> None:
    oai.chat.completions.create(model="gpt-x", messages=USER, stream=True).close()
    chaos.script("anthropic", "overloaded")
    with pytest.raises(anthropic.OverloadedError):
        ant.messages.create(model="claude-x", max_tokens=10, messages=USER)
    log = chaos.log
    assert log == [
        RequestRecord(
            provider="openai",
            protocol="openai",
            path="/openai/v1/chat/completions",
            model="gpt-x",
            stream=True,
            status=200,
            fault="ok",
            at=log[0].at,
            tokens=8,
        ),
        RequestRecord(
            provider="anthropic",
            protocol="anthropic",
            path="/anthropic/v1/messages",
            model="claude-x",
            stream=False,
            status=529,
            fault="overloaded",
            at=log[1].at,
            tokens=18,
            carried=Carried(params={"max_tokens": 10}),
        ),
    ]
    assert 0 <= log[0].at <= log[1].at
    log.clear()  # a copy
    assert len(chaos.log) == 2
    chaos.clear_log()
    assert chaos.log == []


def test_bad_requests_are_answered_in_the_protocol(chaos: ChaosServer) -> None:
    status, body = post(f"{chaos.base_url('openai')}/chat/completions", b"{not json")
    assert status == 400
    assert body["error"]["type"] == "invalid_request_error"
    status, body = post(f"{chaos.base_url('anthropic')}/v1/nothing", b"{}")
    assert (status, body["error"]["type"]) == (404, "not_found_error")
    status, body = post(f"{chaos.base_url('gemini')}/v1beta/models/m:generateContent", b"{}")
    assert (status, body["error"]["status"]) == (400, "INVALID_ARGUMENT")
    assert [r.fault for r in chaos.log] == ["invalid", "invalid", "invalid"]


def test_latency_and_fault_delay(chaos: ChaosServer) -> None:
    chaos.set_plan("openai", Plan(latency=0.5, script=[Fault("ok")]))
    with openai_client(chaos, timeout=0.1) as client, pytest.raises(openai.APITimeoutError):
        client.chat.completions.create(model="m", messages=USER)
    chaos.set_plan("openai", Plan(script=[Fault("server_error", delay=0.5)]))
    with openai_client(chaos, timeout=0.1) as client, pytest.raises(openai.APITimeoutError):
        client.chat.completions.create(model="m", messages=USER)


def test_plan_load_from_json(tmp_path: Path) -> None:
    path = tmp_path / "plans.json"
    path.write_text(
        json.dumps(
            {
                "openai": {"rpm": 3, "tpm": 1000, "latency": 0.0},
                "anthropic": {
                    "script": ["overloaded", {"kind": "rate_limit", "retry_after": 2}],
                    "outages": [[100, 200]],
                },
                "gemini": {"error_rate": 0.1, "error_kinds": ["unavailable"], "seed": 3},
            }
        )
    )
    plans = Plan.load(path)
    assert plans["openai"] == Plan(rpm=3, tpm=1000)
    assert plans["anthropic"].script == [Fault("overloaded"), Fault("rate_limit", retry_after=2)]
    assert plans["anthropic"].outages == [(100.0, 200.0)]
    assert plans["gemini"].error_kinds == ("unavailable",)
    with ChaosServer(plans) as server, anthropic_client(server) as client:
        with pytest.raises(anthropic.OverloadedError):
            client.messages.create(model="m", max_tokens=5, messages=USER)
        with pytest.raises(anthropic.RateLimitError) as caught:
            client.messages.create(model="m", max_tokens=5, messages=USER)
        assert caught.value.response.headers["retry-after"] == "2"


def test_set_plan_and_script_are_thread_safe(chaos: ChaosServer) -> None:
    # Eight threads race requests against a script of 40 faults while another thread keeps
    # appending and replacing plans on a second prefix: every scripted fault is served
    # exactly once, and nothing is lost from the log.
    chaos.set_plan("openai", Plan(script=["server_error"] * 40))
    stop = threading.Event()

    def churn() -> None:
        n = 0
        while not stop.is_set():
            chaos.set_plan("openai-churn", Plan(seed=n, error_rate=0.5))
            chaos.script("openai-churn", "overloaded")
            n += 1

    def calls() -> None:
        with openai_client(chaos) as client:
            for _ in range(10):
                with contextlib.suppress(openai.InternalServerError):
                    client.chat.completions.create(model="m", messages=USER)

    churner = threading.Thread(target=churn)
    churner.start()
    workers = [threading.Thread(target=calls) for _ in range(8)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=30)
    stop.set()
    churner.join(timeout=10)
    faults = [r.fault for r in chaos.log]
    assert len(faults) == 80
    assert faults.count("server_error") == 40
    assert faults.count("ok") == 40


def test_release_ends_a_providers_pauses_when_the_test_decides(chaos: ChaosServer) -> None:
    chaos.set_plan("openai-held", Plan(script=[Fault("stall", delay=3600)]))
    with openai_client(chaos, timeout=60) as client:
        oai = client.with_options(base_url=chaos.base_url("openai-held"))
        stream = oai.chat.completions.create(model="m", messages=USER, stream=True)
        chunks = iter(stream)
        first = [next(chunks), next(chunks)]  # the head and the first content, then silence
        assert "".join(c.choices[0].delta.content or "" for c in first)
        chaos.release("openai-held")
        rest = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert rest, "the stream went on once released"
    assert [(r.provider, r.status, r.fault) for r in chaos.log] == [("openai-held", 200, "stall")]
