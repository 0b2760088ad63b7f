//! Resource amounts as the scheduler and the kubelet's admission count them (upstream `framework.Resource`)
//! and a pod's effective requests (upstream `resourcehelper.PodRequests`: init containers, sidecars, overhead).

use std::collections::BTreeMap;

use crate::quantity::{parse_milli, parse_value};
use k8s_openapi::api::core::v1::{Container, Pod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

/// Resource names the scheduler tracks in dedicated fields.
pub const CPU: &str = "cpu";
/// Memory in bytes.
pub const MEMORY: &str = "memory";
/// Local ephemeral storage in bytes.
pub const EPHEMERAL_STORAGE: &str = "ephemeral-storage";
/// The number of pods a node takes.
pub const PODS: &str = "pods";

/// CPU assumed for a container without a CPU request when scoring (upstream `DefaultMilliCPURequest`).
pub const DEFAULT_MILLI_CPU_REQUEST: i64 = 100;
/// Memory assumed for a container without a memory request when scoring (upstream `DefaultMemoryRequest`).
pub const DEFAULT_MEMORY_REQUEST: i64 = 200 * 1024 * 1024;

/// An amount of each resource: CPU in millicores, the rest in their base unit.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Resource {
    /// CPU in millicores.
    pub milli_cpu: i64,
    /// Memory in bytes.
    pub memory: i64,
    /// Ephemeral storage in bytes.
    pub ephemeral_storage: i64,
    /// Pods (only meaningful for a node's allocatable).
    pub allowed_pod_number: i64,
    /// Extended resources and hugepages, by name.
    pub scalar_resources: BTreeMap<String, i64>,
}

impl Resource {
    /// The amounts in a ResourceList (requests, limits, capacity or allocatable).
    pub fn from_list(list: Option<&BTreeMap<String, Quantity>>) -> Self {
        let mut resource = Self::default();
        for (name, quantity) in list.into_iter().flatten() {
            resource.set(name, quantity);
        }
        resource
    }

    fn set(&mut self, name: &str, quantity: &Quantity) {
        match name {
            CPU => self.milli_cpu = parse_milli(&quantity.0).unwrap_or(0),
            MEMORY => self.memory = parse_value(&quantity.0).unwrap_or(0),
            EPHEMERAL_STORAGE => self.ephemeral_storage = parse_value(&quantity.0).unwrap_or(0),
            PODS => self.allowed_pod_number = parse_value(&quantity.0).unwrap_or(0),
            name if is_scalar_resource(name) => {
                self.scalar_resources
                    .insert(name.to_string(), parse_value(&quantity.0).unwrap_or(0));
            }
            _ => {}
        }
    }

    /// The amount of resource `name` (CPU in millicores).
    pub fn get(&self, name: &str) -> i64 {
        match name {
            CPU => self.milli_cpu,
            MEMORY => self.memory,
            EPHEMERAL_STORAGE => self.ephemeral_storage,
            PODS => self.allowed_pod_number,
            other => self.scalar_resources.get(other).copied().unwrap_or(0),
        }
    }

    /// Adds `other` to these amounts.
    pub fn add(&mut self, other: &Resource) {
        self.milli_cpu += other.milli_cpu;
        self.memory += other.memory;
        self.ephemeral_storage += other.ephemeral_storage;
        self.allowed_pod_number += other.allowed_pod_number;
        for (name, value) in &other.scalar_resources {
            *self.scalar_resources.entry(name.clone()).or_default() += value;
        }
    }

    /// Subtracts `other` from these amounts.
    pub fn sub(&mut self, other: &Resource) {
        self.milli_cpu -= other.milli_cpu;
        self.memory -= other.memory;
        self.ephemeral_storage -= other.ephemeral_storage;
        self.allowed_pod_number -= other.allowed_pod_number;
        for (name, value) in &other.scalar_resources {
            *self.scalar_resources.entry(name.clone()).or_default() -= value;
        }
    }

    /// Raises each amount to at least `other`'s.
    pub fn set_max(&mut self, other: &Resource) {
        self.milli_cpu = self.milli_cpu.max(other.milli_cpu);
        self.memory = self.memory.max(other.memory);
        self.ephemeral_storage = self.ephemeral_storage.max(other.ephemeral_storage);
        self.allowed_pod_number = self.allowed_pod_number.max(other.allowed_pod_number);
        for (name, value) in &other.scalar_resources {
            let entry = self.scalar_resources.entry(name.clone()).or_default();
            *entry = (*entry).max(*value);
        }
    }

    /// Whether no resource is requested at all.
    pub fn is_zero(&self) -> bool {
        self.milli_cpu == 0
            && self.memory == 0
            && self.ephemeral_storage == 0
            && self.scalar_resources.values().all(|v| *v == 0)
    }
}

/// Extended resources (`example.com/gpu`), hugepages and attachable volume counts: everything the
/// scheduler counts besides CPU, memory, ephemeral storage and pods.
pub fn is_scalar_resource(name: &str) -> bool {
    name.starts_with("hugepages-") || name.starts_with("attachable-volumes-") || name.contains('/')
}

/// What a pod asks for: the requests the Fit filter checks, and the same with defaults for containers that
/// request nothing, which the scoring plugins use (upstream `NonZeroRequested`).
pub fn pod_requests(pod: &Pod) -> (Resource, Resource) {
    let Some(spec) = pod.spec.as_ref() else {
        return (Resource::default(), Resource::default());
    };
    let requests = |container: &Container| {
        Resource::from_list(
            container
                .resources
                .as_ref()
                .and_then(|r| r.requests.as_ref()),
        )
    };
    let non_zero = |container: &Container| {
        let mut resource = requests(container);
        let asked = container
            .resources
            .as_ref()
            .and_then(|r| r.requests.as_ref());
        if !asked.is_some_and(|r| r.contains_key(CPU)) {
            resource.milli_cpu = DEFAULT_MILLI_CPU_REQUEST;
        }
        if !asked.is_some_and(|r| r.contains_key(MEMORY)) {
            resource.memory = DEFAULT_MEMORY_REQUEST;
        }
        resource
    };
    let init = spec.init_containers.as_deref().unwrap_or_default();
    let overhead = Resource::from_list(spec.overhead.as_ref());
    let mut exact = combine(&spec.containers, init, requests);
    let mut scoring = combine(&spec.containers, init, non_zero);
    // Pod-level resources, when given, replace the containers' sum for the resources they name.
    if let Some(pod_level) = spec.resources.as_ref().and_then(|r| r.requests.as_ref()) {
        let pod_level_resource = Resource::from_list(Some(pod_level));
        for resource in [&mut exact, &mut scoring] {
            if pod_level.contains_key(CPU) {
                resource.milli_cpu = pod_level_resource.milli_cpu;
            }
            if pod_level.contains_key(MEMORY) {
                resource.memory = pod_level_resource.memory;
            }
            // Hugepages are pod-level resources too (upstream `IsSupportedPodLevelResource`).
            for (name, value) in &pod_level_resource.scalar_resources {
                if name.starts_with("hugepages-") {
                    resource.scalar_resources.insert(name.clone(), *value);
                }
            }
        }
    }
    exact.add(&overhead);
    scoring.add(&overhead);
    (exact, scoring)
}

/// Upstream's formula: app containers and sidecars run together; each init container runs with the
/// sidecars started before it; the pod needs the larger of the two.
fn combine(
    containers: &[Container],
    init_containers: &[Container],
    requests: impl Fn(&Container) -> Resource,
) -> Resource {
    let mut total = Resource::default();
    for container in containers {
        total.add(&requests(container));
    }
    let mut sidecars = Resource::default();
    let mut init_peak = Resource::default();
    for container in init_containers {
        let own = requests(container);
        if container.restart_policy.as_deref() == Some("Always") {
            total.add(&own);
            sidecars.add(&own);
            init_peak.set_max(&sidecars);
        } else {
            let mut running = own;
            running.add(&sidecars);
            init_peak.set_max(&running);
        }
    }
    total.set_max(&init_peak);
    total
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodSpec, ResourceRequirements};

    fn container(cpu: Option<&str>, memory: Option<&str>, restart: Option<&str>) -> Container {
        let mut requests = BTreeMap::new();
        if let Some(cpu) = cpu {
            requests.insert(CPU.to_string(), Quantity(cpu.to_string()));
        }
        if let Some(memory) = memory {
            requests.insert(MEMORY.to_string(), Quantity(memory.to_string()));
        }
        Container {
            name: "c".into(),
            resources: Some(ResourceRequirements {
                requests: Some(requests),
                ..Default::default()
            }),
            restart_policy: restart.map(String::from),
            ..Default::default()
        }
    }

    #[test]
    fn pod_requests_count_init_containers_sidecars_and_overhead() {
        let pod = Pod {
            spec: Some(PodSpec {
                containers: vec![
                    container(Some("100m"), Some("100Mi"), None),
                    container(Some("200m"), None, None),
                ],
                init_containers: Some(vec![
                    container(Some("50m"), Some("50Mi"), Some("Always")),
                    container(Some("1"), Some("10Mi"), None),
                ]),
                overhead: Some(BTreeMap::from([(
                    CPU.to_string(),
                    Quantity("10m".to_string()),
                )])),
                ..Default::default()
            }),
            ..Default::default()
        };
        let (exact, non_zero) = pod_requests(&pod);
        // Init container 1 CPU plus the 50m sidecar beats 350m of app containers and sidecar.
        assert_eq!(exact.milli_cpu, 1050 + 10);
        assert_eq!(exact.memory, 150 << 20);
        // The second app container asks for no memory: 200Mi counts when scoring.
        assert_eq!(
            non_zero.memory,
            (100 << 20) + DEFAULT_MEMORY_REQUEST + (50 << 20)
        );
        assert_eq!(non_zero.milli_cpu, 1050 + 10);
    }

    #[test]
    fn a_pod_without_requests_scores_as_the_defaults() {
        let pod = Pod {
            spec: Some(PodSpec {
                containers: vec![Container::default()],
                ..Default::default()
            }),
            ..Default::default()
        };
        let (exact, non_zero) = pod_requests(&pod);
        assert!(exact.is_zero());
        assert_eq!(non_zero.milli_cpu, DEFAULT_MILLI_CPU_REQUEST);
        assert_eq!(non_zero.memory, DEFAULT_MEMORY_REQUEST);
    }
}
