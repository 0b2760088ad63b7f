//! ImageLocality: prefers nodes that already have the pod's images, weighing each image by its size
//! and by how widely it is spread across the cluster (upstream `plugins/imagelocality`).

use std::borrow::Cow;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;

use crate::framework::node_info::ImageStateSummary;
use crate::framework::{
    CycleState, Handle, MAX_NODE_SCORE, NodeInfo, Plugin, PodInfo, PreScorePlugin, ScorePlugin,
    Snapshot, Status,
};

/// The plugin name.
pub const NAME: &str = "ImageLocality";
const MB: i64 = 1024 * 1024;
/// Below this sum of scaled image sizes a node scores 0 (90% of registry images are 23MB–1000MB).
const MIN_THRESHOLD: i64 = 23 * MB;
/// Per image the pod needs, the sum of scaled sizes at which a node scores the maximum.
const MAX_CONTAINER_THRESHOLD: i64 = 1000 * MB;
const PRE_SCORE_STATE_KEY: &str = "PreScoreImageLocality";

/// The pod's normalised image names and the cluster size, computed once per cycle. Upstream reads
/// the node count from the snapshot in Score; here Score has no snapshot, so PreScore records it.
#[derive(Clone, Debug)]
struct PreScoreState {
    images: Arc<[String]>,
    total_num_nodes: usize,
}

/// The CRI name of an image: `:latest` is implied when the reference has neither tag nor digest.
pub fn normalized_image_name(name: &str) -> Cow<'_, str> {
    // A ':' before the last '/' belongs to a registry port, not a tag.
    if name.rfind(':') <= name.rfind('/') {
        Cow::Owned(format!("{name}:latest"))
    } else {
        Cow::Borrowed(name)
    }
}

/// The images the pod needs on its node: init containers', containers' and image volumes'.
fn pod_images(pod: &Pod) -> Vec<String> {
    let Some(spec) = pod.spec.as_ref() else {
        return Vec::new();
    };
    let containers = spec
        .init_containers
        .iter()
        .flatten()
        .chain(spec.containers.iter())
        .map(|c| c.image.as_deref().unwrap_or_default());
    let volumes = spec
        .volumes
        .iter()
        .flatten()
        .filter_map(|v| v.image.as_ref())
        .map(|image| image.reference.as_deref().unwrap_or_default());
    containers
        .chain(volumes)
        .map(|name| normalized_image_name(name).into_owned())
        .collect()
}

/// An image's size scaled by the fraction of nodes that have it, which keeps pods from piling onto
/// the few nodes that happen to hold a large image ("node heating").
fn scaled_image_score(state: &ImageStateSummary, total_num_nodes: usize) -> i64 {
    let spread = state.num_nodes as f64 / total_num_nodes.max(1) as f64;
    (state.size as f64 * spread) as i64
}

/// Maps the sum of scaled image sizes linearly onto [0, MAX_NODE_SCORE] between the thresholds.
fn calculate_priority(sum_scores: i64, num_images: usize) -> i64 {
    let max_threshold = MAX_CONTAINER_THRESHOLD * num_images as i64;
    let clamped = if sum_scores < MIN_THRESHOLD {
        MIN_THRESHOLD
    } else if sum_scores > max_threshold {
        max_threshold
    } else {
        sum_scores
    };
    MAX_NODE_SCORE * (clamped - MIN_THRESHOLD) / (max_threshold - MIN_THRESHOLD)
}

/// The ImageLocality plugin.
#[derive(Debug, Default)]
pub struct ImageLocality;

impl ImageLocality {
    /// Creates the plugin; it has no arguments.
    pub fn new(_handle: &Handle) -> Result<Self, String> {
        Ok(Self)
    }
}

impl Plugin for ImageLocality {
    fn name(&self) -> &'static str {
        NAME
    }

    fn as_pre_score(&self) -> Option<&dyn PreScorePlugin> {
        Some(self)
    }

    fn as_score(&self) -> Option<&dyn ScorePlugin> {
        Some(self)
    }
}

impl PreScorePlugin for ImageLocality {
    fn pre_score(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        _nodes: &[Arc<NodeInfo>],
        snapshot: &Snapshot,
    ) -> Status {
        state.write(
            PRE_SCORE_STATE_KEY,
            PreScoreState {
                images: pod_images(&pod.pod).into(),
                total_num_nodes: snapshot.len(),
            },
        );
        Status::success()
    }
}

impl ScorePlugin for ImageLocality {
    fn score(&self, state: &CycleState, _pod: &PodInfo, node: &NodeInfo) -> Result<i64, Status> {
        let Some(s) = state.read::<PreScoreState>(PRE_SCORE_STATE_KEY) else {
            return Err(Status::error(format!(
                "reading {PRE_SCORE_STATE_KEY:?} from cycleState: not found"
            )));
        };
        let sum: i64 = s
            .images
            .iter()
            .filter_map(|image| node.image_states.get(image))
            .map(|summary| scaled_image_score(summary, s.total_num_nodes))
            .sum();
        Ok(calculate_priority(sum, s.images.len()))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use k8s_openapi::api::core::v1::{Container, ImageVolumeSource, PodSpec, Volume};

    use super::*;
    use crate::framework::Code;
    use crate::testing::{make_node, make_pod};

    /// Images as (names, size in MB), as the node reports them in `status.images`.
    type NodeImages<'a> = &'a [(&'a [&'a str], i64)];

    /// NodeInfos whose image states count the nodes holding each image name, as the cache does.
    fn nodes_with_images(nodes: &[(&str, NodeImages<'_>)]) -> Vec<Arc<NodeInfo>> {
        let mut holders: HashMap<&str, usize> = HashMap::new();
        for (_, images) in nodes {
            let mut names: Vec<&str> = images.iter().flat_map(|(n, _)| n.iter().copied()).collect();
            names.sort_unstable();
            names.dedup();
            for name in names {
                *holders.entry(name).or_default() += 1;
            }
        }
        nodes
            .iter()
            .map(|(node, images)| {
                let mut info = make_node(node).info(vec![]);
                for (names, size) in images.iter() {
                    for name in names.iter() {
                        info.image_states.insert(
                            name.to_string(),
                            ImageStateSummary {
                                size: size * MB,
                                num_nodes: holders[name],
                            },
                        );
                    }
                }
                Arc::new(info)
            })
            .collect()
    }

    fn pod_spec(containers: &[&str], init: &[&str], volumes: &[&str]) -> Arc<PodInfo> {
        let container = |image: &&str| Container {
            name: image.to_string(),
            image: Some(image.to_string()),
            ..Default::default()
        };
        make_pod("p")
            .with_spec(|s| {
                *s = PodSpec {
                    containers: containers.iter().map(container).collect(),
                    init_containers: Some(init.iter().map(container).collect()),
                    volumes: Some(
                        volumes
                            .iter()
                            .map(|r| Volume {
                                name: r.to_string(),
                                image: Some(ImageVolumeSource {
                                    reference: Some(r.to_string()),
                                    ..Default::default()
                                }),
                                ..Default::default()
                            })
                            .collect(),
                    ),
                    ..Default::default()
                }
            })
            .info()
    }

    #[test]
    fn scores_follow_upstream() {
        let n403002000: NodeImages = &[
            (&["gcr.io/40:latest", "gcr.io/40:v1", "gcr.io/40:v1"], 40),
            (&["gcr.io/300:latest", "gcr.io/300:v1"], 300),
            (&["gcr.io/2000:latest"], 2000),
        ];
        let n25010: NodeImages = &[
            (&["gcr.io/250:latest"], 250),
            (&["gcr.io/10:latest", "gcr.io/10:v1"], 10),
        ];
        let n60040900: NodeImages = &[
            (&["gcr.io/600:latest"], 600),
            (&["gcr.io/40:latest"], 40),
            (&["gcr.io/900:latest"], 900),
        ];
        let n300600900: NodeImages = &[
            (&["gcr.io/300:latest"], 300),
            (&["gcr.io/600:latest"], 600),
            (&["gcr.io/900:latest"], 900),
        ];
        let n400030: NodeImages = &[(&["gcr.io/4000:latest"], 4000), (&["gcr.io/30:latest"], 30)];
        let n203040: NodeImages = &[
            (&["gcr.io/20:latest"], 20),
            (&["gcr.io/30:latest"], 30),
            (&["gcr.io/40:latest"], 40),
        ];
        let none: NodeImages = &[];
        let cases = [
            (
                "two images spread on two nodes, prefer the larger image one",
                pod_spec(&["gcr.io/40", "gcr.io/250"], &[], &[]),
                vec![("node1", n403002000), ("node2", n25010)],
                vec![0, 5],
            ),
            (
                "two images on one node, prefer this node",
                pod_spec(&["gcr.io/40", "gcr.io/300"], &[], &[]),
                vec![("node1", n403002000), ("node2", n25010)],
                vec![7, 0],
            ),
            (
                "if exceed limit, use limit",
                pod_spec(&["gcr.io/10", "gcr.io/4000"], &[], &[]),
                vec![("node1", n400030), ("node2", n25010)],
                vec![MAX_NODE_SCORE, 0],
            ),
            (
                "if exceed limit, use limit (with node which has no images present)",
                pod_spec(&["gcr.io/10", "gcr.io/4000"], &[], &[]),
                vec![("node1", n400030), ("node2", n25010), ("node3", none)],
                vec![66, 0, 0],
            ),
            (
                "pod with multiple large images, node2 is preferred",
                pod_spec(&["gcr.io/300", "gcr.io/600", "gcr.io/900"], &[], &[]),
                vec![("node1", n60040900), ("node2", n300600900), ("node3", none)],
                vec![32, 36, 0],
            ),
            (
                "pod with multiple small images",
                pod_spec(&["gcr.io/30", "gcr.io/40"], &[], &[]),
                vec![("node1", n203040), ("node2", n400030)],
                vec![1, 0],
            ),
            (
                "include InitContainers: two images spread on two nodes, prefer the larger image one",
                pod_spec(&["gcr.io/30"], &["gcr.io/300"], &[]),
                vec![("node1", n403002000), ("node2", n203040)],
                vec![6, 0],
            ),
            (
                "include image volumes: two images spread on two nodes, prefer the larger image one",
                pod_spec(&["gcr.io/30"], &[], &["gcr.io/300"]),
                vec![("node1", n403002000), ("node2", n203040)],
                vec![6, 0],
            ),
        ];
        for (name, pod, nodes, want) in cases {
            let nodes = nodes_with_images(&nodes);
            let snapshot = Snapshot::new(nodes.clone());
            let mut state = CycleState::default();
            assert!(
                ImageLocality
                    .pre_score(&mut state, &pod, &nodes, &snapshot)
                    .is_success()
            );
            let got: Vec<i64> = nodes
                .iter()
                .map(|n| ImageLocality.score(&state, &pod, n).unwrap())
                .collect();
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn normalized_image_names_as_upstream() {
        let digest = "sha256:4813494d137e1631bba301d5acab6e7bb7aa74ce1185d456565ef51d737677b2";
        let cases = [
            ("root", "root:latest".to_string()),
            ("gcr.io:5000/root", "gcr.io:5000/root:latest".to_string()),
            ("root:tag", "root:tag".to_string()),
            (&format!("root@{digest}"), format!("root@{digest}")),
        ];
        for (input, want) in cases {
            assert_eq!(normalized_image_name(input), want, "{input}");
        }
    }

    #[test]
    fn score_without_pre_score_state_is_an_error() {
        let result = ImageLocality.score(
            &CycleState::default(),
            &make_pod("p").info(),
            &make_node("n").info(vec![]),
        );
        assert_eq!(result.map_err(|s| s.code()), Err(Code::Error));
    }
}
