"""Typed stub of the Rust extension `hermes._core` (the crate `hermes_core_rs`).

The core does no I/O and reads no clock: time is always an argument.
"""

import os
from collections.abc import Iterable, Sequence
from typing import Any, Literal, NotRequired, TypedDict, final

__version__: str
# Mirrors the export list of the `#[pymodule]` in hermes_core_rs/src/lib.rs.
__all__ = [
    "AdapterError",
    "AdapterInfo",
    "AdapterRuntime",
    "Cascade",
    "CascadeEngine",
    "Router",
    "ValidationResult",
    "Wheel",
    "__version__",
    "error_codes",
    "pg_array",
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

# --- PostgreSQL array literals (hermes_core_rs/src/pgarray.rs, bindings in src/python/) ---

def pg_array(values: Iterable[object]) -> str:
    """`values` as one PostgreSQL array literal, to pass with a cast (`%s::uuid[]`)."""

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
    message: _MessageDict | dict[str, Any],
    policy: _PolicyDict | dict[str, Any] | None,
    now_ms: int,
) -> ValidationResult:
    """Validate one message (recipient, content, cascade plan, tenant policy) at `now_ms`."""

def validate_batch(
    messages: list[_MessageDict] | list[dict[str, Any]] | bytes,
    policy: _PolicyDict | dict[str, Any] | None,
    now_ms: int,
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
    failure_rate: float
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
        failure_window: int = 20,
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

# --- Timer wheel and cascade engine (hermes_core_rs/src/wheel, src/cascade;
# bindings in src/python/wheel.rs and src/python/cascade.rs) ---
#
# Message ids cross as 16-byte big-endian bytes (`uuid.UUID.bytes`; outputs are
# always bytes, so `uuid.UUID(bytes=b)` round-trips); single-id arguments also
# take an int (`uuid.UUID.int`). Batches take ids packed into one bytes object
# of 16 * n bytes. Times are integer milliseconds (any epoch, >= 0).

@final
class Wheel:
    """Timers by message id: hierarchical, 1 ms resolution, any deadline held.

    `advance` returns expired timers sorted by `max(deadline, t0)` (`t0` the
    wheel's time before the call): timers already due when set come first,
    then the rest in deadline order; ties in unspecified order.
    """

    def __new__(cls, now_ms: int) -> Wheel: ...
    @property
    def now(self) -> int:
        """The wheel's time: the last `now_ms` advanced to."""
    def __len__(self) -> int: ...
    def insert(self, id: bytes | int, deadline_ms: int) -> None:
        """Set `id`'s timer, replacing any pending one; a past deadline fires on next advance."""
    def insert_many(self, ids: bytes | Sequence[bytes | int], deadlines: Sequence[int]) -> None:
        """Set many timers: `ids` packed (16 bytes each) or a sequence of ids, one deadline each."""
    def cancel(self, id: bytes | int) -> bool:
        """Cancel `id`'s timer; False if none was pending."""
    def cancel_many(self, ids: bytes | Sequence[bytes | int]) -> int:
        """Cancel many timers (`ids` packed or a sequence); how many were pending."""
    def reschedule(self, id: bytes | int, deadline_ms: int) -> bool:
        """Move `id`'s pending timer; False (and nothing set) if none was pending."""
    def deadline(self, id: bytes | int) -> int | None:
        """The pending deadline of `id`, or None."""
    def next_deadline(self) -> int | None:
        """When `advance` next has work: exact within 64 ms, else a lower bound; None if empty."""
    def advance(self, now_ms: int) -> list[tuple[bytes, int]]:
        """Move time to `now_ms`; the expired timers as `(id, deadline)`."""
    def advance_packed(self, now_ms: int) -> tuple[bytes, list[int]]:
        """Move time to `now_ms`; the expired timers as `(packed ids, deadlines)`."""

class _StepPlanDict(TypedDict):
    channel: Literal["sms", "email", "push", "whatsapp"]
    timeout_ms: int
    success: NotRequired[Literal["accepted", "delivered", "read"] | None]
    """Default per channel: push `accepted`, others `delivered`."""
    provider: NotRequired[str | None]
    """Preferred provider account (a Router account id) for the first attempt."""
    max_attempts: NotRequired[int | None]
    """Attempts in the step, first try plus failovers (default 3)."""

class _PlanDict(TypedDict):
    steps: list[_StepPlanDict]
    send_at: NotRequired[int | None]
    expires_at: NotRequired[int | None]

class _StartEvent(TypedDict):
    id: NotRequired[bytes | int]
    type: Literal["start"]
    plan: _PlanDict

class _AcceptedEvent(TypedDict):
    id: NotRequired[bytes | int]
    type: Literal["accepted"]
    step: int
    attempt: int
    account: NotRequired[str | None]

class _FailedAttemptEvent(TypedDict):
    """`rejected` (the provider refused the message) or `provider_error` (5xx,
    timeout, no account left to route to). Retryable ones fail over to another
    account within the step; others end the step."""

    id: NotRequired[bytes | int]
    type: Literal["rejected", "provider_error"]
    step: int
    attempt: int
    retryable: bool
    account: NotRequired[str | None]

class _ReceiptEvent(TypedDict):
    id: NotRequired[bytes | int]
    type: Literal["receipt"]
    step: int
    attempt: int
    status: Literal["sent", "delivered", "read", "undelivered", "failed", "bounced"]

class _TimerFiredEvent(TypedDict):
    id: NotRequired[bytes | int]
    type: Literal["timer_fired"]
    deadline: int

class _BareEvent(TypedDict):
    """`cancel`, or `expire` (honoured once `expires_at` has passed)."""

    id: NotRequired[bytes | int]
    type: Literal["cancel", "expire"]

_CascadeEvent = (
    _StartEvent
    | _AcceptedEvent
    | _FailedAttemptEvent
    | _ReceiptEvent
    | _TimerFiredEvent
    | _BareEvent
)

class _DispatchAction(TypedDict):
    """Send attempt `attempt` of `step`: with `provider`, or (None) an account the
    router picks outside `exclude`."""

    id: NotRequired[bytes]
    type: Literal["dispatch"]
    step: int
    attempt: int
    channel: Literal["sms", "email", "push", "whatsapp"]
    provider: str | None
    exclude: list[str]

class _SetTimerAction(TypedDict):
    """Set the message's one timer (replacing any); persist it as its deadline."""

    id: NotRequired[bytes]
    type: Literal["set_timer"]
    deadline: int

class _BareAction(TypedDict):
    """`cancel_timer`; or `unknown` (engine only: no cascade held for the id;
    restore it from its stored state and apply the event again)."""

    id: NotRequired[bytes]
    type: Literal["cancel_timer", "unknown"]

class _FinishAction(TypedDict):
    id: NotRequired[bytes]
    type: Literal["finish"]
    outcome: Literal["delivered", "read", "accepted", "failed", "expired", "cancelled"]

class _NotifyAction(TypedDict):
    """A status change for tenant webhooks; `finished` carries the outcome."""

    id: NotRequired[bytes]
    type: Literal["notify"]
    notice: Literal[
        "scheduled",
        "sent",
        "delivered",
        "fallback",
        "late_delivered",
        "late_read",
        "read",
        "finished",
    ]
    step: int | None
    outcome: str | None

class _TimelineAction(TypedDict):
    """A timeline entry, stamped by the host with the call's `now_ms`."""

    id: NotRequired[bytes]
    type: Literal["timeline"]
    kind: Literal[
        "scheduled",
        "step_started",
        "dispatched",
        "accepted",
        "rejected",
        "provider_error",
        "failover",
        "receipt",
        "step_failed",
        "step_timed_out",
        "fallback",
        "late_receipt",
        "finished",
    ]
    step: int | None
    attempt: int | None
    detail: str | None

_CascadeAction = (
    _DispatchAction
    | _SetTimerAction
    | _BareAction
    | _FinishAction
    | _NotifyAction
    | _TimelineAction
)

@final
class CascadeEngine:
    """Every live cascade of a worker, with their timers in one wheel.

    `apply` and `tick` run whole batches in Rust without the GIL; expiring
    timers drive transitions there, with no Python call per timer. Timer
    actions are applied to the wheel and also returned, so the host can
    persist each message's deadline. Finished cascades are dropped, so a
    redelivered `start` for a finished message must be filtered by the host
    (from the message's stored status).

    A worker's loop, in outline::

        actions = engine.apply(events_from_nats, now_ms)   # start, results, receipts
        actions += engine.tick(now_ms)                      # step timeouts, send_at, expiry
        # persist timeline/notify/set_timer/finish per message id, publish each
        # dispatch as a delivery job (Router.select(..., exclude=a["exclude"])
        # when a["provider"] is None), then sleep until engine.next_deadline()
        # or the next event.
    """

    def __new__(cls, now_ms: int) -> CascadeEngine: ...
    def __len__(self) -> int: ...
    @property
    def timers(self) -> int:
        """Pending timers (one per live cascade)."""
    def next_deadline(self) -> int | None:
        """When `tick` next has work (see `Wheel.next_deadline`), or None."""
    def apply(self, events: Sequence[_CascadeEvent], now_ms: int) -> list[_CascadeAction]:
        """Apply events (each with its `id`) in order; the actions, each with its `id`."""
    def tick(self, now_ms: int) -> list[_CascadeAction]:
        """Fire every timer due at `now_ms`; the actions that follow."""
    def dump(self) -> bytes:
        """All held cascades and the engine's time, as versioned bytes."""
    @staticmethod
    def load(data: bytes) -> CascadeEngine:
        """An engine rebuilt from `dump()`; ValueError for damaged or unknown bytes."""
    def restore(self, items: Sequence[tuple[bytes | int, bytes]]) -> None:
        """Add cascades from `(id, Cascade.to_bytes())` pairs; due timers fire on the next tick."""
    def export(self, ids: Sequence[bytes | int]) -> list[bytes | None]:
        """The persisted state of each id (None where none is held)."""

@final
class Cascade:
    """One message's cascade machine, standalone: `(state, event, now) -> actions`."""

    def __new__(cls) -> Cascade: ...
    @staticmethod
    def from_bytes(data: bytes) -> Cascade:
        """A cascade from its persisted state; ValueError if damaged."""
    def to_bytes(self) -> bytes:
        """The persisted state (versioned binary)."""
    def handle(self, event: _CascadeEvent, now_ms: int) -> list[_CascadeAction]:
        """Apply one event (its `id` is ignored); the actions, without ids."""
    @property
    def phase(self) -> Literal["created", "scheduled", "active", "finished"]: ...
    @property
    def outcome(self) -> str | None:
        """The outcome once finished, else None."""
    @property
    def step(self) -> int:
        """The running step; once finished with a success, the step that succeeded."""
    @property
    def timer(self) -> int | None:
        """The pending timer's deadline, or None."""
    @property
    def step_statuses(self) -> list[str]:
        """Each step's status: pending, in_flight, accepted, delivered, read, failed, timed_out."""

# --- Adapter sandbox (hermes_core_rs/src/sandbox, bindings in src/python/sandbox.rs) ---

class _AdapterStatsDict(TypedDict):
    sha256: str
    name: str
    version: str
    calls: int
    failures: int
    fuel: int

class AdapterError(Exception):
    """A provider adapter failed to load or to run.

    `code` is a catalogue code chosen by the host (`adapter.invalid_module`,
    `adapter.out_of_fuel`, `adapter.timeout`, `adapter.memory_exceeded`,
    `adapter.trap`, `adapter.bad_output`, `adapter.host_not_allowed`,
    `request.not_found` for an adapter that is not loaded, `request.invalid`
    for a malformed argument) or the code the adapter itself returned in
    `{"error": {"code", "message"}}` (such as `adapter.bad_input`).
    `args` is `(code, message)`.
    """

    code: str
    message: str

@final
class AdapterInfo:
    """A loaded adapter version, as `AdapterRuntime.load` returns it."""

    @property
    def sha256(self) -> str:
        """SHA-256 of the wasm bytes, lower-case hex: the version's id in every call."""
    @property
    def name(self) -> str:
        """The manifest's adapter name (`twilio_sms`)."""
    @property
    def version(self) -> str:
        """The manifest's adapter version."""
    @property
    def channels(self) -> list[str]:
        """The channels the adapter serves."""
    @property
    def allowed_hosts(self) -> list[str]:
        """Hosts `build_request` may target (`*.example.com` covers subdomains)."""
    @property
    def manifest_json(self) -> str:
        """The whole manifest object as the adapter wrote it (JSON text)."""
    @property
    def source(self) -> Literal["compiled", "disk_cache", "memory_cache"]:
        """Where the compiled code came from."""
    @property
    def load_seconds(self) -> float:
        """Time to obtain compiled code: compiling, or reading the cache (0 if already loaded)."""

@final
class AdapterRuntime:
    """Hosts provider adapters (WebAssembly, ABI v1 in adapters_wasm/ABI.md).

    Every call runs on a fresh instance of a pre-instantiated module, so no
    message's data survives into the next call, under these limits:

    - `fuel`: instruction budget per call (default 50 M) -> `adapter.out_of_fuel`
    - `timeout_ms`: wall-clock deadline per call (default 50 ms, epoch-based,
      to within 1 ms) -> `adapter.timeout`
    - `memory_bytes`: linear memory cap (default 16 MiB, at most 64 MiB)
      -> `adapter.memory_exceeded`
    - `output_bytes`: output size cap (default 1 MiB) -> `adapter.bad_output`

    Compiled code is cached in memory and, when `cache_dir` is given, on disk,
    keyed by the wasm's SHA-256, the wasmtime version and the engine settings.
    The directory must be private to Hermes: its files are loaded as machine
    code. Calls release the GIL; the batch methods run many messages in one
    call and report each message's failure in place, as an `AdapterError`.
    At most 64 calls run at once per process (the pooled instances); a call
    beyond that fails at once with `internal.error`, which is retryable.
    """

    def __new__(
        cls,
        cache_dir: str | os.PathLike[str] | None = None,
        *,
        fuel: int = ...,
        timeout_ms: int = ...,
        memory_bytes: int = ...,
        output_bytes: int = ...,
    ) -> AdapterRuntime:
        """Raises `ValueError` for limits out of range."""
    @property
    def fuel(self) -> int: ...
    @property
    def timeout_ms(self) -> int: ...
    @property
    def memory_bytes(self) -> int: ...
    @property
    def output_bytes(self) -> int: ...
    def load(self, wasm: bytes) -> AdapterInfo:
        """Validate and load a module (no imports, the ABI's exports and
        signatures, `hermes_abi_version() == 1`, a valid manifest).

        Raises `AdapterError` (`adapter.invalid_module`). Loading bytes already
        loaded returns the loaded version.
        """
    def unload(self, sha256: str) -> bool:
        """Forget a version; calls in flight on it finish. False if it was not loaded."""
    def loaded(self) -> list[str]:
        """SHA-256s of the loaded versions, sorted."""
    def stats(self) -> list[_AdapterStatsDict]:
        """Running totals per loaded version (calls, failed calls, fuel consumed), by SHA-256."""
    def build_request(self, sha256: str, input: bytes, base_url: str | None = None) -> bytes:
        """Run `hermes_build_request` on one input; returns the `ok` JSON
        (`{"method", "url", "headers", "body"}`).

        The URL must be HTTPS to one of the manifest's `allowed_hosts`, or on
        the origin of `base_url` (the provider account's configured endpoint;
        None or "" when it has none), else `AdapterError`
        `adapter.host_not_allowed`.
        """
    def build_requests(
        self, sha256: str, inputs: list[bytes], base_url: str | None = None
    ) -> list[bytes | AdapterError]:
        """`build_request` for each input, in order, with the GIL released once."""
    def parse_response(self, sha256: str, input: bytes) -> bytes:
        """Run `hermes_parse_response` on `{"status", "headers", "body"}`; returns the `ok` JSON."""
    def parse_responses(self, sha256: str, inputs: list[bytes]) -> list[bytes | AdapterError]:
        """`parse_response` for each input, in order."""
    def parse_callback(self, sha256: str, input: bytes) -> bytes:
        """Run `hermes_parse_callback` on a received callback; returns the `ok` JSON."""
    def parse_callbacks(self, sha256: str, inputs: list[bytes]) -> list[bytes | AdapterError]:
        """`parse_callback` for each input, in order."""
