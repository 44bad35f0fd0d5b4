"""Domain errors with stable machine codes.

No HTTP status codes live here: app.py maps each class to a status. Every
error carries a ``code`` (stable, for programs), a ``type`` (the OpenAI error
family clients already switch on) and a human ``message`` that never contains
internals such as ARNs, account ids or botocore text.
"""
from __future__ import annotations

from decimal import Decimal

from chalicelib.chat import LimitStatus


class ApiError(Exception):
    """Base class of every error a client may see."""

    code: str = "internal_error"
    type: str = "server_error"
    # (tokens, dollars) Bedrock generated before the failure: a call cut at
    # its deadline, broken off or answered unusably is billed for them, never
    # left free nor charged its worst case (limits.Limiter.settle_failure).
    spent: tuple[int, Decimal | None] | None = None
    # The request had reached Bedrock when the call failed (an answer waited
    # for past its timeout, a stream broken or cut after it opened): Bedrock
    # may have billed tokens no count of ours saw, so the call is billed at
    # least its prompt (completion.py), never nothing.
    generating: bool = False

    def __init__(self, message: str, *, param: str | None = None,
                 code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code

    def envelope(self) -> dict[str, dict[str, str | None]]:
        """The OpenAI error envelope, as HTTP answers and failed jobs carry it."""
        return {"error": {"message": self.message, "type": self.type, "code": self.code,
                          "param": self.param}}


class InvalidRequestError(ApiError):
    """The request body is malformed or a value is out of range."""

    code = "invalid_request"
    type = "invalid_request_error"


class ContentFilteredError(InvalidRequestError):
    """The caller's Bedrock guardrail blocked the prompt: nothing was generated.
    The message carries the guardrail's own text for blocked input."""

    code = "content_filtered"


class UnsupportedParameterError(InvalidRequestError):
    """A well-formed parameter that this backend cannot honour."""

    code = "unsupported_parameter"


class RequestTooLargeError(ApiError):
    """The body or the prompt is over the configured size."""

    code = "request_too_large"
    type = "invalid_request_error"


class ResultTooLargeError(ApiError):
    """A job's answer does not fit in its record (a failed job's error)."""

    code = "result_too_large"
    type = "invalid_request_error"


class UnsupportedMediaTypeError(ApiError):
    """The request was not sent as JSON."""

    code = "unsupported_media_type"
    type = "invalid_request_error"


class ModelNotFoundError(ApiError):
    """The model id is unknown or not allowed on this stage."""

    code = "model_not_found"
    type = "invalid_request_error"


class NotFoundError(ApiError):
    """A route or resource that does not exist."""

    code = "not_found"
    type = "invalid_request_error"


class MethodNotAllowedError(ApiError):
    """The route exists but not for this HTTP method."""

    code = "method_not_allowed"
    type = "invalid_request_error"


class ContextWindowExceededError(InvalidRequestError):
    """Bedrock refused the prompt as longer than the model's context."""

    code = "context_length_exceeded"


class UpstreamRejectedError(InvalidRequestError):
    """Bedrock answered ValidationException for another reason."""

    code = "upstream_validation_error"


class UpstreamThrottledError(ApiError):
    """Bedrock still throttled after the client's retries."""

    code = "upstream_throttled"
    type = "rate_limit_error"

    def __init__(self, message: str, *, retry_after: int,
                 code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.retry_after = retry_after


class UpstreamTimeoutError(ApiError):
    """The model did not answer within the read timeout."""

    code = "upstream_timeout"
    type = "timeout_error"


class DeadlineExceededError(UpstreamTimeoutError):
    """The call reached its overall deadline (deadline.py) before it ended."""


class UpstreamUnavailableError(ApiError):
    """Bedrock said it is unavailable for now."""

    code = "upstream_unavailable"
    type = "server_error"


class UpstreamError(ApiError):
    """Bedrock or the model failed while answering."""

    code = "upstream_error"
    type = "server_error"


class UpstreamMisconfiguredError(ApiError):
    """Our deployment cannot reach the model (access, model id, region)."""

    code = "upstream_misconfigured"
    type = "server_error"


class RequestExceedsLimitError(InvalidRequestError):
    """One request's worst case is over a per-key limit: it can never pass."""

    code = "request_exceeds_limit"


class RateLimitExceededError(ApiError):
    """A per-key limit is reached for now; ``code`` names which one."""

    type = "rate_limit_error"

    def __init__(self, message: str, *, code: str, retry_after: int,
                 status: tuple[LimitStatus, ...]) -> None:
        super().__init__(message, code=code)
        self.retry_after = retry_after
        self.status = status


class LimiterUnavailableError(ApiError):
    """The limits table cannot be reached; requests are refused, not let through."""

    code = "limiter_unavailable"
    type = "server_error"


class AuthenticationError(ApiError):
    """No API key, or one that is not accepted (routes that check keys themselves)."""

    code = "invalid_api_key"
    type = "invalid_request_error"


class PermissionDeniedError(ApiError):
    """A key used outside its scope: an admin key on a model route, a model
    key on ``/admin``."""

    code = "permission_denied"
    type = "invalid_request_error"


class AuthUnavailableError(ApiError):
    """The keys table cannot be read: the key is neither accepted nor refused.

    The authorizer raises it, so that API Gateway caches no deny and answers
    with the retryable gateway response (503 ``auth_unavailable``)."""

    code = "auth_unavailable"
    type = "server_error"


class QueueUnavailableError(ApiError):
    """The jobs queue cannot be reached; the job was not accepted."""

    code = "queue_unavailable"
    type = "server_error"


class StoreUnavailableError(ApiError):
    """Stored responses (the Responses API's state) cannot be read or written."""

    code = "store_unavailable"
    type = "server_error"


class UnusableAnswerError(ApiError):
    """The model's answer could not be made to honour the request (a forced
    tool call, a JSON format, a strict schema), even after one repair attempt.
    The tokens it generated are still billed."""

    code = "invalid_model_output"
    type = "server_error"

    def __init__(self, message: str, *, spent: tuple[int, Decimal | None] = (0, None)) -> None:
        super().__init__(message)
        self.spent = spent  # (tokens, dollars) Bedrock generated for the failed answer


class ValidationBudgetError(UnusableAnswerError):
    """Checking the answer against its schemas ran out of the request's
    validation allowance: the answer is unusable, and a repair could only
    run out again. Whoever knows what Bedrock generated sets ``spent``."""
