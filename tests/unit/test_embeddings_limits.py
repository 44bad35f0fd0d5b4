"""The embeddings request's size caps (pure): an answer must fit Lambda's 6 MB."""
from __future__ import annotations

import json

import pytest

from chalicelib.models.embeddings import (MAX_ANSWER_NUMBERS, EmbeddingRequest, Embeddings, parse_request,
                                          render)
from chalicelib.chat import Usage
from chalicelib.errors import InvalidRequestError

ALLOWED = ("amazon.titan-embed-text-v2:0", "cohere.embed-english-v3")
LAMBDA_RESPONSE_BYTES = 6 * 1024 * 1024


@pytest.mark.parametrize("encoding, dims", [("float", 1024), ("base64", 1024), ("float", 256)])
def test_the_largest_accepted_answer_fits_lambda(encoding: str, dims: int) -> None:
    most = MAX_ANSWER_NUMBERS[encoding] // dims
    request = parse_request({"model": ALLOWED[0], "input": ["x"] * most, "dimensions": dims,
                             "encoding_format": encoding}, ALLOWED)
    assert isinstance(request, EmbeddingRequest)
    # Worst-case numbers: float32 values with the longest JSON spelling.
    vector = tuple(-0.012345678101778030 for _ in range(dims))
    body = json.dumps(render(Embeddings(ALLOWED[0], (vector,) * most, Usage(10, 0)), encoding))
    assert len(body) < LAMBDA_RESPONSE_BYTES
    with pytest.raises(InvalidRequestError, match=f"at most {most} inputs"):
        parse_request({"model": ALLOWED[0], "input": ["x"] * (most + 1), "dimensions": dims,
                       "encoding_format": encoding}, ALLOWED)
