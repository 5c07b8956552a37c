"""``with_structured_output`` for ``ChatResilientLLM``: which options, which parser.

Each method becomes engine options the model binds (a forced tool, a response schema or
JSON mode) and a LangChain output parser; ``include_raw`` wraps both the way
``BaseChatModel.with_structured_output`` does, keeping a parsing error instead of raising.
"""

from __future__ import annotations

from operator import itemgetter
from typing import Any, Literal

from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.output_parsers import JsonOutputParser, PydanticOutputParser
from langchain_core.output_parsers.base import OutputParserLike
from langchain_core.output_parsers.openai_tools import (
    JsonOutputKeyToolsParser,
    PydanticToolsParser,
)
from langchain_core.runnables import Runnable, RunnableMap, RunnablePassthrough
from langchain_core.utils.function_calling import convert_to_json_schema, convert_to_openai_tool
from langchain_core.utils.pydantic import is_basemodel_subclass
from pydantic import BaseModel

__all__ = ["structured_output"]


def structured_output(
    model: BaseChatModel,
    schema: dict[str, Any] | type,
    method: Literal["function_calling", "json_schema", "json_mode"],
    include_raw: bool,
    strict: bool | None,
) -> Runnable[LanguageModelInput, dict[str, Any] | BaseModel]:
    is_pydantic = isinstance(schema, type) and is_basemodel_subclass(schema)
    trace = {
        "ls_structured_output_format": {
            "kwargs": {"method": method, "strict": strict},
            "schema": schema,
        }
    }
    parser: OutputParserLike[Any]
    if method == "function_calling":
        name = convert_to_openai_tool(schema)["function"]["name"]
        llm = model.bind_tools([schema], tool_choice=name, strict=strict, **trace)
        if is_pydantic:
            parser = PydanticToolsParser(tools=[schema], first_tool_only=True)  # type: ignore[list-item]
        else:
            parser = JsonOutputKeyToolsParser(key_name=name, first_tool_only=True)
    elif method in ("json_schema", "json_mode"):
        if method == "json_schema":
            llm = model.bind(response_schema=convert_to_json_schema(schema), **trace)
        else:
            llm = model.bind(json_mode=True, **trace)
        parser = (
            PydanticOutputParser(pydantic_object=schema)  # type: ignore[arg-type]
            if is_pydantic
            else JsonOutputParser()
        )
    else:
        raise ValueError(
            f"method must be 'function_calling', 'json_schema' or 'json_mode', got {method!r}"
        )
    if not include_raw:
        return llm | parser
    parse = RunnablePassthrough.assign(
        parsed=itemgetter("raw") | parser, parsing_error=lambda _: None
    )
    no_parse = RunnablePassthrough.assign(parsed=lambda _: None)
    return RunnableMap(raw=llm) | parse.with_fallbacks([no_parse], exception_key="parsing_error")
