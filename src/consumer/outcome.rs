//! How a record ended: what the pipeline returns for it and the metrics
//! count.

/// How a record ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Its effects are committed now.
    Applied,
    /// It had been applied before (redelivery or replay).
    Duplicate,
    /// It could not be applied and was set aside.
    DeadLettered,
    /// Its payload type is unknown to this build: acknowledged, and its
    /// aggregate's version advanced, so later events are not held.
    Unhandled,
}

impl Outcome {
    /// The outcome as a span attribute.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Applied => "applied",
            Self::Duplicate => "duplicate",
            Self::DeadLettered => "dead_lettered",
            Self::Unhandled => "unhandled",
        }
    }
}
