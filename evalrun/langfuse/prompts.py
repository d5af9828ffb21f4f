"""Langfuse prompts: resolve ``langfuse://name@label`` / ``langfuse://name@3`` once at run start,
push a local prompt file as a new version, pull a version back into a local file.

A reference without ``@`` means the ``production`` label, as in Langfuse. A prompt that does not
exist, or a label no version carries, is a UsageError (exit 2) before any call.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

from evalrun.errors import RunFailed, UsageError
from evalrun.langfuse.client import Client, Refused, Unreachable, credentials
from evalrun.prompts import Prompt, load_prompt_file, prompt_file_data, role_problem, split_config

SCHEME = "langfuse://"
DEFAULT_LABEL = "production"


def parse_prompt_ref(ref: str) -> tuple[str, int | None, str | None]:
    """``langfuse://name@label`` -> (name, None, label); ``@3`` -> (name, 3, None)."""
    if not ref.startswith(SCHEME):
        raise UsageError(f"not a Langfuse prompt reference: {ref!r} (expected {SCHEME}<name>@<label or version>)")
    body = ref[len(SCHEME):]
    name, sep, at = body.rpartition("@")
    if not sep:
        name, at = body, DEFAULT_LABEL
    name, at = name.strip(), at.strip()
    if not name or not at:
        raise UsageError(f"{ref}: expected {SCHEME}<name>@<label> or {SCHEME}<name>@<version number>")
    if at.isdigit():
        if int(at) < 1:
            raise UsageError(f"{ref}: prompt versions start at 1")
        return name, int(at), None
    return name, None, at


def _call(client: Client, what: str, fn: Any) -> Any:
    try:
        return client.call(what, fn)
    except Unreachable as e:  # Langfuse down is infrastructure (exit 3), not bad input
        raise RunFailed(f"Langfuse at {client.creds.base_url}: {e}") from None


def fetch_prompt(ref: str) -> Prompt:
    """The prompt ``ref`` names, as Langfuse has it now; errors are one line."""
    name, version, label = parse_prompt_ref(ref)
    with Client(credentials(), budget=60.0) as client:
        try:
            # a name in a folder ("team/qa") travels as one path segment, as the SDK sends it
            got = _call(client, f"get prompt {name!r}", lambda o: client.api.prompts.get(
                quote(name, safe=""), version=version, label=label, request_options=o))
        except Refused as e:
            if e.status == 404:
                which = f"version {version}" if version is not None else f"a version labelled '{label}'"
                raise UsageError(f"{ref}: Langfuse has no prompt '{name}' with {which}") from None
            raise UsageError(f"{ref}: Langfuse refused: {e}") from None
    return prompt_from_langfuse(got, ref)


def prompt_from_langfuse(got: Any, ref: str) -> Prompt:
    kind = getattr(got, "type", None)
    if kind == "text":
        messages = [{"role": "user", "content": str(got.prompt)}]
    else:
        messages = []
        for i, m in enumerate(got.prompt or []):
            d = m.dict() if hasattr(m, "dict") else dict(m)
            if d.get("type") == "placeholder" or "role" not in d:
                raise UsageError(f"{ref}: message {i + 1} is a placeholder ('{d.get('name')}'); "
                                 "evalrun fills only {{variables}}")
            if role_problem(d["role"]):
                raise UsageError(f"{ref}: message {i + 1}: {role_problem(d['role'])}")
            messages.append({"role": str(d["role"]), "content": str(d.get("content") or "")})
    model, params = split_config(got.config, ref)
    info = {"name": got.name, "version": got.version, "labels": list(got.labels or []), "source": "langfuse",
            "type": kind or "chat"}
    return Prompt(messages, "langfuse", model, params, info)


def push_prompt(file: str, name: str | None, labels: list[str], commit_message: str | None = None
                ) -> dict[str, Any]:
    """Create a new version of prompt ``name`` (default: the file's ``name:`` or stem) from a
    local prompt file; returns Langfuse's name, version and labels."""
    path = Path(file)
    local = load_prompt_file(path, file)
    local.compile()  # a template that would stop every run is not pushed either
    target = name if name is not None else (local.info or {}).get("name") or path.stem
    _check_word("--name" if name is not None else f"{file}: name", target)
    for label in labels:
        _check_word("--label", label)
    config: dict[str, Any] = dict(local.params)
    if local.model:
        config["model"] = local.model
    body: dict[str, Any] = {"name": target, "type": "chat", "prompt": local.messages, "config": config,
                            "labels": labels}
    if commit_message:
        body["commitMessage"] = commit_message
    with Client(credentials(), budget=60.0) as client:
        try:
            _, answer = _call(client, f"create prompt {target!r}", lambda o: client.post_json(
                "/api/public/v2/prompts", body, o))
        except Refused as e:
            raise UsageError(f"Langfuse refused prompt '{target}': {e}") from None
    return {"name": answer.get("name", target), "version": answer.get("version"),
            "labels": answer.get("labels", labels)}


def _check_word(what: str, value: str) -> None:
    """A prompt name or label as Langfuse addresses it: text without line breaks or controls."""
    if not value.strip() or any((c.isspace() and c != " ") or ord(c) < 0x20 or ord(c) == 0x7f for c in value):
        raise UsageError(f"{what} {value!r}: expected a name without line breaks or control characters")


def pull_prompt(ref: str, output: Path) -> Prompt:
    """Write the prompt ``ref`` names into a local prompt file (messages, model, params)."""
    import yaml

    if output.is_dir():
        raise UsageError(f"-o {output}: is a folder; name the prompt file to write")
    prompt = fetch_prompt(ref)
    info = prompt.info or {}
    doc = prompt_file_data(prompt.messages, prompt.model, prompt.params, info.get("name"))
    header = f"# pulled from {SCHEME}{quote(str(info.get('name')))}@{info.get('version')}\n"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(header + yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=100), encoding="utf-8")
    return prompt
