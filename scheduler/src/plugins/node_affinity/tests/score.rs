use super::*;

#[test]
fn score_sums_weights_of_matching_preferred_terms() {
    let label1: &[(&str, &str)] = &[("foo", "bar")];
    let label2: &[(&str, &str)] = &[("key", "value")];
    let label3: &[(&str, &str)] = &[("az", "az1")];
    let label4: &[(&str, &str)] = &[("abc", "az11"), ("def", "az22")];
    let label5: &[(&str, &str)] = &[("foo", "bar"), ("key", "value"), ("az", "az1")];
    let foo_bar = exprs(vec![expr("foo", "In", &["bar"])]);
    let key_value = exprs(vec![expr("key", "In", &["value"])]);
    let affinity1 = preferred_spec(&[(2, foo_bar.clone())]);
    let affinity2 = preferred_spec(&[
        (2, foo_bar.clone()),
        (4, key_value.clone()),
        (
            5,
            exprs(vec![
                expr("foo", "In", &["bar"]),
                expr("key", "In", &["value"]),
                expr("az", "In", &["az1"]),
            ]),
        ),
    ]);
    type Nodes<'a> = Vec<(&'a str, &'a [(&'a str, &'a str)])>;
    /// (name, pod, nodes, added affinity, PreScore enabled, expected scores)
    type Case<'a> = (
        &'a str,
        MakePod,
        Nodes<'a>,
        Option<NodeAffinitySpec>,
        bool,
        Vec<i64>,
    );
    let cases: Vec<Case> = vec![
        (
            "all nodes are same priority as NodeAffinity is nil",
            make_pod("p"),
            vec![("node1", label1), ("node2", label2), ("node3", label3)],
            None,
            true,
            vec![0, 0, 0],
        ),
        (
            "no node matches the preferred terms",
            make_pod("p").with_spec(affinity(affinity1.clone())),
            vec![("node1", label4), ("node2", label2), ("node3", label3)],
            None,
            true,
            vec![0, 0, 0],
        ),
        (
            "only node1 matches the preferred terms",
            make_pod("p").with_spec(affinity(affinity1.clone())),
            vec![("node1", label1), ("node2", label2), ("node3", label3)],
            None,
            true,
            vec![MAX_NODE_SCORE, 0, 0],
        ),
        (
            "all nodes match with different priorities",
            make_pod("p").with_spec(affinity(affinity2.clone())),
            vec![("node1", label1), ("node5", label5), ("node2", label2)],
            None,
            true,
            vec![18, MAX_NODE_SCORE, 36],
        ),
        (
            "added affinity",
            make_pod("p"),
            vec![("node1", label1), ("node2", label2)],
            Some(affinity1.clone()),
            true,
            vec![MAX_NODE_SCORE, 0],
        ),
        (
            "added affinity and the pod's own affinity",
            make_pod("p").with_spec(affinity(affinity1.clone())),
            vec![("node1", label1), ("node2", label2), ("node3", label5)],
            Some(preferred_spec(&[(3, key_value.clone())])),
            true,
            vec![40, 60, MAX_NODE_SCORE],
        ),
        (
            "priorities are right even if PreScore is not called",
            make_pod("p").with_spec(affinity(affinity2)),
            vec![("node1", label1), ("node5", label5), ("node2", label2)],
            None,
            false,
            vec![18, MAX_NODE_SCORE, 36],
        ),
        (
            "zero-weight and empty terms do not count",
            make_pod("p").with_spec(affinity(preferred_spec(&[
                (0, foo_bar.clone()),
                (7, NodeSelectorTerm::default()),
                (1, key_value),
            ]))),
            vec![("node1", label1), ("node2", label2)],
            None,
            true,
            vec![0, MAX_NODE_SCORE],
        ),
    ];
    for (name, pod, nodes, added, run_pre_score, want) in cases {
        let plugin = plugin(added);
        let pod = pod.info();
        let nodes: Vec<Arc<NodeInfo>> = nodes.iter().map(|(n, l)| Arc::new(node(n, l))).collect();
        let mut state = CycleState::default();
        if run_pre_score {
            let status = plugin.pre_score(&mut state, &pod, &nodes, &Snapshot::default());
            if status.is_skip() {
                assert!(
                    want.iter().all(|s| *s == 0),
                    "{name}: skipped but scores expected"
                );
                continue;
            }
            assert!(status.is_success(), "{name}: {status}");
        }
        let mut scores: Vec<NodeScore> = nodes
            .iter()
            .map(|n| NodeScore {
                name: n.name().to_string(),
                score: plugin.score(&state, &pod, n).unwrap(),
            })
            .collect();
        assert!(
            plugin
                .normalize_score(&state, &pod, &mut scores)
                .is_success()
        );
        let got: Vec<i64> = scores.iter().map(|s| s.score).collect();
        assert_eq!(got, want, "{name}");
    }
}

#[test]
fn pre_score_rejects_unparsable_preferred_terms() {
    let pod = make_pod("p")
        .with_spec(affinity(preferred_spec(&[(
            1,
            exprs(vec![expr("foo", "In", &[])]),
        )])))
        .info();
    let status =
        plugin(None).pre_score(&mut CycleState::default(), &pod, &[], &Snapshot::default());
    assert_eq!(status.code(), Code::Error);
}

#[test]
fn new_rejects_unparsable_added_affinity() {
    let handle = Handle::for_tests(StaticListers::default());
    let bad_required = required_spec(vec![exprs(vec![expr("zone", "Gt", &["x"])])]);
    let error = NodeAffinity::new(
        &NodeAffinityArgs {
            added_affinity: Some(bad_required),
        },
        &handle,
    )
    .unwrap_err();
    assert!(
        error.starts_with("parsing addedAffinity.requiredDuringSchedulingIgnoredDuringExecution: "),
        "{error}"
    );
    let bad_preferred = preferred_spec(&[(1, exprs(vec![expr("zone", "Bogus", &["x"])]))]);
    let error = NodeAffinity::new(
        &NodeAffinityArgs {
            added_affinity: Some(bad_preferred),
        },
        &handle,
    )
    .unwrap_err();
    assert!(
        error
            .starts_with("parsing addedAffinity.preferredDuringSchedulingIgnoredDuringExecution: "),
        "{error}"
    );
}

#[test]
fn registers_node_add_and_label_updates() {
    let events = plugin(None).events_to_register();
    assert_eq!(
        events,
        [ClusterEvent::new(
            EventResource::Node,
            ActionType::ADD.or(ActionType::UPDATE_NODE_LABEL)
        )]
    );
}
