"""Writes golden.jsonl: 40 support conversations, what the (scripted) model does in each, the
tool calls a good agent makes, and the tool results from shop.py. Run it after changing shop.py."""

from __future__ import annotations

import json
from pathlib import Path

import shop


def call(name: str, **args: object) -> str:
    return f"[[call:{name} {json.dumps(args)}]]"


#: the arguments that pick a scripted result (a refund's amount or a query's wording may vary)
KEYS = {"lookup_order": ("order_id",), "issue_refund": ("order_id",), "search_kb": ()}


def item(i: str, message: str, script: str, expected: list[dict], tags: list[str]) -> dict:
    results: dict[str, list[dict]] = {}
    for c in expected:
        picks = {k: v for k, v in c["arguments"].items() if k in KEYS[c["name"]]}
        try:
            results.setdefault(c["name"], []).append({"arguments": picks,
                                                      "result": shop.answer(c["name"], c["arguments"])})
        except (KeyError, ValueError) as e:
            results.setdefault(c["name"], []).append({"arguments": picks, "error": str(e)})
    return {"id": i, "input": {"message": message, "script": script}, "expected_tool_calls": expected,
            "tool_results": results, "metadata": {"tags": tags}}


items = []
orders = list(shop.ORDERS)
# 1. tool choice: where is my order -> lookup_order
for n in range(10):
    oid = orders[n]
    items.append(item(f"status-{n}", f"Hi, where is my order {oid}?",
                      call("lookup_order", order_id=oid) + f"[[say:Your order {oid} is {shop.ORDERS[oid]['status']}.]]",
                      [{"name": "lookup_order", "arguments": {"order_id": oid}}], ["tool-choice"]))
# 2. multi-step refunds with amounts: the model writes the amount its own way (24.99 for 25, 25 for 25.0)
for n in range(10):
    oid = orders[10 + n]
    total = shop.ORDERS[oid]["total"]
    said = round(total - 0.01, 2) if n % 2 else int(total) if total == int(total) else total
    items.append(item(f"refund-{n}", f"My {shop.ORDERS[oid]['item']} from order {oid} arrived broken, refund please.",
                      call("lookup_order", order_id=oid) + call("issue_refund", order_id=oid, amount=said)
                      + "[[say:Refund issued.]]",
                      [{"name": "lookup_order", "arguments": {"order_id": oid}},
                       {"name": "issue_refund", "arguments": {"order_id": oid, "amount": total}}],
                      ["multi-step", "refund"]))
# 3. knowledge base: the model paraphrases the query
PARAPHRASES = [("How do I reset my password?", "how to reset my password", "password reset"),
               ("I forgot my password", "forgot password reset", "password reset"),
               ("How long does shipping take?", "shipping time", "shipping duration"),
               ("When will standard shipping arrive?", "standard shipping delivery time", "shipping duration"),
               ("Can I return this?", "return policy for items", "return policy"),
               ("What is your return window?", "return policy window", "return policy"),
               ("Where do I find my invoice?", "find invoice", "download invoice"),
               ("I need a receipt for my order", "invoice for order", "download invoice"),
               ("Is my headset under warranty?", "warranty period headset", "warranty period"),
               ("How long is the warranty?", "warranty length", "warranty period")]
for n, (msg, query, canonical) in enumerate(PARAPHRASES):
    items.append(item(f"kb-{n}", msg, call("search_kb", query=query) + "[[say:Here is what I found.]]",
                      [{"name": "search_kb", "arguments": {"query": canonical}}], ["paraphrase", "kb"]))
# 4. two tools in one turn (parallel calls)
for n in range(6):
    oid = orders[20 + n]
    topic = ["shipping", "return", "warranty"][n % 3]
    items.append(item(f"parallel-{n}", f"Where is {oid}, and what is your {topic} policy?",
                      "[[call:lookup_order " + json.dumps({"order_id": oid}) + " && search_kb "
                      + json.dumps({"query": f"{topic} policy"}) + "]][[say:Done.]]",
                      [{"name": "lookup_order", "arguments": {"order_id": oid}},
                       {"name": "search_kb", "arguments": {"query": f"{topic} policy"}}], ["parallel"]))
# 5. nothing to do: no tool at all (and never end_conversation)
for n, msg in enumerate(["Thanks, that's all!", "Great, have a nice day."]):
    items.append(item(f"smalltalk-{n}", msg, "[[say:You're welcome!]]", [], ["no-tool"]))
# 6. a loop that never ends: the model keeps looking orders up past max_steps
for n in range(2):
    script = "".join(call("lookup_order", order_id=orders[30 + k]) for k in range(10)) + "[[say:Found them all.]]"
    items.append(item(f"runaway-{n}", "List every order I ever made.", script,
                      [{"name": "lookup_order", "arguments": {"order_id": orders[30]}}], ["loop"]))
assert len(items) == 40
Path(__file__).with_name("golden.jsonl").write_text("".join(json.dumps(i) + "\n" for i in items))
