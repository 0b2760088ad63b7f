//! The garbage collector and the namespace controller against the real apiserver. No replicaset or
//! deployment controller runs: the tests build owner chains by hand with ownerReferences, and pods (never
//! bound, no kubelet) are deleted by the apiserver at once.

use std::time::Duration;

use ferrokube_cluster::Identity;
use ferrokube_cluster::testing::TestNamespace;
use ferrokube_tests::controllers::ControllerManagerProcess;
use ferrokube_tests::scheduling::{admin, default_service_account, event_notes, eventually};
use ferrokube_tests::secure_serving::{
    Credentials, client as secure_client, free_port, get, start, wait_until_serving,
};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::serde::de::DeserializeOwned;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams,
    PostParams, PropagationPolicy,
};
use kube::{Client, Resource, ResourceExt};
use serde_json::{Value, json};

const LIMIT: Duration = Duration::from_secs(45);

/// Every test's collector acts on all namespaces. A test that counts its collector's requests holds this
/// alone; the others share it.
static COLLECTORS: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

fn owner_ref<K: Resource<DynamicType = ()>>(owner: &K, block: bool) -> Value {
    json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "name": owner.meta().name,
        "uid": owner.meta().uid,
        "blockOwnerDeletion": block,
    })
}

fn dead_ref(kind: &str, name: &str, uid: &str) -> Value {
    json!({"apiVersion": "v1", "kind": kind, "name": name, "uid": uid})
}

async fn create<K>(client: &Client, namespace: &str, object: Value) -> K
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + k8s_openapi::serde::Serialize
        + std::fmt::Debug,
{
    let object: K = serde_json::from_value(object).unwrap();
    Api::<K>::namespaced(client.clone(), namespace)
        .create(&PostParams::default(), &object)
        .await
        .unwrap()
}

async fn configmap(client: &Client, namespace: &str, name: &str, owners: Vec<Value>) -> ConfigMap {
    create(
        client,
        namespace,
        json!({"metadata": {"name": name, "ownerReferences": owners}}),
    )
    .await
}

async fn pod(client: &Client, namespace: &str, name: &str, owners: Vec<Value>) -> Pod {
    create(
        client,
        namespace,
        json!({"metadata": {"name": name, "ownerReferences": owners},
               "spec": {"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10"}]}}),
    )
    .await
}

fn selector_spec(app: &str) -> Value {
    json!({
        "replicas": 0,
        "selector": {"matchLabels": {"app": app}},
        "template": {"metadata": {"labels": {"app": app}},
                     "spec": {"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10"}]}},
    })
}

async fn delete_with<K>(api: &Api<K>, name: &str, policy: PropagationPolicy)
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    let params = DeleteParams {
        propagation_policy: Some(policy),
        ..DeleteParams::default()
    };
    api.delete(name, &params).await.unwrap();
}

async fn gone<K>(api: &Api<K>, name: &str, what: &str)
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    eventually(LIMIT, what, || async {
        api.get_opt(name).await.unwrap().is_none().then_some(())
    })
    .await;
}

/// Asserts `name` still exists after the collector had `period` to (wrongly) act on it.
async fn stays<K>(api: &Api<K>, name: &str, period: Duration) -> K
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    tokio::time::sleep(period).await;
    api.get_opt(name)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("{name} was deleted"))
}

fn owner_uids<K: Resource>(object: &K) -> Vec<String> {
    object
        .meta()
        .owner_references
        .iter()
        .flatten()
        .map(|r| r.uid.clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn background_deletion_and_dangling_references() {
    let _shared = COLLECTORS.read().await;
    let ns = TestNamespace::new("gc-background").await;
    let client = admin().await;
    default_service_account(&client, &ns.name).await;
    let manager = ControllerManagerProcess::start("gc-background", "garbagecollector", &[]);
    let configmaps = Api::<ConfigMap>::namespaced(client.clone(), &ns.name);

    // ConfigMaps owning ConfigMaps: deleting the owner in the background removes the dependents.
    let owner = configmap(&client, &ns.name, "owner", vec![]).await;
    configmap(&client, &ns.name, "dep-a", vec![owner_ref(&owner, false)]).await;
    configmap(&client, &ns.name, "dep-b", vec![owner_ref(&owner, true)]).await;
    // A dependent of an owner that never existed is garbage.
    let never = "00000000-0000-0000-0000-00000000dead";
    configmap(
        &client,
        &ns.name,
        "dangling",
        vec![dead_ref("ConfigMap", "ghost", never)],
    )
    .await;
    // A dependent with one live and one dead owner lives on, without the dead reference.
    let live = configmap(&client, &ns.name, "live-owner", vec![]).await;
    configmap(
        &client,
        &ns.name,
        "half-owned",
        vec![
            owner_ref(&live, false),
            dead_ref("ConfigMap", "ghost", never),
        ],
    )
    .await;

    // An owner reference naming an object of another namespace is dangling: that owner is not visible
    // from the dependent's namespace.
    let elsewhere = TestNamespace::new("gc-background-other").await;
    let foreign = configmap(
        &client,
        &elsewhere.name,
        "foreign",
        vec![owner_ref(&live, false)],
    )
    .await;
    let foreign_configmaps = Api::<ConfigMap>::namespaced(client.clone(), &elsewhere.name);

    delete_with(&configmaps, "owner", PropagationPolicy::Background).await;
    gone(&configmaps, "owner", "the owner to be deleted").await;
    gone(&configmaps, "dep-a", "dep-a to be collected").await;
    gone(&configmaps, "dep-b", "dep-b to be collected").await;
    gone(
        &configmaps,
        "dangling",
        "the dangling dependent to be collected",
    )
    .await;
    let live_uid = live.metadata.uid.clone().unwrap();
    eventually(LIMIT, "the dead reference to be removed", || async {
        let half = configmaps.get("half-owned").await.unwrap();
        (owner_uids(&half) == [live_uid.clone()]).then_some(())
    })
    .await;
    gone(
        &foreign_configmaps,
        "foreign",
        "the dependent of another namespace's owner",
    )
    .await;
    let note = format!(
        "ownerRef [v1/ConfigMap, namespace: {0}, name: live-owner, uid: {1}] does not exist in \
         namespace \"{0}\"",
        elsewhere.name, live_uid
    );
    eventually(LIMIT, "the OwnerRefInvalidNamespace event", || async {
        let notes = event_notes(
            &client,
            &elsewhere.name,
            "foreign",
            "OwnerRefInvalidNamespace",
        )
        .await;
        notes.contains(&note).then_some(())
    })
    .await;
    assert!(foreign.metadata.uid.is_some());
    elsewhere.delete().await;
    stays(&configmaps, "half-owned", Duration::from_secs(2)).await;
    assert!(configmaps.get_opt("live-owner").await.unwrap().is_some());

    // Deployment → ReplicaSet → Pod, built by hand: deleting the Deployment takes the whole chain.
    let deployments = Api::<Deployment>::namespaced(client.clone(), &ns.name);
    let replicasets = Api::<ReplicaSet>::namespaced(client.clone(), &ns.name);
    let pods = Api::<Pod>::namespaced(client.clone(), &ns.name);
    let deployment: Deployment = create(
        &client,
        &ns.name,
        json!({"metadata": {"name": "web"}, "spec": selector_spec("web")}),
    )
    .await;
    let replicaset: ReplicaSet = create(
        &client,
        &ns.name,
        json!({"metadata": {"name": "web-1", "ownerReferences": [owner_ref(&deployment, true)]},
               "spec": selector_spec("web")}),
    )
    .await;
    pod(
        &client,
        &ns.name,
        "web-1-a",
        vec![owner_ref(&replicaset, true)],
    )
    .await;
    delete_with(&deployments, "web", PropagationPolicy::Background).await;
    gone(&replicasets, "web-1", "the ReplicaSet to be collected").await;
    gone(&pods, "web-1-a", "the Pod to be collected").await;
    drop(manager);
    ns.delete().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn foreground_deletion_waits_for_blocking_dependents() {
    let _shared = COLLECTORS.read().await;
    let ns = TestNamespace::new("gc-foreground").await;
    let client = admin().await;
    default_service_account(&client, &ns.name).await;
    let manager = ControllerManagerProcess::start("gc-foreground", "garbagecollector", &[]);
    let configmaps = Api::<ConfigMap>::namespaced(client.clone(), &ns.name);

    // The blocking dependent carries a finalizer of its own, so the owner visibly waits for it.
    let owner = configmap(&client, &ns.name, "owner", vec![]).await;
    let held: ConfigMap = create(
        &client,
        &ns.name,
        json!({"metadata": {"name": "held", "finalizers": ["example.com/hold"],
                            "ownerReferences": [owner_ref(&owner, true)]}}),
    )
    .await;
    assert!(held.metadata.deletion_timestamp.is_none());
    // A dependent with another, solid owner is kept, without its reference to the deleted owner.
    let keeper = configmap(&client, &ns.name, "keeper", vec![]).await;
    configmap(
        &client,
        &ns.name,
        "shared",
        vec![owner_ref(&owner, true), owner_ref(&keeper, false)],
    )
    .await;
    delete_with(&configmaps, "owner", PropagationPolicy::Foreground).await;
    eventually(LIMIT, "the blocking dependent to be deleted", || async {
        let held = configmaps.get("held").await.unwrap();
        held.metadata.deletion_timestamp.is_some().then_some(())
    })
    .await;
    let waiting = stays(&configmaps, "owner", Duration::from_secs(2)).await;
    assert!(waiting.metadata.deletion_timestamp.is_some());
    assert_eq!(
        waiting.metadata.finalizers.as_deref(),
        Some(&["foregroundDeletion".to_string()][..]),
        "{}",
        manager.log_tail()
    );
    configmaps
        .patch(
            "held",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": null}})),
        )
        .await
        .unwrap();
    gone(&configmaps, "held", "the dependent to go").await;
    gone(
        &configmaps,
        "owner",
        "the owner to go once its dependents are gone",
    )
    .await;
    let shared = stays(&configmaps, "shared", Duration::from_secs(1)).await;
    assert_eq!(owner_uids(&shared), [keeper.metadata.uid.clone().unwrap()]);

    // A ReplicaSet owning Pods, deleted in the foreground: pods first, then the ReplicaSet.
    let replicasets = Api::<ReplicaSet>::namespaced(client.clone(), &ns.name);
    let pods = Api::<Pod>::namespaced(client.clone(), &ns.name);
    let replicaset: ReplicaSet = create(
        &client,
        &ns.name,
        json!({"metadata": {"name": "rs"}, "spec": selector_spec("rs")}),
    )
    .await;
    for name in ["rs-a", "rs-b"] {
        pod(&client, &ns.name, name, vec![owner_ref(&replicaset, true)]).await;
    }
    delete_with(&replicasets, "rs", PropagationPolicy::Foreground).await;
    gone(&pods, "rs-a", "rs-a to be collected").await;
    gone(&pods, "rs-b", "rs-b to be collected").await;
    gone(&replicasets, "rs", "the ReplicaSet to go after its pods").await;
    drop(manager);
    ns.delete().await;
}

/// The requests with `method` the process behind `metrics` has made (`rest_client_requests_total`).
async fn requests(metrics: &Client, method: &str) -> u64 {
    let (code, _, body) = get(metrics, "/metrics").await.unwrap();
    assert_eq!(code, 200, "{body}");
    let label = format!("method=\"{method}\"");
    body.lines()
        .filter(|l| l.starts_with("rest_client_requests_total{") && l.contains(&label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread")]
async fn observed_dependents_are_deleted_without_reading_them_first() {
    let _alone = COLLECTORS.write().await;
    const DEPENDENTS: usize = 30;
    let ns = TestNamespace::new("gc-requests").await;
    let client = admin().await;
    let port = free_port();
    let cert_dir = tempfile::tempdir().unwrap();
    let cert_dir_flag = format!("--cert-dir={}", cert_dir.path().display());
    let manager = start(
        "ferrokube-controller-manager",
        &Identity::controller_manager(),
        "gc-requests",
        port,
        &[
            "--use-service-account-credentials=true",
            "--controllers=garbagecollector",
            &cert_dir_flag,
        ],
    );
    let metrics = secure_client(port, None, &Credentials::Admin).await;
    wait_until_serving(&metrics).await;
    // Until then a monitor of a resource that just went away (another test's CRD) may still retry its list.
    eventually(LIMIT, "the collector to sync its monitors", || async {
        std::fs::read_to_string(manager.process.log())
            .ok()?
            .contains("proceeding to collect garbage")
            .then_some(())
    })
    .await;
    let configmaps = Api::<ConfigMap>::namespaced(client.clone(), &ns.name);
    let mut owners = Vec::new();
    for owner in ["background", "foreground"] {
        let owner = configmap(&client, &ns.name, owner, vec![]).await;
        for i in 0..DEPENDENTS {
            let name = format!("{}-{i}", owner.name_any());
            configmap(&client, &ns.name, &name, vec![owner_ref(&owner, true)]).await;
        }
        owners.push(owner.name_any());
    }
    // Once the collector has seen them all, it reads nothing more to delete them.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (gets, deletes) = (
        requests(&metrics, "GET").await,
        requests(&metrics, "DELETE").await,
    );
    delete_with(&configmaps, "background", PropagationPolicy::Background).await;
    delete_with(&configmaps, "foreground", PropagationPolicy::Foreground).await;
    for owner in &owners {
        for i in 0..DEPENDENTS {
            gone(
                &configmaps,
                &format!("{owner}-{i}"),
                "a dependent to be collected",
            )
            .await;
        }
    }
    gone(&configmaps, "foreground", "the foreground owner to go").await;
    let deleted = requests(&metrics, "DELETE").await - deletes;
    assert!(deleted >= 2 * DEPENDENTS as u64, "{deleted} DELETEs");
    // Upstream reads each dependent first, and each owner it has not verified absent: at least 90 GETs
    // here. Left are the foreground owner's reads before its finalizer is removed and rediscovery's.
    let read = requests(&metrics, "GET").await - gets;
    assert!(
        read < DEPENDENTS as u64,
        "{read} GETs: {}",
        manager.log_tail()
    );
    ns.delete().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn orphaning_removes_the_owner_reference() {
    let _shared = COLLECTORS.read().await;
    let ns = TestNamespace::new("gc-orphan").await;
    let client = admin().await;
    let manager = ControllerManagerProcess::start("gc-orphan", "garbagecollector", &[]);
    let configmaps = Api::<ConfigMap>::namespaced(client.clone(), &ns.name);
    let owner = configmap(&client, &ns.name, "owner", vec![]).await;
    let other = configmap(&client, &ns.name, "other-owner", vec![]).await;
    configmap(&client, &ns.name, "orphan-a", vec![owner_ref(&owner, true)]).await;
    configmap(
        &client,
        &ns.name,
        "orphan-b",
        vec![owner_ref(&owner, false), owner_ref(&other, false)],
    )
    .await;
    delete_with(&configmaps, "owner", PropagationPolicy::Orphan).await;
    gone(
        &configmaps,
        "owner",
        "the owner to be deleted after orphaning",
    )
    .await;
    let a = stays(&configmaps, "orphan-a", Duration::from_secs(2)).await;
    assert!(
        owner_uids(&a).is_empty(),
        "{:?}",
        a.metadata.owner_references
    );
    let b = configmaps.get("orphan-b").await.unwrap();
    assert_eq!(owner_uids(&b), [other.metadata.uid.clone().unwrap()]);
    drop(manager);
    ns.delete().await;
}

/// Creates CRD `widgets.<group>` (namespaced, kind Widget, any content) and waits until it is served.
async fn widget_crd(client: &Client, namespace: &str, group: &str) -> Api<DynamicObject> {
    let crd: CustomResourceDefinition = serde_json::from_value(json!({
        "metadata": {"name": format!("widgets.{group}")},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}],
        },
    }))
    .unwrap();
    Api::<CustomResourceDefinition>::all(client.clone())
        .create(&PostParams::default(), &crd)
        .await
        .unwrap();
    let resource =
        ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, "v1", "Widget"), "widgets");
    let widgets = Api::<DynamicObject>::namespaced_with(client.clone(), namespace, &resource);
    eventually(LIMIT, "the CRD to be served", || async {
        widgets.list(&Default::default()).await.ok()
    })
    .await;
    widgets
}

fn widget(group: &str, name: &str, finalizers: Value, owners: Vec<Value>) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": format!("{group}/v1"), "kind": "Widget",
        "metadata": {"name": name, "finalizers": finalizers, "ownerReferences": owners},
    }))
    .unwrap()
}

async fn delete_crd(client: &Client, group: &str) {
    Api::<CustomResourceDefinition>::all(client.clone())
        .delete(&format!("widgets.{group}"), &DeleteParams::default())
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn custom_resources_of_a_crd_created_later_are_collected() {
    let _shared = COLLECTORS.read().await;
    let ns = TestNamespace::new("gc-crd").await;
    let client = admin().await;
    let manager = ControllerManagerProcess::start("gc-crd", "garbagecollector", &[]);
    let configmaps = Api::<ConfigMap>::namespaced(client.clone(), &ns.name);
    // Created after the collector's first discovery: only its periodic re-discovery (30 s) covers it.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let group = format!("{}.example.com", ns.name);
    let widgets = widget_crd(&client, &ns.name, &group).await;
    let owner = configmap(&client, &ns.name, "owner", vec![]).await;
    let live = configmap(&client, &ns.name, "live", vec![]).await;
    let never = "00000000-0000-0000-0000-0000000000ff";
    let post = PostParams::default();
    widgets
        .create(
            &post,
            &widget(&group, "owned", json!([]), vec![owner_ref(&owner, false)]),
        )
        .await
        .unwrap();
    // Custom resources take no strategic merge patch: the dead reference goes by a JSON merge patch.
    widgets
        .create(
            &post,
            &widget(
                &group,
                "half",
                json!([]),
                vec![
                    owner_ref(&live, false),
                    dead_ref("ConfigMap", "ghost", never),
                ],
            ),
        )
        .await
        .unwrap();
    // Other tests' collectors share this apiserver; this one must have found the CRD by itself.
    let monitor = format!("{group}/v1/widgets");
    eventually(
        Duration::from_secs(45),
        "a monitor for the new CRD",
        || async {
            let log = std::fs::read_to_string(manager.process.log()).unwrap_or_default();
            log.lines()
                .any(|l| l.contains("starting monitor") && l.contains(&monitor))
                .then_some(())
        },
    )
    .await;
    delete_with(&configmaps, "owner", PropagationPolicy::Background).await;
    eventually(LIMIT, "the owned widget to be collected", || async {
        widgets
            .get_opt("owned")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    let live_uid = live.metadata.uid.clone().unwrap();
    eventually(
        LIMIT,
        "the widget's dead reference to be removed",
        || async {
            let half = widgets.get("half").await.unwrap();
            (owner_uids(&half) == [live_uid.clone()]).then_some(())
        },
    )
    .await;
    assert!(
        widgets.get_opt("half").await.unwrap().is_some(),
        "{}",
        manager.log_tail()
    );
    delete_crd(&client, &group).await;
    drop(manager);
    ns.delete().await;
}

fn condition(namespace: &Namespace, type_: &str) -> Option<(String, String, String)> {
    namespace
        .status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| {
            (
                c.status.clone(),
                c.reason.clone().unwrap_or_default(),
                c.message.clone().unwrap_or_default(),
            )
        })
}

#[tokio::test(flavor = "multi_thread")]
async fn namespace_deletion_removes_all_content() {
    let _shared = COLLECTORS.read().await;
    let ns = TestNamespace::new("ns-deletion").await;
    let client = admin().await;
    default_service_account(&client, &ns.name).await;
    let manager = ControllerManagerProcess::start("ns-deletion", "garbagecollector,namespace", &[]);

    // A CRD of the test's own, and one instance held by a finalizer so the termination is observable.
    let group = format!("{}.example.com", ns.name);
    let widgets = widget_crd(&client, &ns.name, &group).await;
    let post = PostParams::default();
    widgets
        .create(&post, &widget(&group, "plain", json!([]), vec![]))
        .await
        .unwrap();
    widgets
        .create(
            &post,
            &widget(&group, "held", json!(["example.com/hold"]), vec![]),
        )
        .await
        .unwrap();
    for name in ["cm-a", "cm-b"] {
        configmap(&client, &ns.name, name, vec![]).await;
    }
    for name in ["pod-a", "pod-b"] {
        pod(&client, &ns.name, name, vec![]).await;
    }

    let namespaces = Api::<Namespace>::all(client.clone());
    namespaces
        .delete(&ns.name, &DeleteParams::default())
        .await
        .unwrap();
    // Everything else goes; the held widget keeps the namespace terminating, as the conditions say.
    let terminating = eventually(LIMIT, "the content-remaining conditions", || async {
        let namespace = namespaces.get(&ns.name).await.unwrap();
        condition(&namespace, "NamespaceFinalizersRemaining")
            .is_some_and(|c| c.0 == "True")
            .then_some(namespace)
    })
    .await;
    assert_eq!(
        terminating.status.as_ref().unwrap().phase.as_deref(),
        Some("Terminating")
    );
    assert_eq!(
        condition(&terminating, "NamespaceContentRemaining").unwrap(),
        (
            "True".into(),
            "SomeResourcesRemain".into(),
            format!("Some resources are remaining: widgets.{group} has 1 resource instances")
        ),
        "{}",
        manager.log_tail()
    );
    assert_eq!(
        condition(&terminating, "NamespaceFinalizersRemaining").unwrap(),
        (
            "True".into(),
            "SomeFinalizersRemain".into(),
            "Some content in the namespace has finalizers remaining: example.com/hold in 1 \
             resource instances"
                .into()
        )
    );
    for (type_, reason, message) in [
        (
            "NamespaceDeletionDiscoveryFailure",
            "ResourcesDiscovered",
            "All resources successfully discovered",
        ),
        (
            "NamespaceDeletionGroupVersionParsingFailure",
            "ParsedGroupVersions",
            "All legacy kube types successfully parsed",
        ),
        (
            "NamespaceDeletionContentFailure",
            "ContentDeleted",
            "All content successfully deleted, may be waiting on finalization",
        ),
    ] {
        assert_eq!(
            condition(&terminating, type_).unwrap(),
            ("False".into(), reason.into(), message.into())
        );
    }
    let configmaps = Api::<ConfigMap>::namespaced(client.clone(), &ns.name);
    let pods = Api::<Pod>::namespaced(client.clone(), &ns.name);
    assert!(
        configmaps
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert!(
        pods.list(&Default::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    let remaining: Vec<String> = widgets
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .iter()
        .map(|w| w.name_any())
        .collect();
    assert_eq!(remaining, ["held"]);

    widgets
        .patch(
            "held",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": null}})),
        )
        .await
        .unwrap();
    eventually(
        Duration::from_secs(60),
        "the namespace to disappear",
        || async {
            namespaces
                .get_opt(&ns.name)
                .await
                .unwrap()
                .is_none()
                .then_some(())
        },
    )
    .await;
    delete_crd(&client, &group).await;
    drop(manager);
}
