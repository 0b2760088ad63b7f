//! The runner's handling of PostFilter verdicts, as upstream's `RunPostFilterPlugins`.

use std::sync::Arc;

use super::*;
use crate::config::{self, PluginSet};
use crate::framework::{
    CycleState, Handle, NoNominations, NodeToStatus, Plugin, PostFilterContext, PostFilterPlugin,
    PostFilterResult, Snapshot, StaticListers, Status,
};
use crate::plugins::{default_binder, queue_sort};
use crate::testing::make_pod;

/// A PostFilter plugin that always answers the same.
struct Fixed {
    name: &'static str,
    nomination: Option<&'static str>,
    status: Status,
}

impl Plugin for Fixed {
    fn name(&self) -> &'static str {
        self.name
    }

    fn as_post_filter(&self) -> Option<&dyn PostFilterPlugin> {
        Some(self)
    }
}

impl PostFilterPlugin for Fixed {
    fn post_filter(&self, _: &PostFilterContext<'_>) -> (Option<PostFilterResult>, Status) {
        let result = self.nomination.map(|node| PostFilterResult {
            nominated_node_name: node.into(),
            victims: Vec::new(),
        });
        (result, self.status.clone())
    }
}

/// Runs PostFilter over plugins answering `(nomination, status)` in order.
fn run(answers: Vec<(Option<&'static str>, Status)>) -> (Option<String>, Status) {
    const NAMES: [&str; 3] = ["First", "Second", "Third"];
    let fixed: Vec<Arc<dyn Plugin>> = answers
        .into_iter()
        .zip(NAMES)
        .map(|((nomination, status), name)| {
            Arc::new(Fixed {
                name,
                nomination,
                status,
            }) as Arc<dyn Plugin>
        })
        .collect();
    let enabled = |names: &[&str]| PluginSet {
        enabled: names.iter().map(|n| config::Plugin::new(n, None)).collect(),
        disabled: Vec::new(),
    };
    let post_filter: Vec<&str> = fixed.iter().map(|p| p.name()).collect();
    let plugins = config::Plugins {
        queue_sort: enabled(&[queue_sort::NAME]),
        bind: enabled(&[default_binder::NAME]),
        post_filter: enabled(&post_filter),
        ..Default::default()
    };
    let handle = Handle::for_tests(StaticListers::default());
    let factory = |name: &str| -> Option<Result<Arc<dyn Plugin>, String>> {
        match name {
            queue_sort::NAME => {
                Some(queue_sort::PrioritySort::new(&handle).map(|p| Arc::new(p) as _))
            }
            default_binder::NAME => {
                Some(default_binder::DefaultBinder::new(&handle).map(|p| Arc::new(p) as _))
            }
            _ => fixed.iter().find(|p| p.name() == name).cloned().map(Ok),
        }
    };
    let pool = Arc::new(
        rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .expect("pool"),
    );
    let framework = Framework::new("test", &plugins, &factory, None, pool).expect("framework");
    let pod = make_pod("p").info();
    let (result, status) = framework.run_post_filter(&PostFilterContext {
        framework: &framework,
        state: &CycleState::default(),
        pod: &pod,
        snapshot: &Snapshot::new(Vec::new()),
        statuses: &NodeToStatus::new(),
        nominator: &NoNominations,
    });
    (result.map(|r| r.nominated_node_name), status)
}

#[test]
fn success_stops_at_the_plugin_that_nominates() {
    let (nomination, status) = run(vec![
        (None, Status::unschedulable("no")),
        (Some("node-a"), Status::success()),
        (Some("node-b"), Status::success()),
    ]);
    assert_eq!(nomination.as_deref(), Some("node-a"));
    assert!(status.is_success());
    assert_eq!(status.plugin(), Some("Second"));
}

#[test]
fn an_unschedulable_verdict_keeps_the_nomination_override_and_collects_reasons() {
    let (nomination, status) = run(vec![
        (Some(""), Status::unschedulable("not helpful")),
        (None, Status::unschedulable("no victims")),
    ]);
    assert_eq!(nomination.as_deref(), Some(""));
    assert_eq!(status.code(), Code::Unschedulable);
    assert_eq!(status.reasons(), ["not helpful", "no victims"]);
}

#[test]
fn unresolvable_and_errors_stop_without_a_nomination() {
    for stop in [Status::unresolvable("never"), Status::error("broken")] {
        let code = stop.code();
        let (nomination, status) = run(vec![
            (Some(""), Status::unschedulable("no")),
            (Some("node-a"), stop),
            (Some("node-b"), Status::success()),
        ]);
        assert_eq!(nomination, None);
        assert_eq!(status.code(), code);
        assert_eq!(status.plugin(), Some("Second"));
    }
}
