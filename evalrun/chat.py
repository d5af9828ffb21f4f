"""The ``chat`` target: a model behind an OpenAI-compatible ``POST {base_url}/chat/completions``
(OpenAI, vLLM, Ollama, LiteLLM...), called with a prompt rendered for each item.

The prompt is resolved once, when the target is built (a Langfuse prompt is fetched then, so
every item of a run sees the same version), and rendered for every item before any call, so a
template error or a variable an item lacks stops the run at once. Calls go through the same
client as the LLM judge (:mod:`evalrun.openai_client`) with ``retries=0``: the engine owns
retries, timeouts and the start rate of target calls, and gets Retry-After from the client.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import urlparse

from evalrun import _json
from evalrun.errors import RetryableError, UsageError
from evalrun.prices import cost_usd, price_for
from evalrun.prompts import Prompt, describe, load_prompt_file, located_messages
from evalrun.records import Item
from evalrun.targets import Call, Target, TargetError, dig


def resolve_prompt(loaded: Any) -> Prompt:
    """The chat target's prompt: inline messages, a local file, or a Langfuse version."""
    cfg = loaded.config.target.chat
    where = ("target", "chat")
    if cfg.messages is not None:
        messages = [m.model_dump() for m in cfg.messages]
        return Prompt(messages, "jinja", locate=located_messages(loaded.located, where + ("messages",), loaded.text))
    ref = cfg.prompt.strip()

    def blame(e: UsageError) -> UsageError:
        # the message already names the prompt; point at the eval file's line (or the --set)
        if "target.chat.prompt" in loaded.overrides:
            return UsageError(f"--set target.chat.prompt={ref}: {e.message}")
        return loaded.error(e.message, *where, "prompt", "__value__")

    if ref.startswith("langfuse://"):
        from evalrun.langfuse.prompts import fetch_prompt

        try:
            prompt = fetch_prompt(ref)
        except UsageError as e:
            raise blame(e) from None
        prompt.locate = lambda i, _line, msg: blame(UsageError(f"{ref} message {i + 1}: {msg}"))
        return prompt
    path = loaded.resolve(ref)
    if not path.is_file():
        raise blame(UsageError(f"prompt file {ref} not found (or use langfuse://name@label)"))
    return load_prompt_file(path, ref)


def tools_problem(tools: Any) -> str | None:
    """Why ``tools`` is not a list of OpenAI function tools ({type: function, function: {name,
    parameters}}), or None."""
    if not isinstance(tools, list) or not tools:
        return "tools must be a non-empty list of {type: function, function: {name, parameters}}"
    names = set()
    for i, t in enumerate(tools):
        fn = t.get("function") if isinstance(t, dict) else None
        if not isinstance(t, dict) or t.get("type") != "function" or not isinstance(fn, dict):
            return f"tools[{i}] must be {{type: function, function: {{name, parameters}}}}"
        name = fn.get("name")
        if not isinstance(name, str) or not name:
            return f"tools[{i}].function has no name"
        if name in names:
            return f"tools[{i}]: tool {name!r} is declared twice"
        names.add(name)
        if "parameters" in fn and not isinstance(fn["parameters"], dict):
            return f"tools[{i}] ({name}): parameters must be a JSON schema object"
    return None


class ChatTarget(Target):
    def __init__(self, loaded: Any, concurrency: int) -> None:
        t = loaded.config.target
        self.cfg = cfg = t.chat
        self.timeout = t.timeout
        self.concurrency = concurrency
        self.prompt = resolve_prompt(loaded)
        self.model = cfg.model or self.prompt.model
        if not self.model:
            raise loaded.error("chat target needs a model (here, or in the prompt's config)", "target", "chat")
        self.params = {**self.prompt.params, **cfg.params}
        # tools from the eval file, else from the prompt (a prompt file's params, a Langfuse config)
        prompt_tools, prompt_choice = self.params.pop("tools", None), self.params.pop("tool_choice", None)
        self.tools = cfg.tools if cfg.tools is not None else prompt_tools
        self.tool_choice = cfg.tool_choice if cfg.tool_choice is not None else prompt_choice
        if self.tools is not None:
            problem = tools_problem(self.tools)
            if problem:
                raise loaded.error(problem, "target", "chat", *(("tools",) if cfg.tools is not None else ()))
        self.tool_function: Any = None
        if cfg.tool_results is not None:
            from evalrun.targets import load_callable

            def error(msg: str) -> UsageError:
                return loaded.error(msg, "target", "chat", "tool_results", "__value__")

            self.tool_function = load_callable(cfg.tool_results, loaded.base_dir, error, "tool_results")
        self.price = price_for(self.model, cfg.prices)
        self.templates = self.prompt.compile()
        self.api_key = os.environ.get(cfg.api_key_env) or None
        if self.api_key is None and urlparse(cfg.base_url).hostname == "api.openai.com":
            raise loaded.error(f"environment variable {cfg.api_key_env} is not set; {cfg.base_url} needs an "
                               "API key (or set base_url to a local server)", "target", "chat", "api_key_env")
        self.client: Any = None

    # --- before the run ------------------------------------------------------------------

    def payload(self, item: Item) -> dict[str, Any]:
        body = {"model": self.model, "messages": self.prompt.render(self.templates, item), **self.params}
        if self.tools is not None:
            body["tools"] = self.tools
            if self.tool_choice is not None:
                body["tool_choice"] = self.tool_choice
        return body

    def check(self, items: list[Item]) -> None:
        for item in items:
            self.prompt.render(self.templates, item)

    def cache_key(self, item: Item) -> Any:
        if self.tools is not None and item.tool_results is not None:
            # the scripted results shape the loop's later turns
            return {"payload": self.payload(item), "tool_results": item.tool_results}
        return self.payload(item)

    def info(self) -> dict[str, Any]:
        out: dict[str, Any] = {"target_model": self.model}
        if self.prompt.info:
            out["prompt"] = {**self.prompt.info, "label": describe(self.prompt.info)}
        return out

    # --- calls ----------------------------------------------------------------------------

    async def start(self) -> None:
        from evalrun.openai_client import ChatClient

        self.client = ChatClient(self.cfg.base_url, self.api_key, timeout=self.timeout, retries=0,
                                 concurrency=self.concurrency, label="chat", secrets=self.secrets.values)

    async def call_item(self, item: Item) -> Call:
        from evalrun.openai_client import ChatCallError, MalformedResponse

        payload = self.payload(item)
        trajectory: dict[str, Any] | None = None
        extra: dict[str, Any] = {}
        try:
            if self.tools is not None:
                from evalrun.agents.tool_loop import ScriptedTools, run_loop

                scripted = None
                if self.tool_function is not None or item.tool_results is not None:
                    scripted = ScriptedTools(item.tool_results, self.tool_function, item.input)
                loop = await run_loop(self.client.chat, payload, scripted, self.cfg.max_steps)
                done = loop.completion
                trajectory = loop.trajectory.to_dict()
                extra = {"steps": loop.trajectory.steps}
                if loop.unscripted:
                    extra["unscripted_tool_calls"] = loop.unscripted
            else:
                done = await self.client.chat(payload)
        except ChatCallError as e:
            if e.retryable:
                raise RetryableError(str(e), e.retry_after) from None
            raise TargetError(str(e)) from None
        except MalformedResponse as e:
            raise TargetError(self.client.scrub(str(e))) from None
        usage: dict[str, Any] = dict(done.usage)
        cost = cost_usd(self.price, done.usage["prompt_tokens"], done.usage["completion_tokens"])
        if cost is not None:
            usage["cost_usd"] = cost
        meta: dict[str, Any] = {"model": done.model or self.model, "finish_reason": done.finish_reason, **extra}
        if self.prompt.info:
            meta["prompt"] = {k: self.prompt.info.get(k) for k in ("name", "version", "labels", "source")}
            # what a prompt-linked generation shows in Langfuse: the messages the model was sent
            # and its parameters (the prompt's playground opens with them)
            meta["messages"] = payload["messages"]
            if self.params:
                meta["model_parameters"] = dict(self.params)
        output: Any = done.content
        if self.cfg.output_path is not None and not (trajectory is not None and not done.content):
            try:
                output = dig(_json.loads(done.content), self.cfg.output_path)
            except ValueError:
                raise TargetError("the answer is not JSON (output_path is set)") from None
            except KeyError:
                raise TargetError(f"the answer has no '{self.cfg.output_path}'") from None
        return Call(output, usage, meta, trajectory)

    async def close(self) -> None:
        if self.client is not None:
            await self.client.close()
