//! Walking a pod spec's containers, as upstream's podutil does: init containers first, then the others.

use k8s_openapi::api::core::v1::{Container, PodSpec};

/// Every container of `spec`: init containers (sidecars among them) in order, then the regular ones.
pub fn all_containers(spec: &PodSpec) -> impl Iterator<Item = &Container> {
    spec.init_containers
        .iter()
        .flatten()
        .chain(&spec.containers)
}

/// The container named `name`, init or regular.
pub fn find_container<'a>(spec: &'a PodSpec, name: &str) -> Option<&'a Container> {
    all_containers(spec).find(|c| c.name == name)
}

/// The field path events about container `name` carry: `spec.initContainers{name}` or
/// `spec.containers{name}`.
pub fn field_path(spec: &PodSpec, name: &str) -> String {
    let init = spec
        .init_containers
        .iter()
        .flatten()
        .any(|c| c.name == name);
    if init {
        format!("spec.initContainers{{{name}}}")
    } else {
        format!("spec.containers{{{name}}}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_containers_come_first_and_paths_name_their_list() {
        let spec: PodSpec = serde_json::from_value(serde_json::json!({
            "initContainers": [{"name": "setup"}],
            "containers": [{"name": "main"}, {"name": "side"}],
        }))
        .expect("spec");
        let names: Vec<&str> = all_containers(&spec).map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["setup", "main", "side"]);
        assert_eq!(
            find_container(&spec, "side").map(|c| c.name.as_str()),
            Some("side")
        );
        assert!(find_container(&spec, "nope").is_none());
        assert_eq!(field_path(&spec, "setup"), "spec.initContainers{setup}");
        assert_eq!(field_path(&spec, "main"), "spec.containers{main}");
    }
}
