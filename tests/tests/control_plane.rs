//! The harness's control plane: it starts, the admin can use it, and each component identity gets what
//! upstream's RBAC and Node authorization give it, and 403 for the rest.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Node, Pod, Secret};
use kube::api::{Api, ListParams, ObjectMeta, PostParams};
use kube::{Client, Error};

use ferrokube_cluster::Identity;
use ferrokube_cluster::testing::{TestNamespace, shared_control_plane};

async fn client(identity: &Identity) -> Client {
    shared_control_plane().client(identity).await.unwrap()
}

/// Lists every `K` in the cluster as the client's identity.
async fn list_all<K>(client: &Client) -> Result<kube::core::ObjectList<K>, Error>
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + k8s_openapi::serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    Api::<K>::all(client.clone())
        .list(&ListParams::default())
        .await
}

fn forbidden<T: std::fmt::Debug>(result: Result<T, Error>) -> bool {
    matches!(result, Err(Error::Api(status)) if status.code == 403)
}

fn named<T: kube::Resource + Default>(name: &str) -> T {
    let mut object = T::default();
    *object.meta_mut() = ObjectMeta {
        name: Some(name.to_string()),
        ..ObjectMeta::default()
    };
    object
}

/// A pod that nobody in these tests is allowed to create except the admin.
fn some_pod() -> Pod {
    serde_json::from_value(serde_json::json!({
        "metadata": { "name": "not-mine" },
        "spec": { "containers": [{ "name": "c", "image": "busybox" }] }
    }))
    .unwrap()
}

#[tokio::test]
async fn admin_lists_the_system_namespaces_of_the_pinned_version() {
    let admin = client(&Identity::admin()).await;
    let names: Vec<String> = list_all::<Namespace>(&admin)
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|ns| ns.metadata.name)
        .collect();
    for want in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        assert!(
            names.iter().any(|n| n == want),
            "{want} missing from {names:?}"
        );
    }
    let version = admin.apiserver_version().await.unwrap();
    assert_eq!(
        version.git_version,
        component_base::version::KUBERNETES_VERSION
    );
}

#[tokio::test]
async fn each_test_gets_a_fresh_namespace() {
    let (a, b) = (
        TestNamespace::new("fresh").await,
        TestNamespace::new("fresh").await,
    );
    assert_ne!(a.name, b.name);
    let configmaps = Api::<ConfigMap>::namespaced(a.client.clone(), a.name());
    let mut configmap: ConfigMap = named("probe");
    configmap.data = Some(BTreeMap::from([("k".to_string(), "v".to_string())]));
    configmaps
        .create(&PostParams::default(), &configmap)
        .await
        .unwrap();
    assert!(
        Api::<ConfigMap>::namespaced(b.client.clone(), b.name())
            .get_opt("probe")
            .await
            .unwrap()
            .is_none()
    );
    a.delete().await;
    b.delete().await;
}

#[tokio::test]
async fn scheduler_reads_pods_and_nodes_but_not_secrets() {
    let scheduler = client(&Identity::scheduler()).await;
    list_all::<Pod>(&scheduler).await.unwrap();
    list_all::<Node>(&scheduler).await.unwrap();
    assert!(forbidden(list_all::<Secret>(&scheduler).await));
    let pod = some_pod();
    assert!(forbidden(
        Api::<Pod>::namespaced(scheduler, "default")
            .create(&PostParams::default(), &pod)
            .await
    ));
}

#[tokio::test]
async fn controller_manager_reads_everything_but_cannot_create_pods_itself() {
    let controller_manager = client(&Identity::controller_manager()).await;
    list_all::<Pod>(&controller_manager).await.unwrap();
    list_all::<Secret>(&controller_manager).await.unwrap();
    // Upstream's controllers act through their own service accounts (--use-service-account-credentials).
    let pod = some_pod();
    let pods = Api::<Pod>::namespaced(controller_manager.clone(), "default");
    assert!(forbidden(pods.create(&PostParams::default(), &pod).await));
    assert!(forbidden(
        Api::<Node>::all(controller_manager)
            .delete("node-1", &Default::default())
            .await
    ));
}

#[tokio::test]
async fn a_kubelet_may_register_its_own_node_only() {
    let kubelet = client(&Identity::node("node-1")).await;
    let nodes = Api::<Node>::all(kubelet.clone());
    nodes
        .create(&PostParams::default(), &named::<Node>("node-1"))
        .await
        .unwrap();
    assert!(forbidden(
        nodes
            .create(&PostParams::default(), &named::<Node>("node-2"))
            .await
    ));
    // The Node authorizer gives a kubelet only the secrets of pods bound to it.
    assert!(forbidden(
        Api::<Secret>::namespaced(kubelet, "kube-system")
            .get("anything")
            .await
    ));
}
