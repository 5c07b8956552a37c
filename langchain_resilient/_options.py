"""``ChatResilientLLM``'s engine fields, derived from the engine's options, and its engine.

Each engine option (``resilient_llm._options.OPTION_DEFAULTS``) is a field of the same
name and default, so a new engine option is a field here without an edit. The fields are
typed ``Any``: the engine's validators check the values, with the same message as
``ResilientLLM(...)`` gives, naming ``ChatResilientLLM.<option>``. Two differ by design:
``cache`` is LangChain's own field, so the engine's is ``response_cache``; and
``providers`` may be left out when an ``engine=`` is shared.

An unknown keyword raises, naming close matches, as LlamaIndex's ``ResilientLLM`` does;
LangChain's ``rate_limiter`` is refused, as LlamaIndex's is (see
:func:`resilient_llm._options.refuse_rate_limiter` for why).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from pydantic import Field, create_model, field_validator, model_validator

from resilient_llm import ResilientLLM, RetryPolicy
from resilient_llm._options import (
    OPTION_DEFAULTS,
    REQUIRED,
    EngineOptions,
    check_known,
    refuse_rate_limiter,
)

from . import _callbacks
from ._runs import NamedRunModel

__all__ = ["FIELD_OF_OPTION", "EngineFields", "build_engine"]

FIELD_OF_OPTION = {name: "response_cache" if name == "cache" else name for name in OPTION_DEFAULTS}
"""Each engine option's field name here."""
_OPTION_OF_FIELD = {field: option for option, field in FIELD_OF_OPTION.items()}


class _Checked(NamedRunModel):
    """Unknown keywords and a LangChain ``rate_limiter`` are errors, as in LlamaIndex."""

    @model_validator(mode="before")
    @classmethod
    def _known_options(cls, data: Any) -> Any:
        if isinstance(data, dict):
            known = set(cls.model_fields)
            known |= {f.alias for f in cls.model_fields.values() if f.alias}
            check_known(cls.__name__, data, sorted(known))
        return data

    @field_validator("rate_limiter", mode="before")
    @classmethod
    def _no_rate_limiter(cls, value: object) -> None:
        refuse_rate_limiter(cls.__name__, "LangChain", value)
        return None

    def __setattr__(self, name: str, value: Any) -> None:
        # Assignment is not validated; a limiter set later is refused too.
        if name == "rate_limiter":
            refuse_rate_limiter(type(self).__name__, "LangChain", value)
        super().__setattr__(name, value)


if TYPE_CHECKING:
    EngineFields = _Checked
else:
    EngineFields = create_model(
        "EngineFields",
        __base__=_Checked,
        __module__=__name__,
        **{
            FIELD_OF_OPTION[name]: (
                Any,
                Field(default=None if default is REQUIRED else default, exclude=True),
            )
            for name, default in OPTION_DEFAULTS.items()
        },
    )


def build_engine(model: Any, engine: ResilientLLM | None, max_retries: int | None) -> ResilientLLM:
    """The engine of ``model``: ``engine`` as given, else one built from the fields set."""
    owner = type(model).__name__
    given = {
        _OPTION_OF_FIELD[f]: getattr(model, f)
        for f in model.model_fields_set
        if f in _OPTION_OF_FIELD
    }
    if engine is not None:
        # The fields set, not their values: max_retries=0 or seed=0 given with an engine
        # would otherwise be silently ignored.
        clash = sorted(FIELD_OF_OPTION[o] for o in given)
        clash += ["max_retries"] if max_retries is not None else []
        if clash:
            raise ValueError(
                f"{owner}: pass either engine= or {clash}, not both "
                "(the engine's own settings apply)"
            )
        _callbacks.attach(engine)
        return engine
    if given.get("providers") is None:
        raise ValueError(f"{owner} needs providers=[Provider(...)] or engine=")
    given["retry"] = _retry_policy(owner, given.get("retry"), max_retries)
    options = EngineOptions.from_kwargs(given, owner=owner)
    # Engine events reach the LangChain run in progress, besides any handler given.
    options = dataclasses.replace(options, on_event=(*options.handlers, _callbacks.forward))
    return ResilientLLM.from_options(options)


def _retry_policy(owner: str, retry: Any, max_retries: int | None) -> Any:
    if max_retries is None:
        return retry
    if retry is None:
        return RetryPolicy(max_retries=max_retries)
    if isinstance(retry, RetryPolicy) and retry.max_retries != max_retries:
        raise ValueError(
            f"{owner}: max_retries={max_retries} contradicts "
            f"retry=RetryPolicy(max_retries={retry.max_retries})"
        )
    return retry
