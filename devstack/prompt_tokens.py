"""The emulator's prompt counts: Meta's own Llama 3 tokenizer, as Bedrock counts.

``llama_models.llama3.tokenizer.Tokenizer`` (Meta's ``llama-models``,
requirements-run-nodeps.txt) encodes the raw prompt with every special token's
text read as that token (``allowed_special="all"``), as Bedrock does with an
InvokeModel prompt string, so the ``prompt_token_count`` and
``inputTokenCount`` every test sees are real. It is Meta's code, not
``chalicelib.models.tokens``: the endpoint's own count is checked against
it, not against itself. Converse prompts (Claude, Nova) are counted with it
too, a byte-level BPE standing in for theirs, tool definitions included
(``converse_wire.parse_converse``), as Bedrock counts them. Generated text keeps the
generator's own estimate (``devstack.generator.count_tokens``).
"""
from __future__ import annotations

import functools
from typing import Any


@functools.lru_cache(maxsize=1)
def _tokenizer() -> Any:
    from llama_models.llama3.tokenizer import Tokenizer

    return Tokenizer.get_instance()


def count_prompt_tokens(prompt: str) -> int:
    """The tokens Bedrock counts for ``prompt``."""
    return len(_tokenizer().encode(prompt, bos=False, eos=False, allowed_special="all"))
