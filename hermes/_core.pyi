"""Typed stub of the Rust extension `hermes._core` (the crate `hermes_core_rs`).

The core does no I/O and reads no clock: time is always an argument.
"""

from collections.abc import Sequence
from typing import Literal, NotRequired, TypedDict, final

__version__: str
# Mirrors the export list of the `#[pymodule]` in hermes_core_rs/src/lib.rs.
__all__ = [
    "Router",
    "ValidationResult",
    "__version__",
    "error_codes",
    "validate_batch",
    "validate_message",
]

class _ErrorCodeInfo(TypedDict):
    code: str
    status: int
    title: str
    retryable: bool

def error_codes() -> list[_ErrorCodeInfo]:
    """The error catalogue: every stable code with its HTTP status, title and retryability."""

# --- Validation, layers 3-6 (hermes_core_rs/src/validate, bindings in src/python/validate.rs) ---

class _StepDict(TypedDict):
    channel: str
    timeout_ms: NotRequired[int | None]

class _MessageDict(TypedDict, total=False):
    """A message as validation sees it; every key is optional and unknown keys are an error."""

    phone: str | None
    email: str | None
    push_token: str | None
    whatsapp: str | None
    body: str | None
    subject: str | None
    html: str | None
    push_title: str | None
    push_data: str | None
    steps: list[_StepDict]
    send_at_ms: int | None
    expires_at_ms: int | None

class _PolicyDict(TypedDict, total=False):
    """Tenant policy: enabled channels (default all), ISO alpha-2 countries (empty = all)
    and the maximum SMS segments (default 10)."""

    channels: list[str]
    allowed_countries: list[str]
    max_segments: int

class _ViolationDict(TypedDict):
    code: str
    field: str
    detail: str

class _PhoneDict(TypedDict):
    e164: str
    country: str | None
    line_type: str

class _PushTokenDict(TypedDict):
    kind: Literal["apns", "fcm"]
    token: str

class _SmsDict(TypedDict):
    encoding: Literal["GSM-7", "UCS-2"]
    segments: int
    characters: int
    units: int

@final
class ValidationResult:
    """One message's result; attributes are converted when read."""

    @property
    def ok(self) -> bool:
        """True when the message has no violations."""
    @property
    def violations(self) -> list[_ViolationDict]:
        """Every violation with its catalogue code and field path (empty when ok)."""
    @property
    def phone(self) -> _PhoneDict | None:
        """The normalised `to.phone` (E.164, country, line type)."""
    @property
    def whatsapp(self) -> _PhoneDict | None:
        """The normalised `to.whatsapp`."""
    @property
    def email(self) -> str | None:
        """The address with its domain lowercased and in punycode."""
    @property
    def push_token(self) -> _PushTokenDict | None:
        """The token and whether it is an APNs or FCM token."""
    @property
    def sms(self) -> _SmsDict | None:
        """How the body travels as an SMS: encoding, segments, characters, units."""
    def to_dict(self) -> dict[str, object]:
        """`ok` with the normalised fields, or `ok` with `violations`."""

def validate_message(
    message: _MessageDict, policy: _PolicyDict | None, now_ms: int
) -> ValidationResult:
    """Validate one message (recipient, content, cascade plan, tenant policy) at `now_ms`."""

def validate_batch(
    messages: list[_MessageDict] | bytes, policy: _PolicyDict | None, now_ms: int
) -> list[ValidationResult]:
    """Validate many messages with the GIL released; `messages` may be a JSON array as bytes."""

# --- Router (hermes_core_rs/src/router, bindings in src/python/router.rs) ---

class _CandidateDict(TypedDict):
    account_id: str
    priority: int
    weight: int
    cost: float | None
    breaker: Literal["closed", "open", "half_open"]
    success_ewma: float
    latency_ewma_ms: float | None
    verdict: Literal[
        "chosen", "not_drawn", "lower_priority", "excluded",
        "no_route_to_country", "circuit_open", "probe_in_flight",
    ]
    retry_at_ms: int | None

class _ExplanationDict(TypedDict):
    chosen: str | None
    candidates: list[_CandidateDict]

class _HealthDict(TypedDict):
    breaker: Literal["closed", "open", "half_open"]
    success_ewma: float
    latency_ewma_ms: float | None
    samples: int
    consecutive_failures: int
    reopens_at_ms: int | None

@final
class Router:
    """Provider accounts per tenant and channel, their health, and the choice of one per send."""

    def __new__(
        cls,
        *,
        ewma_alpha: float = 0.2,
        consecutive_failures: int = 5,
        failure_rate: float = 0.5,
        min_samples: int = 10,
        cooldown_ms: int = 30_000,
        probe_timeout_ms: int = 30_000,
    ) -> Router: ...
    def add_account(
        self,
        account_id: str,
        tenant: str,
        channel: str,
        *,
        priority: int = 1,
        weight: int = 1,
        default_cost: float | None = ...,
        costs: dict[str, float] | None = None,
    ) -> None:
        """Add an account, or update an existing id (its health is kept).

        `default_cost` (default 0.0) prices countries missing from `costs`; None means the
        account serves only the countries in `costs`."""
    def record_outcome(
        self, account_id: str, success: bool, now_ms: int, latency_ms: float | None = None
    ) -> None:
        """Record a send's outcome; KeyError for an unknown account."""
    def select(
        self,
        tenant: str,
        channel: str,
        country: str | None,
        now_ms: int,
        *,
        exclude: Sequence[str] = ...,
        seed: str = "",
        attempt: int = 0,
    ) -> str | None:
        """The account for this send (None means routing.no_provider).

        A half-open account's pick becomes its probe."""
    def explain(
        self,
        tenant: str,
        channel: str,
        country: str | None,
        now_ms: int,
        *,
        exclude: Sequence[str] = ...,
        seed: str = "",
        attempt: int = 0,
    ) -> _ExplanationDict:
        """What `select` would choose and why, for every candidate; changes nothing."""
    def health(self, account_id: str, now_ms: int) -> _HealthDict:
        """An account's breaker state as of `now_ms`, EWMAs and counters."""
    def __len__(self) -> int: ...
