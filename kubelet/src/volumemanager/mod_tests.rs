use serde_json::json;

use super::*;

/// A client that is never reached: these volumes need no API.
fn offline_client() -> Client {
    let url = "http://127.0.0.1:9".parse().unwrap();
    Client::try_from(kube::Config::new(url)).unwrap()
}

fn pod(host: &Path) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": "p", "namespace": "ns", "uid": "uid-1", "labels": {"app": "x"}},
        "spec": {
            "containers": [{"name": "main"}],
            "volumes": [
                {"name": "scratch", "emptyDir": {}},
                {"name": "info", "downwardAPI": {"items": [
                    {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
                ]}},
                {"name": "host", "hostPath": {"path": host, "type": "DirectoryOrCreate"}},
            ],
        },
    }))
    .unwrap()
}

#[tokio::test]
async fn volumes_are_laid_out_as_upstream_and_torn_down() {
    let dir = tempfile::tempdir().unwrap();
    let host = dir.path().join("host/data");
    let manager = VolumeManager::new(offline_client(), dir.path());
    let pod = pod(&host);
    let volumes = manager.mount_pod(&pod).await.unwrap();
    let base = manager.volumes_dir("uid-1");
    assert_eq!(
        volumes.get("scratch").unwrap(),
        base.join("kubernetes.io~empty-dir/scratch")
    );
    assert!(volumes.get("scratch").unwrap().is_dir());
    let info = volumes.get("info").unwrap();
    assert_eq!(info, base.join("kubernetes.io~downward-api/info"));
    assert_eq!(
        std::fs::read_to_string(info.join("labels")).unwrap(),
        "app=\"x\""
    );
    assert_eq!(volumes.get("host").unwrap(), host);
    assert!(host.is_dir());

    // Again: nothing changes.
    assert_eq!(manager.mount_pod(&pod).await.unwrap(), volumes);
    manager.refresh(&pod).await.unwrap();

    assert_eq!(manager.mounted("uid-1"), Some(volumes));

    manager.unmount_pod("uid-1").await.unwrap();
    assert!(!base.exists());
    assert_eq!(manager.mounted("uid-1"), None);
    assert!(host.is_dir(), "a hostPath is the host's, never removed");
    manager.unmount_pod("uid-1").await.unwrap();
}

#[tokio::test]
async fn a_failed_volume_names_itself_as_upstream() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("file");
    std::fs::write(&file, "").unwrap();
    let manager = VolumeManager::new(offline_client(), dir.path());
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "p", "namespace": "ns", "uid": "uid-2"},
        "spec": {
            "containers": [{"name": "main"}],
            "volumes": [{"name": "h", "hostPath": {"path": file, "type": "Directory"}}],
        },
    }))
    .unwrap();
    let err = manager.mount_pod(&pod).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "MountVolume.SetUp failed for volume \"h\" : hostPath type check failed: {} is not a directory",
            file.display()
        )
    );
}
