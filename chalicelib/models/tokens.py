"""How many tokens Bedrock will count for a prompt: exact for Llama 3, a proven bound otherwise.

Llama 3's tokenizer is a byte-level BPE (tiktoken) with 128,000 ranks and 256
special tokens, shipped by Meta in ``llama-models`` as
``llama_models/llama3/tokenizer.model``. Bedrock takes a Llama prompt as a raw
string and tokenises the special-token text found anywhere in it, so the
template's ``<|start_header_id|>`` and the like are one token each (content is
neutralised, ``chalicelib.models.llama``, so it holds none). ``llama3_tokens``
counts a prompt the way Meta's ``Tokenizer.encode(..., allowed_special="all")``
does, including its cuts of runs longer than 25,000 characters.

The rank file is read once per process, on the first exact count: importing
tiktoken, reading the ranks and building the encoder took ~340 ms on a quiet
development machine (bench/tokens.py), against ~50 µs to count a short
prompt afterwards. Only a key with limits
needs an exact count before the call (``Limiter.admit`` asks for it only then),
so a key without limits never loads it. The package carries a copy of the file
made at build time (scripts/llama_tokenizer.py, beside the bytecode step); a
development tree reads it from the installed ``llama-models``.

Every other family (Claude, Nova through Converse) is bounded instead:
``byte_bound`` is one token per UTF-8 byte, which holds for any byte-level
tokenizer, since each token stands for at least one byte of the text (its
special tokens, which stand for none, are the framing that ``converse_bound``
adds on top).
"""
from __future__ import annotations

import binascii
import functools
import json
import logging
import re
from importlib import util
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

# The copy that ships (scripts/llama_tokenizer.py writes it; .gitignore keeps
# Meta's file out of the repository).
SHIPPED = Path(__file__).with_name("llama3_tokenizer.model")
TOKENIZER_SHA256 = "82e9d31979e92ab929cd544440f129d9ecd797b69e327f80f17e1c50d5551b55"

# Meta's llama_models/llama3/tokenizer.py (llama-models 0.3.0).
PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
           r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
NAMED_SPECIAL = ("<|begin_of_text|>", "<|end_of_text|>", "<|reserved_special_token_0|>",
                 "<|reserved_special_token_1|>", "<|finetune_right_pad_id|>", "<|step_id|>",
                 "<|start_header_id|>", "<|end_header_id|>", "<|eom_id|>", "<|eot_id|>",
                 "<|python_tag|>", "<|image|>")
SPECIAL_COUNT = 256
# Meta encodes at most this many characters at a time, and cuts any run of
# whitespace or of non-whitespace longer than MAX_RUN (tiktoken issue 195).
MAX_ENCODE_CHARS = 400_000
MAX_RUN = 25_000
_LONG_RUN = re.compile(r"(?<!\s)\s{%d,}|(?<!\S)\S{%d,}" % (MAX_RUN + 1, MAX_RUN + 1))


def tokenizer_file() -> Path | None:
    """The rank file: the packaged copy, else the installed ``llama-models``'s."""
    if SHIPPED.exists():
        return SHIPPED
    spec = util.find_spec("llama_models")
    if spec is None or not spec.submodule_search_locations:
        return None
    installed = Path(list(spec.submodule_search_locations)[0]) / "llama3" / "tokenizer.model"
    return installed if installed.exists() else None


def read_ranks(path: Path) -> dict[bytes, int]:
    """``base64-token rank`` lines, as tiktoken's load_tiktoken_bpe reads them
    (in C-level maps rather than a Python loop: a third less time)."""
    fields = path.read_bytes().split()
    if len(fields) % 2:
        raise ValueError(f"{path} is not a tiktoken rank file")
    return dict(zip(map(binascii.a2b_base64, fields[0::2]), map(int, fields[1::2]), strict=True))


@functools.lru_cache(maxsize=1)
def _encoding() -> Any:
    """Meta's Llama 3 encoder, built once (the cost this module's docstring names)."""
    path = tokenizer_file()
    if path is None:
        return None
    import tiktoken  # imported here: a process that never counts never loads it

    ranks = read_ranks(path)
    names = NAMED_SPECIAL + tuple(f"<|reserved_special_token_{2 + i}|>"
                                  for i in range(SPECIAL_COUNT - len(NAMED_SPECIAL)))
    return tiktoken.Encoding(name="llama3", pat_str=PATTERN, mergeable_ranks=ranks,
                             special_tokens={name: len(ranks) + i for i, name in enumerate(names)})


def _slices(text: str) -> list[str]:
    """The pieces Meta's Tokenizer.encode hands tiktoken one at a time."""
    pieces = []
    for start in range(0, len(text), MAX_ENCODE_CHARS):
        chunk = text[start:start + MAX_ENCODE_CHARS]
        cuts = [run.start() + k for run in _LONG_RUN.finditer(chunk)
                for k in range(MAX_RUN, run.end() - run.start(), MAX_RUN)]
        bounds = [0, *cuts, len(chunk)]
        pieces += [chunk[a:b] for a, b in zip(bounds, bounds[1:])]
    return pieces or [""]


def byte_bound(text: str) -> int:
    """At most one token per UTF-8 byte: true of every byte-level tokenizer."""
    return len(text.encode("utf-8"))


def llama3_tokens(text: str) -> int:
    """Exactly the tokens Bedrock counts for this Llama 3 prompt.

    Without a rank file (a package built without scripts/llama_tokenizer.py)
    this falls back to ``byte_bound``, which is never below the count but
    reserves about four times as much for prose; the fallback is logged."""
    encoding = _encoding()
    if encoding is None:
        log.error("no Llama 3 tokenizer file: prompts are bounded at one token a byte")
        return byte_bound(text)
    if len(text) <= MAX_RUN:  # no run can need a cut
        return len(encoding.encode(text, allowed_special="all", disallowed_special=()))
    return sum(len(encoding.encode(piece, allowed_special="all", disallowed_special=()))
               for piece in _slices(text))


# Converse framing, in tokens, on top of the request's UTF-8 bytes as JSON
# (which already gives each message ~40 bytes of keys and quotes for the role
# markers a model's template adds): a model's own preamble, and the system
# prompt Anthropic adds when tools are offered (264-346 tokens in its
# "Tool use" pricing table for the Claude 3 to 4 models).
CONVERSE_OVERHEAD = 64
CONVERSE_TOOLS_OVERHEAD = 1024


def converse_bound(body: dict[str, Any]) -> int:
    """An upper bound on the input tokens of a Converse call with ``body``
    (messages, system, toolConfig, ...), for a byte-level tokenizer: every
    text sent costs at most a token a byte (JSON escaping only adds bytes),
    plus the fixed framing above."""
    sent = byte_bound(json.dumps(body, ensure_ascii=False))
    return sent + CONVERSE_OVERHEAD + (CONVERSE_TOOLS_OVERHEAD if "toolConfig" in body else 0)
