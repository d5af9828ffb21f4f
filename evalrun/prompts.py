"""Prompts for the chat target: the messages (templates) and request settings one call is made
from, where they came from, and rendering them for an item.

A prompt comes from the eval file (``messages:``), from a local file (``prompts/x.yaml``:
``messages`` + ``params`` + optional ``model``, versioned in git) or from Langfuse
(``langfuse://name@label`` / ``@version``, see :mod:`evalrun.langfuse.prompts`).

Two template syntaxes: eval-file and local-file messages are Jinja2 in a sandbox; Langfuse
prompts use Langfuse's own ``{{variable}}`` (a dotted name, nothing else). Both see the item's
``input``, ``metadata`` and ``item_id``, and the input's fields by name when the input is a
mapping (so ``{{question}}`` means ``input.question``). A variable an item lacks is an error,
found for every item before any call.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evalrun._json import as_text
from evalrun._yaml import Located, load_located, read_text
from evalrun.errors import UsageError
from evalrun.records import Item

#: request parameters a prompt's config may supply (Langfuse configs hold other things too)
CONFIG_PARAMS = ("temperature", "top_p", "max_tokens", "max_completion_tokens", "presence_penalty",
                 "frequency_penalty", "stop", "seed", "response_format", "reasoning_effort", "logit_bias",
                 "tools", "tool_choice")
_LANGFUSE_VAR = re.compile(r"\{\{\s*([A-Za-z_][\w.]*)\s*\}\}")
#: the roles a prompt's messages may have (an OpenAI-compatible chat request's own)
ROLES = ("system", "developer", "user", "assistant")
_NUMBER_PARAMS = ("temperature", "top_p", "presence_penalty", "frequency_penalty")
_COUNT_PARAMS = ("max_tokens", "max_completion_tokens")


def role_problem(role: Any) -> str | None:
    """Why ``role`` cannot be a message's role, or None."""
    if role in ROLES:
        return None
    return f"role must be one of {', '.join(ROLES)} (got {role!r})"


def numbers_from_text(params: Any) -> Any:
    """``params`` with a numeric setting written as text (what ``${TEMPERATURE:-0.2}`` expands
    to) as the number it spells; any other value as it is, for :func:`params_problem` to judge."""
    if not isinstance(params, dict):
        return params
    out = dict(params)
    for key, value in params.items():
        if key in _NUMBER_PARAMS or key in _COUNT_PARAMS or key == "seed":
            if isinstance(value, str):
                text = value.strip()
                try:
                    out[key] = int(text)
                except ValueError:
                    try:
                        out[key] = float(text)
                    except ValueError:
                        pass
    return out


def params_problem(params: Any) -> tuple[str | None, str] | None:
    """(key, why) for the first request setting that cannot be sent as written (wherever it
    comes from: the eval file, a prompt file, a Langfuse prompt's config), else None: a
    temperature that is not a finite number, a token count that is not a whole number >= 1,
    any value JSON cannot carry (NaN, infinity, a value that contains itself)."""
    import json
    import math

    if not isinstance(params, dict):
        return None, "must be a mapping of request settings"
    for key, value in params.items():
        if not isinstance(key, str):
            return str(key), "setting names are text"
        is_number = isinstance(value, int | float) and not isinstance(value, bool)
        if key in _NUMBER_PARAMS and not (is_number and math.isfinite(value)):
            return key, f"must be a finite number (got {value!r})"
        if key in _COUNT_PARAMS and not (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
            return key, f"must be a whole number >= 1 (got {value!r})"
        if key == "seed" and not (isinstance(value, int) and not isinstance(value, bool)):
            return key, f"must be a whole number (got {value!r})"
        try:
            json.dumps(value, allow_nan=False)
        except (ValueError, TypeError, RecursionError):
            return key, "cannot be sent as JSON (NaN, infinity, or a value that contains itself)"
    return None


@dataclass
class Prompt:
    """Messages to render plus settings; ``locate`` turns a problem in message ``i`` into a
    UsageError that points at where the message was written."""

    messages: list[dict[str, str]]
    syntax: str  # "jinja" | "langfuse"
    model: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    #: name, version, labels and source, as the manifest, summary and reports show them
    info: dict[str, Any] | None = None
    locate: Any = None  # (message index, template line or None) -> (file, line)

    def compile(self) -> list[Any]:
        """Parse every template now, so a syntax error stops the run before any call."""
        if self.syntax == "langfuse":
            return [m["content"] for m in self.messages]
        env = jinja_env()
        out = []
        for i, m in enumerate(self.messages):
            try:
                out.append(compile_template(env, m["content"])[0])
            except TemplateIssue as e:
                raise self._error(i, f"template error: {e.message}", e.line) from None
        return out

    def render(self, compiled: list[Any], item: Item) -> list[dict[str, str]]:
        """The messages for ``item``; a variable it lacks is a UsageError naming the item."""
        ctx = variables(item)
        out = []
        for i, (m, tpl) in enumerate(zip(self.messages, compiled, strict=True)):
            if self.syntax == "langfuse":
                text = _compile_langfuse(tpl, ctx, lambda name, i=i: self._error(
                    i, f"variable '{name}' is not in item {item.id}'s input"))
            else:
                try:
                    text = tpl.render(ctx)
                except Exception as e:  # undefined, sandbox refusal, a type error in an expression...
                    raise self._error(i, f"template error for item {item.id}: {e}", _template_line(e)) from None
            out.append({"role": m["role"], "content": text})
        return out

    def _error(self, i: int, message: str, line: int | None = None) -> UsageError:
        if self.locate is None:
            return UsageError(message)
        return self.locate(i, line, message)


def describe(info: dict[str, Any] | None) -> str:
    """``qa v4 (production, latest)`` / ``prompts/x.yaml`` for headers; '' without a prompt."""
    if not info:
        return ""
    text = str(info.get("name"))
    if info.get("version") is not None:
        text += f" v{info['version']}"
    if info.get("labels"):
        text += f" ({', '.join(map(str, info['labels']))})"
    if info.get("file"):
        text += f" ({' '.join(str(x) for x in (info['file'], info.get('sha256')) if x)})"
    return text


def variables(item: Item) -> dict[str, Any]:
    base = dict(item.input) if isinstance(item.input, dict) else {}
    return {**base, "input": item.input, "metadata": item.metadata or {}, "item_id": item.id}


def _compile_langfuse(text: str, ctx: dict[str, Any], missing: Any) -> str:
    def sub(m: re.Match[str]) -> str:
        cur: Any = ctx
        for part in m.group(1).split("."):
            if isinstance(cur, dict) and part in cur:
                cur = cur[part]
            else:
                raise missing(m.group(1))
        return cur if isinstance(cur, str) else as_text(cur)

    return _LANGFUSE_VAR.sub(sub, text)


class TemplateIssue(Exception):
    """Why a template cannot run, found before any call: ``message`` names what (with the
    template's own wording), ``line`` is the line within the template."""

    def __init__(self, message: str, line: int, kind: str) -> None:
        super().__init__(message)
        self.message, self.line, self.kind = message, line, kind  # syntax | unknown | error | unavailable


def compile_template(env: Any, text: str) -> tuple[Any, Any]:
    """``(template, ast)`` of ``text`` in ``env``, or :class:`TemplateIssue` for what would fail
    only when it runs (on some items, in some branch): a syntax error, a filter or test Jinja2
    does not know, what its code generation refuses (a macro naming an argument twice), or an
    include / extends / import (a template here is one text, with nothing to load)."""
    from jinja2 import TemplateSyntaxError, nodes

    try:
        ast = env.parse(text)
    except TemplateSyntaxError as e:
        raise TemplateIssue(e.message or "syntax error", e.lineno or 1, "syntax") from None
    for node in ast.find_all((nodes.Filter, nodes.Test)):
        known = env.filters if isinstance(node, nodes.Filter) else env.tests
        if node.name not in known:
            what = "filter" if isinstance(node, nodes.Filter) else "test"
            raise TemplateIssue(f"unknown {what} '{node.name}'", node.lineno, "unknown")
    try:  # compiles the template: TemplateAssertionError and the like surface here
        template = env.from_string(text)
    except TemplateSyntaxError as e:
        raise TemplateIssue(e.message or "template error", e.lineno or 1, "error") from None
    except SyntaxError as e:  # Jinja2 made Python it cannot compile (a macro naming an argument twice)
        raise TemplateIssue(e.msg, 1, "error") from None
    for stmt in ast.find_all((nodes.Extends, nodes.Include, nodes.Import, nodes.FromImport)):
        raise TemplateIssue(f"'{type(stmt).__name__.lower()}' is not available", stmt.lineno, "unavailable")
    return template, ast


def jinja_env(finalize: Any = None) -> Any:
    """The sandboxed environment every template (chat prompts, judge rubrics) renders in."""
    from jinja2 import StrictUndefined
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    # StrictUndefined: a missing field is an error, not an empty string sent to a paid model
    return ImmutableSandboxedEnvironment(undefined=StrictUndefined, keep_trailing_newline=True, autoescape=False,
                                         finalize=finalize)


def _template_line(e: Exception) -> int | None:
    tb = e.__traceback__
    line = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


_BLOCK_START = re.compile(r"[|>][+-]?\d*[+-]?\s*(#.*)?$")


def located_messages(located: Located, path: tuple[Any, ...], text: str) -> Any:
    """A ``locate`` for messages at ``path`` in ``located`` (parsed from ``text``): the file line
    of the template line at fault in a block scalar (its text starts on the line after its ``|``
    or ``>``), else message i's content line and the template line."""
    lines = text.splitlines()

    def locate(i: int, line: int | None, message: str) -> UsageError:
        at, col = located.where(path + (i, "content", "__value__"))
        if at is not None and line:
            if 0 < at <= len(lines) and _BLOCK_START.search(lines[at - 1]):
                at, col = at + line, None
            elif line > 1:  # a quoted scalar's lines need not be the file's (escapes, folding)
                message += f" (line {line} of the template)"
        return UsageError(message, located.file, at, col)

    return locate


def load_prompt_file(path: Path, shown: str) -> Prompt:
    """A local prompt file: ``messages`` (Jinja2), optional ``params`` and ``model``."""
    text = read_text(path, "prompt file")
    located = load_located(text, shown)
    data = located.data
    if not isinstance(data, dict):
        raise located.error("a prompt file is a mapping with messages: (and optional params:, model:)")
    unknown = set(data) - {"messages", "params", "model", "name", "description"}
    if unknown:
        key = sorted(unknown)[0]
        raise located.error(f"unknown key '{key}'; allowed: description, messages, model, name, params", (key,))
    messages = data.get("messages")
    if not isinstance(messages, list) or not messages:
        raise located.error("messages: needs a list of {role, content}", ("messages",))
    for i, m in enumerate(messages):
        if not (isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)
                and set(m) <= {"role", "content"}):
            raise located.error("each message is {role: ..., content: ...} with text values", ("messages", i))
        if role_problem(m["role"]):
            raise located.error(f"message {i + 1}: {role_problem(m['role'])}", ("messages", i, "role", "__value__"))
    params = data.get("params") or {}
    bad = params_problem(params)
    if bad is not None:
        key, why = bad
        raise located.error(f"params{'.' + key if key else ''}: {why}", ("params",) + ((key,) if key else ()))
    model = data.get("model")
    if model is not None and not isinstance(model, str):
        raise located.error("model: must be a string", ("model", "__value__"))
    from evalrun.store import content_key

    info: dict[str, Any] = {"name": str(data.get("name") or path.stem), "version": None, "labels": [], "source": "file",
            "file": shown, "sha256": content_key(data)[:12]}
    return Prompt([dict(m) for m in messages], "jinja", model, dict(params), info,
                  located_messages(located, ("messages",), text))


def prompt_file_data(messages: list[dict[str, str]], model: str | None, params: dict[str, Any],
                     name: str | None = None) -> dict[str, Any]:
    """The YAML document of a local prompt file (what ``evalrun prompts pull`` writes)."""
    doc: dict[str, Any] = {}
    if name:
        doc["name"] = name
    if model:
        doc["model"] = model
    doc["messages"] = messages
    if params:
        doc["params"] = params
    return doc


def split_config(config: Any, ref: str = "prompt") -> tuple[str | None, dict[str, Any]]:
    """(model, request params) from a Langfuse prompt config; other keys are not request settings.
    A model or setting that cannot be sent is a UsageError naming ``ref``."""
    if not isinstance(config, dict):
        return None, {}
    model = config.get("model")
    if model is not None and not isinstance(model, str):
        raise UsageError(f"{ref}: config model must be text (got {model!r})")
    params = {k: config[k] for k in CONFIG_PARAMS if k in config}
    bad = params_problem(params)
    if bad is not None:
        raise UsageError(f"{ref}: config {bad[0]} {bad[1]}")
    return model or None, params
