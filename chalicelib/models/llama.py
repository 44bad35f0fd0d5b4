"""Llama 3 prompt formatting and special-token neutralisation (pure).

The format is Meta's reference ``ChatFormat`` (meta-llama/llama-models,
``models/llama3/chat_format.py``)::

    <|begin_of_text|>
    <|start_header_id|>{role}<|end_header_id|>\\n\\n{content}<|eot_id|>   (each message)
    <|start_header_id|>assistant<|end_header_id|>\\n\\n                  (the open turn)

Bedrock's InvokeModel takes the prompt as a raw string and tokenises special
tokens found anywhere in it, unlike Meta's tokenizer, which encodes special
token text inside content as plain text. So before templating, every ``<|`` and
``|>`` inside content is split with a space: the words stay readable to the
model, and the only special tokens in the final prompt are the template's.
Every Llama special token starts with ``<|``, so a content without ``<|`` can
hold none, whatever its version-specific name.
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Protocol

BEGIN_OF_TEXT = "<|begin_of_text|>"
START_HEADER = "<|start_header_id|>"
END_HEADER = "<|end_header_id|>"
EOT = "<|eot_id|>"

_SPECIAL_DELIMITER = re.compile(r"<\||\|>")
_NEUTRAL = {"<|": "< |", "|>": "| >"}


class HasRoleAndContent(Protocol):
    role: str
    content: str


def neutralise(text: str) -> str:
    """Return ``text`` with no ``<|`` left in it, keeping the words visible.

    One left-to-right pass suffices: a replacement never yields ``<|``, and a
    ``<`` followed by a replacement (``< |``) does not form one either.
    """
    return _SPECIAL_DELIMITER.sub(lambda m: _NEUTRAL[m.group(0)], text)


def format_message(role: str, content: str) -> str:
    """One message: header, stripped and neutralised content, end of turn."""
    return f"{START_HEADER}{role}{END_HEADER}\n\n{neutralise(content.strip())}{EOT}"


def format_prompt(messages: Iterable[HasRoleAndContent]) -> str:
    """The whole prompt for a conversation, ending with the open assistant turn."""
    body = "".join(format_message(m.role, m.content) for m in messages)
    return f"{BEGIN_OF_TEXT}{body}{START_HEADER}assistant{END_HEADER}\n\n"
