//! Timers a strategy sets, in the quinn-proto style: nothing here reads a clock. A
//! strategy asks to be woken at a time with a token of its own
//! ([`crate::StrategyCtx::set_timer`]); the engine reports the earliest deadline through
//! [`crate::Engine::poll_timeout`], and the driver, once that time has come on its clock
//! (virtual time in the simulator), calls [`crate::Engine::handle_timeout`], which fires
//! every due timer in (deadline, token) order. A call before the deadline does nothing.
//!
//! A rank has few timers at once (a batching window, a retry), so they sit in a small
//! vector: setting and cancelling scan it, which is cheaper than any map at that size.

/// The timers of one strategy instance: at most one per token.
///
/// ```
/// use dagwire_runtime::core::timer::Timers;
/// let mut t = Timers::default();
/// t.set(50, 1);
/// t.set(20, 2);
/// t.set(70, 1); // token 1 moves to 70
/// assert_eq!(t.next(), Some(20));
/// let mut due = Vec::new();
/// t.take_due(60, &mut due);
/// assert_eq!(due, [(20, 2)]);
/// assert_eq!(t.next(), Some(70));
/// t.cancel(1);
/// assert_eq!(t.next(), None);
/// ```
#[derive(Clone, Debug, Default)]
pub struct Timers {
    /// (deadline ns, token), unordered.
    armed: Vec<(u64, u64)>,
}

impl Timers {
    /// Arms timer `token` for `at` (ns since the run started), replacing its earlier deadline.
    pub fn set(&mut self, at: u64, token: u64) {
        match self.armed.iter_mut().find(|(_, t)| *t == token) {
            Some(slot) => slot.0 = at,
            None => self.armed.push((at, token)),
        }
    }

    /// Disarms timer `token`, if armed.
    pub fn cancel(&mut self, token: u64) {
        self.armed.retain(|&(_, t)| t != token);
    }

    /// The earliest deadline, if any timer is armed.
    pub fn next(&self) -> Option<u64> {
        self.armed.iter().map(|&(at, _)| at).min()
    }

    /// Whether no timer is armed.
    pub fn is_empty(&self) -> bool {
        self.armed.is_empty()
    }

    /// Disarms every timer due at `now` and appends them to `due` as (deadline, token),
    /// earliest deadline first (ties by token), so firing order does not depend on the
    /// order they were set in.
    pub fn take_due(&mut self, now: u64, due: &mut Vec<(u64, u64)>) {
        let start = due.len();
        let mut i = 0;
        while i < self.armed.len() {
            if self.armed[i].0 <= now {
                due.push(self.armed.swap_remove(i));
            } else {
                i += 1;
            }
        }
        due[start..].sort_unstable();
    }
}
