//! The vocabulary of the cascade: plans, events, actions and outcomes.
//!
//! Plain enums and structs; each enum that crosses to Python or into the
//! persisted state has a stable snake_case name and a stable byte code.

/// A provider account id, as the router names accounts (`Router.select`
/// returns one, `exclude` takes them). The machine only compares them.
pub type Account = String;

macro_rules! named_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $variant:ident = $code:literal => $text:literal,)+ }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u8)]
        pub enum $name { $($(#[$vm])* $variant = $code,)+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The stable snake_case name.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text,)+ }
            }

            pub fn parse(text: &str) -> Option<Self> {
                match text { $($text => Some($name::$variant),)+ _ => None }
            }

            pub fn from_code(code: u8) -> Option<Self> {
                match code { $($code => Some($name::$variant),)+ _ => None }
            }
        }
    };
}

named_enum!(
    /// A delivery channel.
    Channel {
        Sms = 0 => "sms",
        Email = 1 => "email",
        Push = 2 => "push",
        Whatsapp = 3 => "whatsapp",
    }
);

named_enum!(
    /// What ends a step successfully; ordered: read implies delivered implies accepted.
    Success {
        Accepted = 0 => "accepted",
        Delivered = 1 => "delivered",
        Read = 2 => "read",
    }
);

impl Channel {
    /// DESIGN §4 defaults: SMS, WhatsApp and email wait for delivery, push for acceptance.
    pub fn default_success(self) -> Success {
        match self {
            Channel::Push => Success::Accepted,
            Channel::Sms | Channel::Email | Channel::Whatsapp => Success::Delivered,
        }
    }
}

named_enum!(
    /// A provider's delivery report for one attempt.
    Receipt {
        /// Handed on by the provider (carrier, mail server); informative.
        Sent = 0 => "sent",
        Delivered = 1 => "delivered",
        Read = 2 => "read",
        /// Definite failures: the step ends early.
        Undelivered = 3 => "undelivered",
        Failed = 4 => "failed",
        Bounced = 5 => "bounced",
    }
);

impl Receipt {
    /// The success level this receipt proves, if any.
    pub fn proves(self) -> Option<Success> {
        match self {
            Receipt::Delivered => Some(Success::Delivered),
            Receipt::Read => Some(Success::Read),
            _ => None,
        }
    }

    pub fn is_failure(self) -> bool {
        matches!(self, Receipt::Undelivered | Receipt::Failed | Receipt::Bounced)
    }
}

named_enum!(
    /// How a cascade ended.
    Outcome {
        Delivered = 0 => "delivered",
        Read = 1 => "read",
        /// Success by acceptance (a push step), or the cascade ran out of steps
        /// with a provider holding the message and no failure reported.
        Accepted = 2 => "accepted",
        Failed = 3 => "failed",
        Expired = 4 => "expired",
        Cancelled = 5 => "cancelled",
    }
);

impl Outcome {
    pub(crate) fn of_success(success: Success) -> Outcome {
        match success {
            Success::Accepted => Outcome::Accepted,
            Success::Delivered => Outcome::Delivered,
            Success::Read => Outcome::Read,
        }
    }

    pub fn is_success(self) -> bool {
        matches!(self, Outcome::Delivered | Outcome::Read | Outcome::Accepted)
    }
}

named_enum!(
    /// Where one step stands, as recorded in the state (and the timeline).
    StepStatus {
        Pending = 0 => "pending",
        InFlight = 1 => "in_flight",
        Accepted = 2 => "accepted",
        Delivered = 3 => "delivered",
        Read = 4 => "read",
        Failed = 5 => "failed",
        TimedOut = 6 => "timed_out",
    }
);

named_enum!(
    /// What a timeline entry records. Every transition emits at least one.
    Kind {
        Scheduled = 0 => "scheduled",
        StepStarted = 1 => "step_started",
        Dispatched = 2 => "dispatched",
        Accepted = 3 => "accepted",
        Rejected = 4 => "rejected",
        ProviderError = 5 => "provider_error",
        Failover = 6 => "failover",
        Receipt = 7 => "receipt",
        StepFailed = 8 => "step_failed",
        StepTimedOut = 9 => "step_timed_out",
        Fallback = 10 => "fallback",
        LateReceipt = 11 => "late_receipt",
        Finished = 12 => "finished",
    }
);

named_enum!(
    /// A status change worth a tenant webhook.
    Notice {
        Scheduled = 0 => "scheduled",
        /// A provider accepted an attempt.
        Sent = 1 => "sent",
        /// Delivered, on a step that waits to be read.
        Delivered = 2 => "delivered",
        /// Moving to the next step.
        Fallback = 3 => "fallback",
        /// A receipt for a step the cascade had moved on from (or after it ended).
        LateDelivered = 4 => "late_delivered",
        LateRead = 5 => "late_read",
        /// A read receipt after the cascade ended delivered.
        Read = 6 => "read",
        /// The cascade ended; the outcome is in the action.
        Finished = 7 => "finished",
    }
);

/// One step of a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub channel: Channel,
    pub timeout_ms: u64,
    pub success: Success,
    /// The preferred provider account for the first attempt; failover attempts
    /// ask the host to route, excluding the accounts that failed.
    pub provider: Option<Account>,
    /// Attempts allowed in the step (first try plus failovers), at least 1.
    pub max_attempts: u8,
}

impl Step {
    pub fn new(channel: Channel, timeout_ms: u64) -> Step {
        Step {
            channel,
            timeout_ms,
            success: channel.default_success(),
            provider: None,
            max_attempts: 3,
        }
    }
}

/// What the cascade does: steps in order, an optional start time and an
/// optional deadline for the whole cascade.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    pub steps: Vec<Step>,
    pub send_at: Option<u64>,
    pub expires_at: Option<u64>,
}

/// An input to the machine. `step` and `attempt` name the attempt the host is
/// reporting on (attempt numbers are per message, from 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Start(Plan),
    /// The provider took the attempt (it has a provider message id).
    Accepted {
        step: u8,
        attempt: u16,
        account: Option<Account>,
    },
    /// The provider refused the message; retryable refusals (429) fail over.
    Rejected {
        step: u8,
        attempt: u16,
        account: Option<Account>,
        retryable: bool,
    },
    /// The provider or account failed (5xx, timeout); retryable ones fail
    /// over, others end the step. "No account left to route to" is a
    /// non-retryable provider error without an account.
    ProviderError {
        step: u8,
        attempt: u16,
        account: Option<Account>,
        retryable: bool,
    },
    Receipt {
        step: u8,
        attempt: u16,
        status: Receipt,
    },
    /// The timer set with `deadline` fired.
    TimerFired {
        deadline: u64,
    },
    Cancel,
    /// The host saw `expires_at` pass; honoured only once it has.
    Expire,
}

/// What the host must do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send attempt `attempt` of `step`. `provider` is the account to use, or
    /// `None` to have the router choose one not in `exclude`.
    Dispatch {
        step: u8,
        attempt: u16,
        channel: Channel,
        provider: Option<Account>,
        exclude: Vec<Account>,
    },
    /// Set the message's one timer to `deadline`, replacing any pending one.
    SetTimer {
        deadline: u64,
    },
    CancelTimer,
    Finish {
        outcome: Outcome,
    },
    Notify {
        notice: Notice,
        step: Option<u8>,
        outcome: Option<Outcome>,
    },
    /// A timeline entry: `step`/`attempt` when it concerns one; `detail` is the
    /// receipt status, outcome or step status it reports.
    Timeline {
        kind: Kind,
        step: Option<u8>,
        attempt: Option<u16>,
        detail: Option<&'static str>,
    },
    /// Engine only: an event for a message the engine does not hold (never
    /// started here, or already finished and dropped). The host restores the
    /// cascade from its stored state and applies the event to it.
    Unknown,
}
