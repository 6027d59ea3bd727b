"""The assistant's tools: Anthropic-shaped JSON schemas and one `execute` entry point.

`execute` is what both the teacher traces and the student's evaluation call, so it must behave like a
well-mannered API: every problem (unknown tool, malformed arguments, illegal ticker, bad dates...)
comes back as `{"error": "..."}` naming the argument, and it never raises.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import jsonschema

from distill.workbench import backtest, docs
from distill.workbench.prices import END, START
from distill.workbench.registry import MODELS, OPTIONABLE, TICKERS

_DATE = {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}$"}
_BPS = {"type": "number", "minimum": 0, "maximum": backtest.MAX_COST_BPS}


def _schema(properties: dict | None = None, required: tuple[str, ...] = ()) -> dict:
    """A closed object schema: a misspelt argument is an error, not silently ignored."""
    return {"type": "object", "properties": properties or {}, "required": list(required),
            "additionalProperties": False}


TOOLS: list[dict] = [
    {
        "name": "list_models",
        "description": "List the workbench's models: id, name, kind (ml or rule) and whether each is "
                       "an options strategy.",
        "input_schema": _schema(),
    },
    {
        "name": "get_model_info",
        "description": "Full record of one model: data source, parameters, validation method "
                       "(train/test split or full-period backtest) and legal tickers.",
        "input_schema": _schema({"model_id": {"type": "string", "enum": list(MODELS),
                                              "description": "Model id, as returned by list_models."}},
                                ("model_id",)),
    },
    {
        "name": "run_backtest",
        "description": (
            f"Backtest a model on one ticker of the synthetic daily price set ({START}..{END}; "
            f"tickers {', '.join(TICKERS)}; covered_call only on {', '.join(OPTIONABLE)}). Returns "
            "total_return, cagr, sharpe, max_drawdown, n_trades, win_rate and fees_paid. The ML model "
            "reports the out-of-sample last 20% of the window only; rule models the full period. "
            f"The window needs at least {backtest.MIN_BARS} trading days."
        ),
        "input_schema": _schema(
            {
                "model_id": {"type": "string", "enum": list(MODELS), "description": "Model id."},
                "ticker": {"type": "string", "enum": list(TICKERS), "description": "Ticker symbol."},
                "start": {**_DATE, "description": "First day of the window, YYYY-MM-DD."},
                "end": {**_DATE, "description": "Last day of the window, YYYY-MM-DD."},
                "fee_bps": {**_BPS, "default": 1.0,
                            "description": "Fee in basis points of traded notional (default 1)."},
                "slippage_bps": {**_BPS, "default": 2.0,
                                 "description": "Slippage in basis points of traded notional (default 2)."},
            },
            ("model_id", "ticker", "start", "end"),
        ),
    },
    {
        "name": "search_docs",
        "description": "Search the methodology documents (data, backtest and execution model, fees and "
                       "slippage, ML validation, options pricing); returns the best-matching snippets.",
        "input_schema": _schema({"query": {"type": "string", "minLength": 1,
                                           "description": "What to look for, in a few words."}},
                                ("query",)),
    },
]
TOOL_NAMES: tuple[str, ...] = tuple(t["name"] for t in TOOLS)
_VALIDATORS = {t["name"]: jsonschema.Draft202012Validator(t["input_schema"]) for t in TOOLS}


def _list_models() -> list[dict]:
    """The short listing; get_model_info has the rest."""
    return [{"model_id": m.id, "name": m.name, "kind": m.kind, "options_strategy": m.options}
            for m in MODELS.values()]


def _model_info(model_id: str) -> dict:
    """The registry record without its prose description: every tool output is read by a language
    model, and on the CPU default each token of it is a training and prediction step."""
    return {k: v for k, v in MODELS[model_id].info().items() if k != "description"}


PERCENT_FIELDS = ("total_return", "cagr", "max_drawdown", "win_rate")


def _backtest(**arguments) -> dict:
    """The engine's result written as an answer states it: percentages with one decimal ("97.1%"), the
    Sharpe ratio with two ("1.90"), costs in dollars ("$4,879.78"). A model then cites a figure by
    copying it, never by converting 0.9713 to 97.1% (which a small student gets wrong); grounding
    reads either form. The model id is left out: the caller just sent it."""
    result = backtest.run_backtest(**arguments)
    shown = {k: v for k, v in result.items() if k != "model_id"}
    shown.update({k: f"{result[k] * 100:.1f}%" for k in PERCENT_FIELDS})
    shown.update(sharpe=f"{result['sharpe']:.2f}", fees_paid=f"${result['fees_paid']:,.2f}",
                 fee_bps=f"{result['fee_bps']:g}", slippage_bps=f"{result['slippage_bps']:g}")
    return shown


def _search_docs(query: str) -> list[dict]:
    """Best-matching snippets with the document they come from (the answer cites it); the BM25 score
    and section title are left out for the same reason as above."""
    return [{"doc": hit["doc"], "snippet": hit["snippet"]} for hit in docs.search_docs(query)]


_HANDLERS: dict[str, Callable[..., object]] = {
    "list_models": _list_models,
    "get_model_info": _model_info,
    "run_backtest": _backtest,
    "search_docs": _search_docs,
}


def _error(message: str) -> str:
    """The one shape every failure takes."""
    return json.dumps({"error": message})


def _schema_error(arguments: dict, validator: jsonschema.protocols.Validator) -> str | None:
    """The first schema violation, as a sentence that starts with the argument it concerns.

    A failed `required` or `additionalProperties` already quotes the argument (its path is empty);
    every other failure is prefixed with its path. Date patterns get a readable message instead of
    the regex.
    """
    errors = sorted(validator.iter_errors(arguments), key=lambda e: list(e.path))
    if not errors:
        return None
    e = errors[0]
    message = f"{e.instance!r} is not an ISO date (YYYY-MM-DD)" if e.validator == "pattern" else e.message
    return f"{'.'.join(map(str, e.path))}: {message}" if e.path else message


def execute(name: str, arguments: dict | str | None = None) -> str:
    """Run one tool call and return its JSON text; problems become {"error": ...}, never exceptions.

    `arguments` may be a dict or its JSON text (models sometimes emit the latter); None means {}.
    """
    if not isinstance(name, str) or name not in _HANDLERS:
        return _error(f"name: unknown tool {name!r}; known tools: {', '.join(TOOL_NAMES)}")
    if arguments is None:
        arguments = {}
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except json.JSONDecodeError as exc:
            return _error(f"{name}: arguments: not valid JSON ({exc.msg})")
    if not isinstance(arguments, dict):
        return _error(f"{name}: arguments: must be a JSON object, got {type(arguments).__name__}")
    problem = _schema_error(arguments, _VALIDATORS[name])
    if problem:
        return _error(f"{name}: {problem}")
    try:
        return json.dumps(_HANDLERS[name](**arguments))
    except ValueError as exc:  # the engine's and search's own checks, already naming the argument
        return _error(f"{name}: {exc}")
    except Exception as exc:  # noqa: BLE001 - the contract is "never raises"; keep the cause visible
        return _error(f"{name}: internal error ({type(exc).__name__}: {exc})")


def is_error(output: str) -> bool:
    """Whether a tool output is an error result; text that is not JSON at all counts as one too."""
    try:
        parsed = json.loads(output)
    except (TypeError, json.JSONDecodeError):
        return True
    return isinstance(parsed, dict) and "error" in parsed
