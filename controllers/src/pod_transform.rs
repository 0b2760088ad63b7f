//! What the controller-manager's pod informer keeps of a pod. Every pod carries volumes (at least the
//! projected ServiceAccount token volume the apiserver adds) and their mounts, and k8s-openapi's `Volume`
//! alone takes over 3 KiB, yet no controller here reads them: dropping them before caching takes about
//! half of each cached pod. A controller that comes to need volumes must stop dropping them here.

use k8s_openapi::api::core::v1::{Container, Pod};

/// Drops the fields of `pod` no controller reads: `spec.volumes` and the containers' volume mounts and
/// devices.
pub fn drop_unread_fields(pod: &mut Pod) {
    let Some(spec) = pod.spec.as_mut() else {
        return;
    };
    spec.volumes = None;
    let containers = spec
        .containers
        .iter_mut()
        .chain(spec.init_containers.iter_mut().flatten());
    for container in containers {
        forget_volumes(container);
    }
    for container in spec.ephemeral_containers.iter_mut().flatten() {
        container.volume_mounts = None;
        container.volume_devices = None;
    }
}

fn forget_volumes(container: &mut Container) {
    container.volume_mounts = None;
    container.volume_devices = None;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volumes_and_mounts_go_and_everything_else_stays() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "namespace": "ns", "labels": {"app": "a"}},
            "spec": {
                "nodeName": "n",
                "tolerations": [{"key": "k", "operator": "Exists"}],
                "volumes": [{"name": "v", "emptyDir": {}}],
                "initContainers": [{"name": "i", "restartPolicy": "Always",
                    "volumeMounts": [{"name": "v", "mountPath": "/v"}]}],
                "containers": [{"name": "c", "image": "busybox",
                    "ports": [{"name": "http", "containerPort": 80}],
                    "volumeMounts": [{"name": "v", "mountPath": "/v"}],
                    "volumeDevices": [{"name": "v", "devicePath": "/dev/v"}]}],
            },
            "status": {"phase": "Running", "podIP": "10.0.0.1"},
        }))
        .unwrap();
        let mut trimmed = pod.clone();
        drop_unread_fields(&mut trimmed);

        let mut expected = pod;
        let spec = expected.spec.as_mut().unwrap();
        spec.volumes = None;
        spec.containers[0].volume_mounts = None;
        spec.containers[0].volume_devices = None;
        spec.init_containers.as_mut().unwrap()[0].volume_mounts = None;
        assert_eq!(trimmed, expected);
        let container = &trimmed.spec.as_ref().unwrap().containers[0];
        assert_eq!(container.ports.as_ref().unwrap()[0].container_port, 80);
    }

    #[test]
    fn a_pod_without_spec_is_left_alone() {
        let mut pod = Pod::default();
        drop_unread_fields(&mut pod);
        assert_eq!(pod, Pod::default());
    }
}
