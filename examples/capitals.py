"""A tiny 'pipeline' for the demo suite: answers capital-city questions from a lookup table,
the way a retrieval step would, and reports token usage like an LLM call would."""

from __future__ import annotations

import asyncio
import re

from evalrun import Output

CAPITALS = {
    "france": "Paris", "germany": "Berlin", "italy": "Rome", "spain": "Madrid", "japan": "Tokyo",
    "canada": "Ottawa", "australia": "Canberra", "brazil": "Brasília", "egypt": "Cairo",
    "kenya": "Nairobi", "norway": "Oslo", "peru": "Lima", "india": "New Delhi",
    "turkey": "Ankara", "switzerland": "Bern", "new zealand": "Wellington",
}


async def answer(question: str | dict) -> Output:
    """Find the country in the question and answer with a short sentence."""
    text = question["question"] if isinstance(question, dict) else question
    await asyncio.sleep(0.01)  # stands in for a model call
    country = next((c for c in CAPITALS if re.search(rf"\b{c}\b", text.lower())), None)
    if country is None:
        reply = "I don't know."
    else:
        reply = CAPITALS[country]
    words = len(text.split())
    return Output(reply, usage={"input_tokens": words, "output_tokens": len(reply.split())},
                  cost_usd=round(1e-6 * (words + len(reply.split())), 9))
