"""Masking secrets in error text: the one helper every client of a remote service uses
(http/exec targets, the chat target and the LLM judge's OpenAI-compatible client)."""

from __future__ import annotations

import os
import re
from typing import Any

#: ``${VAR}`` / ``${VAR:-default}`` (and ``$$``) in eval-file values; shared with config.py
VAR = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class Secrets:
    """Values that must never appear in an error message: every ``${VAR}`` the target section
    of the eval file expands (URL, query string, userinfo, headers, env, command) and every
    header value, in their plain and URL-encoded forms. Masked before any text is cut, so no
    part of a secret survives truncation either."""

    MIN_LEN = 4

    def __init__(self, values: list[str]) -> None:
        from urllib.parse import quote, quote_plus

        forms: set[str] = set()
        for v in values:
            for part in {v, v.split(" ", 1)[-1]}:  # "Bearer <token>": the token alone too
                if len(part) >= self.MIN_LEN:
                    forms.update({part, quote(part, safe=""), quote_plus(part), quote(part)})
        self.values = sorted(forms, key=len, reverse=True)

    def mask(self, text: str) -> str:
        for v in self.values:
            if v in text:
                text = text.replace(v, "***")
        return text

    def mask_value(self, value: Any) -> Any:
        """``value`` (JSON data: an output a server echoed a secret into) with every string
        masked; returned as is when nothing changes (and at once when there are no secrets)."""
        if not self.values:
            return value
        if isinstance(value, str):
            return self.mask(value)
        if isinstance(value, list):
            return [self.mask_value(v) for v in value]
        if isinstance(value, dict):
            return {self.mask(k) if isinstance(k, str) else k: self.mask_value(v) for k, v in value.items()}
        return value


def env_values(raw: Any) -> list[str]:
    """The values of the environment variables that ``${VAR}`` references in ``raw`` (a
    section of the eval file as written: strings, mappings, lists) expand to."""
    names: set[str] = set()

    def walk(v: Any) -> None:
        if isinstance(v, str):
            names.update(m.group(1) for m in VAR.finditer(v) if m.group(1))
        elif isinstance(v, dict):
            for x in v.values():
                walk(x)
        elif isinstance(v, list):
            for x in v:
                walk(x)

    walk(raw)
    return [os.environ[n] for n in sorted(names) if os.environ.get(n)]


def url_values(url: str) -> list[str]:
    """The parts of ``url`` that carry credentials: userinfo and query-string values, and the
    ``Authorization: Basic`` value an HTTP client derives from the userinfo (base64 of
    ``user:password``), which a server may echo as readily as the rest."""
    import base64
    from urllib.parse import parse_qsl, unquote, urlsplit

    try:
        u = urlsplit(url)
    except ValueError:
        return []
    out = [unquote(x) for x in (u.username, u.password) if x]
    if u.username is not None or u.password is not None:
        pair = f"{unquote(u.username or '')}:{unquote(u.password or '')}"
        out.append(base64.b64encode(pair.encode()).decode())
    out += [v for _k, v in parse_qsl(u.query, keep_blank_values=False)]
    return out
