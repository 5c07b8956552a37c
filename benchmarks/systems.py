"""The five systems under test, each built from one :class:`~benchmarks.spec.Setup`.

Every builder imports its libraries inside, so a worker process loads only the system it
measures and its import time and peak RSS are that system's alone. How each maps the shared
:class:`~benchmarks.spec.Policy` (retries, breaker, cooldown, deadline) and the routes'
limits onto its own knobs is written next to it, and quoted in the report.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any, Protocol

from .spec import API_KEY, MODELS, Setup

__all__ = [
    "CONFIGURATION",
    "IMPORTS",
    "LABELS",
    "PEERS",
    "REDIS_URL_VARIABLE",
    "SYSTEMS",
    "System",
    "build",
]


class System(Protocol):
    """One way of asking for a chat reply; returns the reply's text or raises."""

    def call(self, prompt: str, max_tokens: int) -> str: ...

    async def acall(self, prompt: str, max_tokens: int) -> str: ...

    def close(self) -> None: ...


LABELS = {
    "raw": "raw openai SDK",
    "raw_httpx": "raw openai SDK, default httpx transport",
    "lc_openai": "ChatOpenAI (LangChain), aiohttp transport",
    "engine_redis": "resilient-llm engine, RedisState",
    "engine": "resilient-llm engine",
    "engine_one": "resilient-llm engine, the OpenAI route alone",
    "lc_resilient": "ChatResilientLLM (LangChain)",
    "lc_resilient_one": "ChatResilientLLM (LangChain), the OpenAI route alone",
    "litellm": "LiteLLM Router",
    "lc_peer": "LangChain retry+fallbacks",
}

# What a user writes at the top of a module to use the system; timed in fresh processes.
IMPORTS = {
    "raw": "import openai",
    "raw_httpx": "import openai",
    "lc_openai": "from langchain_openai import ChatOpenAI",
    "engine_redis": "from resilient_llm import ResilientLLM, Provider, RateLimit",
    "engine": "from resilient_llm import ResilientLLM, Provider, RateLimit",
    "engine_one": "from resilient_llm import ResilientLLM, Provider, RateLimit",
    "lc_resilient": "from langchain_resilient import ChatResilientLLM",
    "lc_resilient_one": "from langchain_resilient import ChatResilientLLM",
    "litellm": "from litellm import Router",
    "lc_peer": (
        "from langchain_openai import ChatOpenAI\n"
        "from langchain_anthropic import ChatAnthropic\n"
        "from langchain_google_genai import ChatGoogleGenerativeAI\n"
        "from langchain_core.rate_limiters import InMemoryRateLimiter"
    ),
}

CONFIGURATION = {
    "raw_httpx": (
        "`openai.OpenAI` / `AsyncOpenAI` on the primary route only, SDK defaults, the async "
        "client on the SDK's default httpx transport."
    ),
    "lc_openai": (
        "`ChatOpenAI(model, base_url, api_key, http_async_client=openai.DefaultAioHttpClient())` "
        "on the primary route, SDK defaults otherwise; `invoke`/`ainvoke`."
    ),
    "engine_redis": (
        "The engine's arguments plus `state=RedisState(url)` on a local redis-server "
        "(persistence off)."
    ),
    "raw": (
        "`openai.OpenAI` / `AsyncOpenAI` on the primary route only, SDK defaults "
        "(`max_retries=2`, which honours retry-after up to 60 s). No fallback, no limiter. "
        "The async client uses the SDK's `DefaultAioHttpClient`, as the openai docs advise for "
        "concurrency and as the engine does, so the overhead ratio compares like with like."
    ),
    "engine": (
        "`ResilientLLM(providers=[openai, anthropic, gemini], retry=RetryPolicy(max_retries="
        "retries), breaker=BreakerPolicy(failure_threshold=breaker_failures, cooldown=cooldown), "
        "timeout=deadline)`; a quota'd route gets `RateLimit(requests_per_minute, "
        "tokens_per_minute)` equal to the provider's quota."
    ),
    "lc_resilient": (
        "`ChatResilientLLM` with exactly the engine's arguments, called through `invoke`/`ainvoke`."
    ),
    "engine_one": (
        "The engine's arguments with the OpenAI route alone: nothing to fail over to, so no "
        "hedge and a whole reply asked for as the plain request (with a second route a reply "
        "is read through the stream, its first chunk a sign of life)."
    ),
    "lc_resilient_one": "`ChatResilientLLM` with `engine_one`'s arguments.",
    "litellm": (
        "`Router(model_list=[one deployment per provider with api_base on the chaos server; "
        "rpm/tpm on a quota'd one], fallbacks=[{openai: [anthropic, gemini]}], "
        "num_retries=retries, allowed_fails=breaker_failures, cooldown_time=cooldown, "
        "optional_pre_call_checks=['enforce_model_rate_limits'] when a route has limits)`; "
        "`litellm.suppress_debug_info=True` and logging at CRITICAL as its load-test docs do; "
        "offline mode and the local cost map, so nothing leaves loopback."
    ),
    "lc_peer": (
        "`ChatOpenAI(max_retries=0)`, `ChatAnthropic(max_retries=0)`, "
        "`ChatGoogleGenerativeAI(max_retries=1)` (its docs: 1 means no retry), each "
        "`.with_retry(stop_after_attempt=retries + 1)` (default exponential jitter), then "
        "`primary.with_fallbacks([anthropic, gemini])`; SDK retries off as LangChain's fallback "
        "docs advise. A quota'd route gets `InMemoryRateLimiter(requests_per_second=rpm / 60, "
        "check_every_n_seconds=0.1, max_bucket_size=1)` (it has no token limit)."
    ),
}


def _messages(prompt: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": prompt}]


class _Raw:
    """The floor: the openai SDK alone on the primary route. The async client rides the
    SDK's aiohttp transport (``aiohttp=True``, the engine's default) or its default httpx
    one; the sync client is the SDK's default either way, as the engine's is."""

    aiohttp = True

    def __init__(self, setup: Setup) -> None:
        import openai

        primary = setup.routes[0]
        assert primary.kind == "openai", "the raw SDK floor is the OpenAI SDK"
        self._openai = openai
        self._url = primary.url
        self._model = MODELS["openai"]
        self._sync = openai.OpenAI(base_url=primary.url, api_key=API_KEY)
        self._async: Any = None

    def _async_client(self) -> Any:
        # Made on the running loop: the aiohttp transport's session belongs to it.
        if self._async is None:
            transport = getattr(self._openai, "DefaultAioHttpClient", None)
            use = transport is not None and self.aiohttp
            self._async = self._openai.AsyncOpenAI(
                base_url=self._url,
                api_key=API_KEY,
                http_client=transport() if use else None,
            )
        return self._async

    def call(self, prompt: str, max_tokens: int) -> str:
        reply = self._sync.chat.completions.create(
            model=self._model, messages=_messages(prompt), max_tokens=max_tokens
        )
        return reply.choices[0].message.content or ""

    async def acall(self, prompt: str, max_tokens: int) -> str:
        reply = await self._async_client().chat.completions.create(
            model=self._model, messages=_messages(prompt), max_tokens=max_tokens
        )
        return reply.choices[0].message.content or ""

    def close(self) -> None:
        self._sync.close()


class _RawHttpx(_Raw):
    aiohttp = False


def _engine_kwargs(setup: Setup) -> dict[str, Any]:
    from resilient_llm import BreakerPolicy, Provider, RateLimit, RetryPolicy

    # The adapters import their SDK on a route's first call; importing them now keeps that
    # one-off cost out of the timed calls, as the peers import everything up front.
    for route in setup.routes:
        __import__(f"resilient_llm.providers.{route.kind}.adapter")
    providers = [
        Provider(
            route.kind,  # type: ignore[arg-type]
            MODELS[route.kind],
            base_url=route.url,
            api_key=API_KEY,
            rate_limit=(
                RateLimit(requests_per_minute=route.rpm, tokens_per_minute=route.tpm)
                if route.rpm or route.tpm
                else None
            ),
        )
        for route in setup.routes
    ]
    policy = setup.policy
    return {
        "providers": providers,
        "retry": RetryPolicy(max_retries=policy.retries),
        "breaker": BreakerPolicy(
            failure_threshold=policy.breaker_failures, cooldown=policy.cooldown
        ),
        "timeout": policy.deadline,
    }


REDIS_URL_VARIABLE = "RLLM_BENCH_REDIS_URL"
"""Where ``engine_redis`` keeps its route state: set by the orchestrator (``floors.py``),
which starts the redis-server."""


class _Engine:
    def __init__(self, setup: Setup) -> None:
        from resilient_llm import ResilientLLM

        self._llm = ResilientLLM(**_engine_kwargs(setup))

    def call(self, prompt: str, max_tokens: int) -> str:
        return self._llm.chat(prompt, max_tokens=max_tokens).content

    async def acall(self, prompt: str, max_tokens: int) -> str:
        return (await self._llm.achat(prompt, max_tokens=max_tokens)).content

    def close(self) -> None:
        self._llm.close()


class _EngineRedis(_Engine):
    """The engine with its route state in a real Redis (``RedisState``), not in memory."""

    def __init__(self, setup: Setup) -> None:
        from resilient_llm import ResilientLLM
        from resilient_llm.state.redis import RedisState

        url = os.environ[REDIS_URL_VARIABLE]
        state = RedisState(url, prefix=f"bench{os.getpid()}")
        self._llm = ResilientLLM(**_engine_kwargs(setup), state=state)


def _alone(setup: Setup) -> Setup:
    """The same setup with its first (the OpenAI) route alone."""
    return Setup(setup.routes[:1], setup.policy, setup.max_tokens)


class _EngineOne(_Engine):
    def __init__(self, setup: Setup) -> None:
        super().__init__(_alone(setup))


def _text(message: Any) -> str:
    content = message.content
    return content if isinstance(content, str) else str(content)


class _LCResilient:
    def __init__(self, setup: Setup) -> None:
        from langchain_resilient import ChatResilientLLM

        self._model = ChatResilientLLM(**_engine_kwargs(setup))

    def call(self, prompt: str, max_tokens: int) -> str:
        return _text(self._model.invoke(prompt, max_tokens=max_tokens))

    async def acall(self, prompt: str, max_tokens: int) -> str:
        return _text(await self._model.ainvoke(prompt, max_tokens=max_tokens))

    def close(self) -> None:
        self._model.resilient_engine.close()


class _LCResilientOne(_LCResilient):
    def __init__(self, setup: Setup) -> None:
        super().__init__(_alone(setup))


class _LCOpenAI:
    """LangChain's own ``ChatOpenAI`` on the primary route: the floor for ChatResilientLLM.
    Its async client on the SDK's aiohttp transport, as the engine's; SDK retries as
    default, as the raw floor's."""

    def __init__(self, setup: Setup) -> None:
        import openai
        from langchain_openai import ChatOpenAI

        primary = setup.routes[0]
        assert primary.kind == "openai", "ChatOpenAI's floor is the OpenAI route"
        self._make = lambda: ChatOpenAI(
            model=MODELS["openai"],
            base_url=primary.url,
            api_key=API_KEY,
            http_async_client=openai.DefaultAioHttpClient(),
        )
        self._model = self._make()
        self._async: Any = None

    def call(self, prompt: str, max_tokens: int) -> str:
        return _text(self._model.invoke(prompt, max_tokens=max_tokens))

    async def acall(self, prompt: str, max_tokens: int) -> str:
        # Made on the running loop: the aiohttp transport's session belongs to it.
        if self._async is None:
            self._async = self._make()
        return _text(await self._async.ainvoke(prompt, max_tokens=max_tokens))

    def close(self) -> None:
        pass


def quiet_litellm() -> None:
    """Offline, no telemetry, no debug chatter: set before litellm is imported."""
    os.environ.setdefault("LITELLM_OFFLINE_MODE", "true")
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    os.environ.setdefault("LITELLM_DISABLE_LATEST_RELEASE_CHECK", "true")


_LITELLM_PREFIX = {"openai": "openai", "anthropic": "anthropic", "gemini": "gemini"}


class _LiteLLM:
    def __init__(self, setup: Setup) -> None:
        quiet_litellm()
        import litellm
        from litellm import Router

        litellm.suppress_debug_info = True
        litellm.set_verbose = False
        for name in ("LiteLLM", "LiteLLM Router", "LiteLLM Proxy", "litellm"):
            logging.getLogger(name).setLevel(logging.CRITICAL)
        model_list: list[dict[str, Any]] = []
        for route in setup.routes:
            # LiteLLM appends /models/...:generateContent to a Gemini api_base itself.
            base = route.url + "/v1beta" if route.kind == "gemini" else route.url
            params: dict[str, Any] = {
                "model": f"{_LITELLM_PREFIX[route.kind]}/{MODELS[route.kind]}",
                "api_base": base,
                "api_key": API_KEY,
            }
            deployment: dict[str, Any] = {"model_name": route.kind, "litellm_params": params}
            if route.rpm:
                deployment["rpm"] = route.rpm
            if route.tpm:
                deployment["tpm"] = route.tpm
            model_list.append(deployment)
        policy = setup.policy
        kinds = [r.kind for r in setup.routes]
        options: dict[str, Any] = {}
        if any(r.rpm or r.tpm for r in setup.routes):
            options["optional_pre_call_checks"] = ["enforce_model_rate_limits"]
        self._primary = kinds[0]
        self._router = Router(
            model_list=model_list,
            fallbacks=[{kinds[0]: kinds[1:]}] if len(kinds) > 1 else [],
            num_retries=policy.retries,
            allowed_fails=policy.breaker_failures,
            cooldown_time=policy.cooldown,
            **options,
        )

    def call(self, prompt: str, max_tokens: int) -> str:
        reply: Any = self._router.completion(
            model=self._primary, messages=_messages(prompt), max_tokens=max_tokens
        )
        return str(reply.choices[0].message.content or "")

    async def acall(self, prompt: str, max_tokens: int) -> str:
        reply: Any = await self._router.acompletion(
            model=self._primary, messages=_messages(prompt), max_tokens=max_tokens
        )
        return str(reply.choices[0].message.content or "")

    def close(self) -> None:
        pass


_MAX_TOKENS = {"gemini": "max_output_tokens"}


class _LCPeer:
    def __init__(self, setup: Setup) -> None:
        from langchain_anthropic import ChatAnthropic
        from langchain_core.rate_limiters import InMemoryRateLimiter
        from langchain_google_genai import ChatGoogleGenerativeAI
        from langchain_openai import ChatOpenAI

        self._models: list[tuple[str, Any]] = []
        for route in setup.routes:
            limiter = (
                InMemoryRateLimiter(
                    requests_per_second=route.rpm / 60,
                    check_every_n_seconds=0.1,
                    max_bucket_size=1,
                )
                if route.rpm
                else None
            )
            common: dict[str, Any] = {
                "model": MODELS[route.kind],
                "base_url": route.url,
                "api_key": API_KEY,
                "rate_limiter": limiter,
            }
            model: Any
            if route.kind == "openai":
                model = ChatOpenAI(max_retries=0, **common)
            elif route.kind == "anthropic":
                model = ChatAnthropic(max_retries=0, **common)
            else:
                model = ChatGoogleGenerativeAI(max_retries=1, **common)
            self._models.append((route.kind, model))
        self._attempts = setup.policy.retries + 1
        self._chains: dict[int, Any] = {}

    def _chain(self, max_tokens: int) -> Any:
        # max_tokens is bound per model because Gemini's model rejects OpenAI's name for it.
        chain = self._chains.get(max_tokens)
        if chain is None:
            tries = [
                model.bind(**{_MAX_TOKENS.get(kind, "max_tokens"): max_tokens}).with_retry(
                    stop_after_attempt=self._attempts
                )
                for kind, model in self._models
            ]
            chain = tries[0].with_fallbacks(tries[1:]) if len(tries) > 1 else tries[0]
            self._chains[max_tokens] = chain
        return chain

    def call(self, prompt: str, max_tokens: int) -> str:
        return _text(self._chain(max_tokens).invoke(prompt))

    async def acall(self, prompt: str, max_tokens: int) -> str:
        return _text(await self._chain(max_tokens).ainvoke(prompt))

    def close(self) -> None:
        pass


SYSTEMS: dict[str, Callable[[Setup], System]] = {
    "raw": _Raw,
    "engine": _Engine,
    "engine_one": _EngineOne,
    "lc_resilient": _LCResilient,
    "lc_resilient_one": _LCResilientOne,
    "litellm": _LiteLLM,
    "lc_peer": _LCPeer,
    "raw_httpx": _RawHttpx,
    "lc_openai": _LCOpenAI,
    "engine_redis": _EngineRedis,
}
PEERS = ("raw", "engine", "lc_resilient", "litellm", "lc_peer")
"""What ``run.py`` compares in every scenario; the others are floors for ``floors.py``."""


def build(name: str, setup: Setup) -> System:
    return SYSTEMS[name](setup)
