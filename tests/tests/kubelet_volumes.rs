//! ferrokube-kubelet's volumes on a real containerd: a busybox pod reads an emptyDir (disk and Memory with
//! a size limit), a hostPath, a configMap volume with items and a mode, a secret volume, a downwardAPI
//! volume, a projected volume (secret, configMap, downwardAPI, a token for another audience) and the
//! admission-injected service-account volume (TokenRequest token, kube-root-ca.crt, namespace); a pod whose
//! ConfigMap is missing waits in ContainerCreating with a FailedMount event and starts once the ConfigMap
//! exists; a running pod sees its ConfigMap change; nothing stays mounted after the pods are gone.

use std::path::Path;
use std::time::Duration;

use base64::Engine;
use ferrokube_cluster::Identity;
use ferrokube_cluster::testing::{TestNamespace, shared_control_plane};
use ferrokube_tests::kubelet::{TestNode, events_about, every_pod_gone};
use ferrokube_tests::scheduling::eventually;
use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod, Secret, ServiceAccount};
use kube::api::{DeleteParams, PostParams};
use kube::{Api, Client};
use serde_json::json;

const NODE: &str = "node-1";
const BRIDGE: &str = "fk-vol0";
const POD_CIDR: &str = "10.252.0.0/24";
const SA_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

fn volumes_pod(host_dir: &Path) -> Pod {
    let script = format!(
        "echo scratch > /scratch/f; echo \"EMPTY=$(cat /scratch/f)\"; \
         echo \"CFG=$(cat /etc/cfg/hello.txt)\"; echo \"MODE=$(ls -lL /etc/cfg/hello.txt)\"; \
         echo \"LAYOUT=$(ls -a /etc/cfg | tr '\\n' ' ')\"; \
         echo \"SECRET=$(cat /etc/creds/password)\"; echo \"LABELS=$(cat /etc/info/labels)\"; \
         echo \"RESOURCES=$(cat /etc/info/cpu_limit) $(cat /etc/info/mem_request)\"; \
         echo \"NS=$(cat {SA_DIR}/namespace)\"; echo \"TOKEN=$(cat {SA_DIR}/token)\"; \
         echo \"CA=$(head -n 1 {SA_DIR}/ca.crt)\"; \
         echo \"HOST=$(cat /host/from-host)\"; echo from-pod > /host/from-pod; \
         echo \"MEM=$(grep ' /mem ' /proc/mounts)\"; \
         echo \"PROJ=$(cat /proj/pw) $(cat /proj/greet) $(cat /proj/name)\"; \
         echo \"VAULT=$(cat /proj/vault-token)\"; echo \"SUB=$(cat /single.txt)\"; \
         echo nested > /nested/f; echo \"NESTED=$(cat /scratch/made/by/kubelet/f)\""
    );
    serde_json::from_value(json!({
        "metadata": {"name": "volumes", "labels": {"app": "vol"}},
        "spec": {
            "nodeName": NODE,
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 2,
            "volumes": [
                {"name": "scratch", "emptyDir": {}},
                {"name": "cfg", "configMap": {
                    "name": "cfg", "defaultMode": 0o400,
                    "items": [{"key": "greeting", "path": "hello.txt"}],
                }},
                {"name": "creds", "secret": {"secretName": "creds"}},
                {"name": "info", "downwardAPI": {
                    "items": [
                        {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
                        {"path": "cpu_limit", "resourceFieldRef": {"containerName": "main", "resource": "limits.cpu"}},
                        {"path": "mem_request", "resourceFieldRef": {
                            "containerName": "main", "resource": "requests.memory", "divisor": "1Mi",
                        }},
                    ],
                }},
                {"name": "host", "hostPath": {"path": host_dir, "type": "DirectoryOrCreate"}},
                {"name": "mem", "emptyDir": {"medium": "Memory", "sizeLimit": "8Mi"}},
                {"name": "proj", "projected": {"sources": [
                    {"secret": {"name": "creds", "items": [{"key": "password", "path": "pw"}]}},
                    {"configMap": {"name": "cfg", "items": [{"key": "greeting", "path": "greet"}]}},
                    {"downwardAPI": {"items": [{"path": "name", "fieldRef": {"fieldPath": "metadata.name"}}]}},
                    {"serviceAccountToken": {"audience": "vault", "expirationSeconds": 600, "path": "vault-token"}},
                ]}},
            ],
            "containers": [{
                "name": "main",
                "image": "busybox",
                "imagePullPolicy": "IfNotPresent",
                "command": ["sh", "-c", script],
                "resources": {"requests": {"memory": "32Mi"}},
                "volumeMounts": [
                    {"name": "scratch", "mountPath": "/scratch"},
                    {"name": "cfg", "mountPath": "/etc/cfg", "readOnly": true},
                    {"name": "creds", "mountPath": "/etc/creds", "readOnly": true},
                    {"name": "info", "mountPath": "/etc/info"},
                    {"name": "host", "mountPath": "/host"},
                    {"name": "mem", "mountPath": "/mem"},
                    {"name": "proj", "mountPath": "/proj"},
                    {"name": "cfg", "mountPath": "/single.txt", "subPath": "hello.txt"},
                    {"name": "scratch", "mountPath": "/nested", "subPath": "made/by/kubelet"},
                ],
            }],
        },
    }))
    .unwrap()
}

fn waiting_pod() -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": "waiting"},
        "spec": {
            "nodeName": NODE,
            "restartPolicy": "Never",
            "automountServiceAccountToken": false,
            "terminationGracePeriodSeconds": 2,
            "volumes": [{"name": "cfg", "configMap": {"name": "missing"}}],
            "containers": [{
                "name": "main",
                "image": "busybox",
                "imagePullPolicy": "IfNotPresent",
                "command": ["sh", "-c", "echo \"KEY=$(cat /cfg/key)\""],
                "volumeMounts": [{"name": "cfg", "mountPath": "/cfg"}],
            }],
        },
    }))
    .unwrap()
}

/// `(reason, note)` of the events about pod `name`.
async fn events_for(client: &Client, namespace: &str, name: &str) -> Vec<(String, String)> {
    events_about(client, namespace, name)
        .await
        .into_iter()
        .map(|e| (e.reason.unwrap_or_default(), e.note.unwrap_or_default()))
        .collect()
}

/// The value of the stdout line `KEY=value` in a CRI log.
fn logged(log: &str, key: &str) -> String {
    let prefix = format!("{key}=");
    log.lines()
        .filter_map(|line| line.split_once(" stdout F ").map(|(_, text)| text))
        .find_map(|text| text.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {key} in {log}"))
        .to_string()
}

async fn phase(pods: &Api<Pod>, name: &str, want: &str) -> Pod {
    eventually(
        Duration::from_secs(90),
        &format!("pod {name} to be {want}"),
        || async {
            let pod = pods.get(name).await.ok()?;
            (pod.status.as_ref()?.phase.as_deref() == Some(want)).then_some(pod)
        },
    )
    .await
}

#[tokio::test]
async fn a_kubelet_mounts_configmaps_secrets_downward_api_and_service_account_tokens() {
    let dir = shared_control_plane().dir().join("kubelet-volumes");
    std::fs::create_dir_all(&dir).unwrap();
    // A short sync period: the pod workers refresh configMap contents on each sync.
    let config_file = dir.join("kubelet.yaml");
    std::fs::write(
        &config_file,
        "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\nsyncFrequency: 2s\n",
    )
    .unwrap();
    let config = format!("--config={}", config_file.display());
    let node = TestNode::start(NODE, BRIDGE, POD_CIDR, &[&config]).await;
    let admin = shared_control_plane()
        .client(&Identity::admin())
        .await
        .unwrap();

    // No controller-manager here: the default ServiceAccount and kube-root-ca.crt are made by hand.
    let namespace = TestNamespace::new("kubelet-volumes").await;
    let ns = namespace.name().to_string();
    let post = PostParams::default();
    let accounts: Api<ServiceAccount> = Api::namespaced(admin.clone(), &ns);
    accounts
        .create(
            &post,
            &serde_json::from_value(json!({"metadata": {"name": "default"}})).unwrap(),
        )
        .await
        .unwrap();
    let ca = std::fs::read_to_string(&shared_control_plane().pki().ca_cert).unwrap();
    let config_maps: Api<ConfigMap> = Api::namespaced(admin.clone(), &ns);
    for (name, data) in [
        ("kube-root-ca.crt", json!({"ca.crt": ca})),
        (
            "cfg",
            json!({"greeting": "hello volumes", "other": "unused"}),
        ),
    ] {
        config_maps
            .create(
                &post,
                &serde_json::from_value(json!({"metadata": {"name": name}, "data": data})).unwrap(),
            )
            .await
            .unwrap();
    }
    let secrets: Api<Secret> = Api::namespaced(admin.clone(), &ns);
    secrets
        .create(
            &post,
            &serde_json::from_value(
                json!({"metadata": {"name": "creds"}, "stringData": {"password": "s3cret"}}),
            )
            .unwrap(),
        )
        .await
        .unwrap();

    let pods: Api<Pod> = Api::namespaced(admin.clone(), &ns);
    let host_dir = dir.join("host-path");
    std::fs::create_dir_all(&host_dir).unwrap();
    std::fs::write(host_dir.join("from-host"), "host data\n").unwrap();
    let created = pods.create(&post, &volumes_pod(&host_dir)).await.unwrap();
    let injected = created
        .spec
        .as_ref()
        .unwrap()
        .volumes
        .iter()
        .flatten()
        .any(|v| v.name.starts_with("kube-api-access-"));
    assert!(
        injected,
        "the ServiceAccount admission plugin adds kube-api-access-*"
    );
    let done = phase(&pods, "volumes", "Succeeded").await;
    let log = std::fs::read_to_string(node.log_file(&done, "main")).unwrap();
    assert_eq!(logged(&log, "EMPTY"), "scratch");
    assert_eq!(logged(&log, "CFG"), "hello volumes");
    assert!(logged(&log, "MODE").starts_with("-r-------- "), "{log}");
    assert_eq!(logged(&log, "SECRET"), "s3cret");
    assert_eq!(logged(&log, "LABELS"), "app=\"vol\"");
    assert_eq!(logged(&log, "NS"), ns);
    assert_eq!(logged(&log, "CA"), "-----BEGIN CERTIFICATE-----");
    let token = logged(&log, "TOKEN");
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "a JWT: {token}");
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(parts[1])
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        claims["sub"],
        format!("system:serviceaccount:{ns}:default"),
        "{claims}"
    );
    // An unset limit reads as the node's allocatable.
    let node_object = Api::<Node>::all(admin.clone()).get(NODE).await.unwrap();
    let cpus = &node_object.status.unwrap().allocatable.unwrap()["cpu"].0;
    assert_eq!(logged(&log, "RESOURCES"), format!("{cpus} 32"));
    assert_eq!(logged(&log, "HOST"), "host data");
    assert_eq!(logged(&log, "SUB"), "hello volumes");
    assert_eq!(logged(&log, "NESTED"), "nested");
    assert_eq!(
        std::fs::read_to_string(host_dir.join("from-pod")).unwrap(),
        "from-pod\n"
    );
    let mem = logged(&log, "MEM");
    assert!(
        mem.contains(" tmpfs ") && mem.contains("size=8192k"),
        "{mem}"
    );
    assert_eq!(logged(&log, "PROJ"), "s3cret hello volumes volumes");
    let vault = logged(&log, "VAULT");
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(vault.split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(claims["aud"], json!(["vault"]), "{claims}");
    let lifetime = claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap();
    assert_eq!(lifetime, 600, "{claims}");
    // The atomic writer's layout, as the container sees it.
    let layout = logged(&log, "LAYOUT");
    let entries: Vec<&str> = layout.split_whitespace().collect();
    assert!(
        entries.contains(&"..data") && entries.contains(&"hello.txt"),
        "{layout}"
    );
    assert!(entries.iter().any(|e| e.starts_with("..20")), "{layout}");
    // A finished pod's volumes are torn down (tmpfs included), as upstream's.
    let uid = done.metadata.uid.clone().unwrap();
    let volumes = node.root.join("pods").join(&uid).join("volumes");
    eventually(
        Duration::from_secs(10),
        "the finished pod's volumes to be gone",
        || async { (!volumes.exists()).then_some(()) },
    )
    .await;

    // A pod whose ConfigMap does not exist: Pending, ContainerCreating, FailedMount; then it starts.
    pods.create(&post, &waiting_pod()).await.unwrap();
    let message = "MountVolume.SetUp failed for volume \"cfg\" : configmap \"missing\" not found";
    eventually(Duration::from_secs(60), "a FailedMount event", || async {
        let events = events_for(&admin, &ns, "waiting").await;
        events
            .iter()
            .any(|(reason, note)| reason == "FailedMount" && note == message)
            .then_some(())
    })
    .await;
    let pending = pods.get("waiting").await.unwrap();
    let status = pending.status.unwrap();
    assert_eq!(status.phase.as_deref(), Some("Pending"));
    let waiting = status.container_statuses.unwrap()[0]
        .state
        .clone()
        .unwrap()
        .waiting
        .unwrap();
    assert_eq!(waiting.reason.as_deref(), Some("ContainerCreating"));
    config_maps
        .create(
            &post,
            &serde_json::from_value(
                json!({"metadata": {"name": "missing"}, "data": {"key": "found"}}),
            )
            .unwrap(),
        )
        .await
        .unwrap();
    let started = phase(&pods, "waiting", "Succeeded").await;
    let log = std::fs::read_to_string(node.log_file(&started, "main")).unwrap();
    assert_eq!(logged(&log, "KEY"), "found");

    // A running pod sees its ConfigMap change: the kubelet rewrites the volume on a later sync.
    let mut watcher = waiting_pod();
    watcher.metadata.name = Some("watcher".to_string());
    watcher.spec.as_mut().unwrap().containers[0].command = Some(vec![
        "sh".to_string(),
        "-c".to_string(),
        "i=0; while [ \"$(cat /cfg/key)\" != updated ] && [ $i -lt 120 ]; do sleep 0.5; i=$((i+1)); done; \
         echo \"KEY=$(cat /cfg/key)\""
            .to_string(),
    ]);
    pods.create(&post, &watcher).await.unwrap();
    phase(&pods, "watcher", "Running").await;
    config_maps
        .replace(
            "missing",
            &post,
            &serde_json::from_value(
                json!({"metadata": {"name": "missing"}, "data": {"key": "updated"}}),
            )
            .unwrap(),
        )
        .await
        .unwrap();
    let watched = phase(&pods, "watcher", "Succeeded").await;
    let log = std::fs::read_to_string(node.log_file(&watched, "main")).unwrap();
    assert_eq!(logged(&log, "KEY"), "updated");

    // Deleting the pods leaves no mount behind.
    for name in ["volumes", "waiting", "watcher"] {
        pods.delete(name, &DeleteParams::default()).await.unwrap();
    }
    every_pod_gone(&pods, Duration::from_secs(30)).await;
    // The kubelet finishes its clean-up after the objects are gone (terminal pods are deleted at once).
    let root_text = format!("{}/", node.root.canonicalize().unwrap().display());
    eventually(
        Duration::from_secs(30),
        "nothing mounted under the kubelet's root",
        || async {
            let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
            (!mountinfo.lines().any(|l| l.contains(&root_text))).then_some(())
        },
    )
    .await;
    namespace.delete().await;
}
