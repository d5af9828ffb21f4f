"""The shop behind the demo support agent: orders and help articles (in memory), and the four
tools the agent may call. ``answer`` serves the tools to evalrun's chat tool loop
(``tool_results: shop:answer``) the same way ``agent.py`` calls them itself."""

from __future__ import annotations

from typing import Any

ORDERS = {f"A-{1000 + i}": {"status": ["shipped", "delivered", "processing"][i % 3], "total": round(12.5 + 7.25 * i, 2),
                             "item": ["keyboard", "mouse", "monitor", "headset", "webcam"][i % 5]}
          for i in range(40)}

ARTICLES = {
    "password": "To reset your password, open Settings > Security and choose 'Reset password'.",
    "shipping": "Standard shipping takes 3-5 business days; express takes 1-2.",
    "return": "You can return an item within 30 days of delivery for a full refund.",
    "invoice": "Invoices are in Account > Orders; each order has a 'Download invoice' button.",
    "warranty": "Hardware carries a two-year warranty from the delivery date.",
}

TOOLS = [
    {"type": "function", "function": {
        "name": "lookup_order", "description": "Status, total and item of an order.",
        "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}}, "required": ["order_id"]}}},
    {"type": "function", "function": {
        "name": "issue_refund", "description": "Refund an amount of an order to the customer.",
        "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}, "amount": {"type": "number"}},
                       "required": ["order_id", "amount"]}}},
    {"type": "function", "function": {
        "name": "search_kb", "description": "Search the help articles.",
        "parameters": {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]}}},
    {"type": "function", "function": {
        "name": "end_conversation", "description": "Close the chat. Never use it while the customer needs help.",
        "parameters": {"type": "object", "properties": {"reason": {"type": "string"}}}}},
]


def lookup_order(order_id: str) -> dict[str, Any]:
    if order_id not in ORDERS:
        raise KeyError(f"no order {order_id}")
    return {"order_id": order_id, **ORDERS[order_id]}


def issue_refund(order_id: str, amount: float) -> dict[str, Any]:
    total = lookup_order(order_id)["total"]
    if amount > total + 0.01:
        raise ValueError(f"refund {amount} exceeds the order total {total}")
    return {"order_id": order_id, "refunded": amount}


def search_kb(query: str) -> list[str]:
    words = query.lower()
    return [text for key, text in ARTICLES.items() if key in words] or ["No article found."]


def end_conversation(reason: str = "") -> str:
    return "conversation closed"


FUNCTIONS = {f.__name__: f for f in (lookup_order, issue_refund, search_kb, end_conversation)}


def answer(name: str, arguments: dict[str, Any], input: Any = None) -> Any:
    """A tool call answered (evalrun's chat target: ``tool_results: shop:answer``)."""
    return FUNCTIONS[name](**arguments)
