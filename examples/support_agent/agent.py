"""The same support agent as a Python pipeline, instrumented with the langfuse SDK: a tool loop
over an OpenAI-compatible server, each tool an ``@observe(as_type="tool")`` function. evalrun
scores it from the spans it emits (``capture_spans: true``, ``source: spans``), so the agent
reports nothing itself. Langfuse keys must be set (LANGFUSE_PUBLIC_KEY, LANGFUSE_SECRET_KEY,
LANGFUSE_HOST): the SDK emits no spans without them."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import httpx
import shop
import yaml
from langfuse import observe

PROMPT = yaml.safe_load((Path(__file__).parent / "prompts" / "agent-v1.yaml").read_text())
MAX_STEPS = 8
_http = httpx.Client(base_url=os.environ.get("OPENAI_BASE_URL", "http://127.0.0.1:8399/v1"), timeout=30)


class StepLimit(RuntimeError):
    """The model kept calling tools past MAX_STEPS."""


def _tool(fn: Any) -> Any:
    return observe(name=fn.__name__, as_type="tool")(fn)


TOOLS = {name: _tool(fn) for name, fn in shop.FUNCTIONS.items()}


@observe(name="support-agent")
def run(inp: dict[str, Any]) -> str:
    system, user = PROMPT["messages"]
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": system["content"]},
        {"role": "user", "content": user["content"].replace("{{ input.message }}", inp["message"])
                                                    .replace("{{ input.script }}", inp["script"])}]
    for _ in range(MAX_STEPS):
        body = {"model": PROMPT["model"], "messages": messages, "tools": PROMPT["params"]["tools"], "temperature": 0}
        resp = _http.post("/chat/completions", json=body, headers={"Authorization": "Bearer x"})
        resp.raise_for_status()
        message = resp.json()["choices"][0]["message"]
        if not message.get("tool_calls"):
            return message.get("content") or ""
        messages.append({"role": "assistant", "content": message.get("content"), "tool_calls": message["tool_calls"]})
        for call in message["tool_calls"]:
            name = call["function"]["name"]
            try:
                content = json.dumps(TOOLS[name](**json.loads(call["function"]["arguments"])))
            except Exception as e:  # the model hears of a failed tool and goes on
                content = f"Error: {e}"
            messages.append({"role": "tool", "tool_call_id": call["id"], "content": content})
    raise StepLimit(f"still calling tools after {MAX_STEPS} steps")
