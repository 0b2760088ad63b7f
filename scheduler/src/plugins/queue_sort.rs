//! PrioritySort: orders the active queue by pod priority, then by the time pods entered the queue
//! (upstream `plugins/queuesort`).

use crate::framework::{Handle, Plugin, QueueSortPlugin, QueuedPodInfo};

/// The plugin name.
pub const NAME: &str = "PrioritySort";

/// The PrioritySort plugin.
#[derive(Debug, Default)]
pub struct PrioritySort;

impl PrioritySort {
    /// Creates the plugin; it has no arguments.
    pub fn new(_handle: &Handle) -> Result<Self, String> {
        Ok(Self)
    }
}

impl Plugin for PrioritySort {
    fn name(&self) -> &'static str {
        NAME
    }

    fn as_queue_sort(&self) -> Option<&dyn QueueSortPlugin> {
        Some(self)
    }
}

impl QueueSortPlugin for PrioritySort {
    fn less(&self, a: &QueuedPodInfo, b: &QueuedPodInfo) -> bool {
        let (p1, p2) = (a.pod_info.priority(), b.pod_info.priority());
        p1 > p2 || (p1 == p2 && a.timestamp < b.timestamp)
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::testing::make_pod;

    #[test]
    fn higher_priority_first_then_earlier_timestamp() {
        let t0 = Instant::now();
        let t1 = t0 + Duration::from_secs(1);
        let queued = |priority: i32, at: Instant| {
            QueuedPodInfo::new(make_pod("p").priority(priority).info(), at)
        };
        let (low, high) = (1, 2);
        let cases = [
            (
                "p1.priority less than p2.priority",
                queued(low, t0),
                queued(high, t0),
                false,
            ),
            (
                "p1.priority greater than p2.priority",
                queued(high, t0),
                queued(low, t0),
                true,
            ),
            (
                "equal priority, p1 added earlier",
                queued(high, t0),
                queued(high, t1),
                true,
            ),
            (
                "equal priority, p2 added earlier",
                queued(high, t1),
                queued(high, t0),
                false,
            ),
            (
                "same pod is not less than itself",
                queued(high, t0),
                queued(high, t0),
                false,
            ),
            (
                "priority beats an earlier timestamp",
                queued(low, t0),
                queued(high, t1),
                false,
            ),
        ];
        for (name, a, b, want) in cases {
            assert_eq!(PrioritySort.less(&a, &b), want, "{name}");
        }
    }
}
