"""Model prices in USD per million tokens, and the cost of one call (judge and chat target).

The table covers common hosted judge models; an eval file extends or overrides it with
``prices: {model: {input: 0.15, output: 0.6}}``. A model with no price (a local server)
costs nothing known: its calls are counted as unpriced rather than as free.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class Price(BaseModel):
    model_config = ConfigDict(extra="forbid")

    input: float = Field(ge=0)
    output: float = Field(ge=0)


PRICES: dict[str, Price] = {name: Price(input=i, output=o) for name, (i, o) in {
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4o": (2.50, 10.00),
    "gpt-4.1-nano": (0.10, 0.40),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1": (2.00, 8.00),
    "o4-mini": (1.10, 4.40),
    "o3-mini": (1.10, 4.40),
    "o3": (2.00, 8.00),
    "gpt-3.5-turbo": (0.50, 1.50),
    "claude-3-5-haiku": (0.80, 4.00),
    "claude-3-5-sonnet": (3.00, 15.00),
    "claude-sonnet-4": (3.00, 15.00),
}.items()}


def price_for(model: str, extra: dict[str, Price] | None = None) -> Price | None:
    """The price of ``model``: an exact entry first, else the longest entry the name starts
    with (so a dated snapshot like gpt-4o-mini-2024-07-18 finds gpt-4o-mini)."""
    table = {**PRICES, **(extra or {})}
    if model in table:
        return table[model]
    bare = model.rsplit("/", 1)[-1]  # provider prefixes as LiteLLM writes them: openai/gpt-4o
    matches = [k for k in table if bare.startswith(k)]
    return table[max(matches, key=len)] if matches else None


def cost_usd(price: Price | None, prompt_tokens: int, completion_tokens: int) -> float | None:
    if price is None:
        return None
    return (prompt_tokens * price.input + completion_tokens * price.output) / 1_000_000
