"""A small rule-based support bot for the per-item assertions example (docs/assertions.md).

It answers from a knowledge base and cites the article it used as ``[kb-...]``, declines
what a support bot must not do, and opens tickets as JSON. ``answer_regressed`` is the same
bot after a careless prompt change: it breaks exactly four items (one refusal, one citation,
one JSON ticket, one forbidden phrase), which the example's tests expect to see as the four
regressions in every report.
"""

from __future__ import annotations

import json
import re

KB = {
    "kb-refunds": ("refund", "You can request a refund within 30 days of purchase from Billing > Orders."),
    "kb-shipping": ("shipping", "Standard shipping takes 3-5 business days; express takes 1-2."),
    "kb-plans": ("change my plan", "You can change your plan at any time in Settings > Plan; the price is prorated."),
    "kb-2fa": ("two-factor", "Turn on two-factor authentication in Settings > Security with an authenticator app."),
    "kb-export": ("export", "Export all your data as a ZIP file from Settings > Privacy > Export."),
    "kb-delete": ("delete my account", "Deleted accounts are permanently deleted after 14 days; "
                                       "until then you can restore yours from the login page."),
    "kb-invoices": ("invoice", "Download invoices as PDF from Billing > Invoices."),
    "kb-api": ("rate limit", "The API allows 600 requests per minute per key."),
}

FAQ = [
    ("support hours", "Our support team is available Monday to Friday, 9am to 5pm CET."),
    ("reset my password", "Click 'Forgot password' on the login page and we will email you a reset link."),
    ("student discount", "Yes: students get 50% off the Pro plan with a valid student email."),
    ("pro plan cost", "The Pro plan costs $29 per month, billed monthly."),
    ("pause my subscription", "You can pause your subscription for up to 3 months in Settings > Plan."),
    ("encrypted", "Yes. All data is encrypted in transit (TLS 1.3) and at rest with AES-256."),
    ("cancel my subscription", "Go to Settings > Plan and choose Cancel; you keep access until the period ends."),
    ("languages", "The app is available in English, German, French and Spanish."),
    ("offline", "Yes: turn on offline mode in Settings > Sync and your notes stay available without a connection."),
    ("phone number", "You can call us on +1 800 555 0199 during support hours."),
]

DECLINE = [
    ("address of the customer", "I'm sorry, but I can't share another customer's personal details."),
    ("fake invoice", "I can't help with creating false documents."),
    ("password for the admin", "I'm not able to share account credentials."),
    ("what acme corp pays", "I'm sorry, but I cannot disclose what other customers pay."),
    ("diagnose", "I'm not able to give medical advice; please see a doctor about that."),
    ("ex-partner's account", "I can't help with getting into someone else's account."),
]

TICKETS = [
    ("damaged", "normal", "shipping"),
    ("charged twice", "high", "billing"),
    ("crashes", "high", "technical"),
    ("locked out", "urgent", "account"),
    ("billing address", "low", "billing"),
    ("dark mode", "low", "feedback"),
]


def _ticket_id(text: str) -> str:
    return "T-" + str(sum(map(ord, text)) % 9000 + 1000)


def _reply(question: str, regressed: bool) -> str:
    q = question.lower()
    if q.startswith("open a ticket"):
        for key, priority, category in TICKETS:
            if key in q:
                if regressed and key == "locked out":
                    priority = "normal"  # the new prompt lost the urgency rule
                return json.dumps({"ticket_id": _ticket_id(q), "priority": priority, "category": category})
        return json.dumps({"ticket_id": _ticket_id(q), "priority": "normal", "category": "other"})
    for key, reply in DECLINE:
        if key in q:
            if regressed and key == "address of the customer":
                return "The customer on order #4411 lives at 12 Elm Street, Springfield."
            return reply
    for kb_id, (key, text) in KB.items():
        if key in q:
            if regressed and kb_id == "kb-export":
                return text  # the new prompt forgot to cite
            return f"{text} [{kb_id}]"
    for key, reply in FAQ:
        if key in q:
            if regressed and key == "cancel my subscription":
                return reply + " Many users switch to CompetitorX instead."
            return reply
    return "Sorry, I don't know that one yet. A human agent will follow up by email."


def answer(question: str) -> str:
    return _reply(question, regressed=False)


def answer_regressed(question: str) -> str:
    return _reply(question, regressed=True)


_WORDS = re.compile(r"\S+")


def short_enough(output: str, value: int) -> bool:
    """A python item check: the answer is at most ``value`` words."""
    return len(_WORDS.findall(output)) <= value
