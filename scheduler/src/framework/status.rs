//! The outcome of running a plugin (upstream `framework.Status`).

use std::fmt;

/// What a plugin's verdict means for the pod, as upstream's status codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Code {
    /// The plugin ran and the pod may go on.
    Success,
    /// An internal error: the attempt fails and the pod is retried with backoff.
    Error,
    /// The pod does not fit now; preemption may help.
    Unschedulable,
    /// The pod does not fit and preempting pods on this node would not change that.
    UnschedulableAndUnresolvable,
    /// A Permit plugin wants the pod to wait.
    Wait,
    /// The plugin has nothing to do for this pod; its later extension points are skipped.
    Skip,
    /// The pod waits for something outside the scheduler (for example a volume being provisioned).
    Pending,
}

/// A plugin's verdict: a code, the human-readable reasons, and the plugin that gave it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    code: Code,
    reasons: Vec<String>,
    plugin: Option<&'static str>,
}

impl Default for Status {
    fn default() -> Self {
        Self::success()
    }
}

impl Status {
    /// A status with `code` and `reasons`.
    pub fn new(code: Code, reasons: Vec<String>) -> Self {
        Self {
            code,
            reasons,
            plugin: None,
        }
    }

    /// Success.
    pub fn success() -> Self {
        Self::new(Code::Success, Vec::new())
    }

    /// An internal error.
    pub fn error(message: impl Into<String>) -> Self {
        Self::new(Code::Error, vec![message.into()])
    }

    /// Unschedulable with one reason.
    pub fn unschedulable(reason: impl Into<String>) -> Self {
        Self::new(Code::Unschedulable, vec![reason.into()])
    }

    /// Unschedulable and unresolvable with one reason.
    pub fn unresolvable(reason: impl Into<String>) -> Self {
        Self::new(Code::UnschedulableAndUnresolvable, vec![reason.into()])
    }

    /// Skip: the plugin does not apply to this pod.
    pub fn skip() -> Self {
        Self::new(Code::Skip, Vec::new())
    }

    /// The same status, attributed to `plugin` unless it already names one.
    pub fn with_plugin(mut self, plugin: &'static str) -> Self {
        self.plugin.get_or_insert(plugin);
        self
    }

    /// The code.
    pub fn code(&self) -> Code {
        self.code
    }

    /// The reasons, in the order the plugin gave them.
    pub fn reasons(&self) -> &[String] {
        &self.reasons
    }

    /// The plugin this status came from, if known.
    pub fn plugin(&self) -> Option<&'static str> {
        self.plugin
    }

    /// Whether the code is Success.
    pub fn is_success(&self) -> bool {
        self.code == Code::Success
    }

    /// Whether the code is Skip.
    pub fn is_skip(&self) -> bool {
        self.code == Code::Skip
    }

    /// Whether the pod was refused (Unschedulable or UnschedulableAndUnresolvable).
    pub fn is_rejected(&self) -> bool {
        matches!(
            self.code,
            Code::Unschedulable | Code::UnschedulableAndUnresolvable | Code::Pending
        )
    }

    /// The reasons joined as upstream's `Status.Message()`.
    pub fn message(&self) -> String {
        self.reasons.join(", ")
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.plugin {
            Some(plugin) => write!(f, "{plugin}: {:?}: {}", self.code, self.message()),
            None => write!(f, "{:?}: {}", self.code, self.message()),
        }
    }
}
