//! ferrokube-kubelet's runtime layer against a real containerd (started by the harness, as root): the busybox
//! image built and imported by `cluster`, containers run with runc, exits from the event stream, CRI logs,
//! cgroup v1 limits, network namespaces, and deletion that leaves nothing behind.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use ferrokube_cluster::images::BUSYBOX_IMAGE;
use ferrokube_kubelet::runtime::spec::{self, ContainerSpec, NamespaceMode, Resources};
use ferrokube_kubelet::runtime::{Runtime, RuntimeEvent, Stdio, TaskExit, TaskStatus};
use ferrokube_tests::runtime::{RuntimeFixture, unique};
use futures::StreamExt;

/// Creates container `id` running `args` with `network`, labelled with its test.
async fn create(f: &RuntimeFixture, id: &str, args: &[&str], network: NamespaceMode) {
    let spec = spec::build(&ContainerSpec {
        args: spec::resolve_args(
            &f.image.entrypoint,
            &f.image.cmd,
            &[],
            &args.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
        ),
        env: f.image.env.clone(),
        hostname: Some(id.to_string()),
        network,
        cgroups_path: Some(cgroup(id)),
        resources: Resources {
            cpu_shares: Some(256),
            memory_limit: Some(64 << 20),
            ..Resources::default()
        },
        no_new_privileges: true,
        ..ContainerSpec::default()
    });
    let labels = HashMap::from([("ferrokube.test/container".to_string(), id.to_string())]);
    f.runtime
        .create_container(id, &f.image, &spec, labels)
        .await
        .unwrap();
}

fn cgroup(id: &str) -> String {
    format!("/ferrokube-test-{id}")
}

/// The next exit of `id`'s init process on `events`.
async fn exit_of(
    events: &mut (impl futures::Stream<Item = ferrokube_kubelet::runtime::Result<RuntimeEvent>> + Unpin),
    id: &str,
) -> TaskExit {
    tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let RuntimeEvent::Exit(exit) = events.next().await.unwrap().unwrap() else {
                continue;
            };
            if exit.container_id == id && exit.process_id == id {
                return exit;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no exit event for {id}"))
}

fn snapshots(socket: &Path) -> String {
    let output = Command::new("ctr")
        .arg("--address")
        .arg(socket)
        .args(["-n", "k8s.io", "snapshots", "ls"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test]
async fn version_and_images() {
    let f = RuntimeFixture::start("ferrokube-containerd-").await;
    let version = f.runtime.version().await.unwrap();
    assert!(version.starts_with("1.6"), "{version}");
    assert_eq!(f.image.name, BUSYBOX_IMAGE);
    assert_eq!(f.image.cmd, ["sh"]);
    assert!(f.image.id.starts_with("sha256:"));
    assert!(f.image.chain_id.starts_with("sha256:"));
    let images = f.runtime.list_images().await.unwrap();
    let busybox = images
        .iter()
        .find(|i| i.names.iter().any(|n| n == BUSYBOX_IMAGE))
        .unwrap_or_else(|| panic!("busybox is not listed: {images:?}"));
    assert!(busybox.size > 500_000, "{busybox:?}");
    assert_eq!(busybox.id, f.image.id);
    assert!(
        busybox
            .names
            .contains(&format!("docker.io/library/busybox@{}", busybox.digest)),
        "{busybox:?}"
    );
    assert!(f.runtime.image("nothere:1").await.unwrap().is_none());
}

#[tokio::test]
async fn exit_code_arrives_as_an_event_and_output_is_logged_in_cri_format() {
    let f = RuntimeFixture::start("ferrokube-containerd-").await;
    let mut events = Box::pin(f.runtime.events().await.unwrap());
    let id = unique("exit3");
    create(
        &f,
        &id,
        &["sh", "-c", "echo out; echo err >&2; exit 3"],
        NamespaceMode::Private,
    )
    .await;
    let listed = f.runtime.list_containers().await.unwrap();
    let mine = listed.iter().find(|c| c.id == id).unwrap();
    assert_eq!(mine.labels["ferrokube.test/container"], id);
    assert_eq!(mine.image, BUSYBOX_IMAGE);

    let pid = f
        .runtime
        .start(&id, &f.log(&id), Stdio::default())
        .await
        .unwrap();
    assert!(pid > 0);
    let exit = exit_of(&mut events, &id).await;
    assert_eq!(exit.exit_status, 3, "{exit:?}");
    assert!(exit.exited_at.is_some());
    let waited = f.runtime.wait(&id).await.unwrap();
    assert_eq!(waited.code, 3);
    let state = f.runtime.task_state(&id).await.unwrap().unwrap();
    assert_eq!(state.status, TaskStatus::Stopped);
    assert_eq!(state.exit.unwrap().code, 3);

    let log = std::fs::read_to_string(f.log(&id)).unwrap();
    let lines: Vec<Vec<&str>> = log.lines().map(|l| l.splitn(4, ' ').collect()).collect();
    assert_eq!(lines.len(), 2, "{log}");
    for line in &lines {
        assert!(
            chrono::DateTime::parse_from_rfc3339(line[0]).is_ok(),
            "bad timestamp in {log}"
        );
    }
    assert!(
        lines.iter().any(|l| l[1..] == ["stdout", "F", "out"]),
        "{log}"
    );
    assert!(
        lines.iter().any(|l| l[1..] == ["stderr", "F", "err"]),
        "{log}"
    );
    f.runtime.delete(&id).await.unwrap();
}

#[tokio::test]
async fn sigterm_and_sigkill_end_containers_with_signal_exit_codes() {
    let f = RuntimeFixture::start("ferrokube-containerd-").await;
    // A shell that handles SIGTERM ends with 143 (128 + 15).
    let trapping = unique("trap");
    create(
        &f,
        &trapping,
        &["sh", "-c", "trap 'exit 143' TERM; sleep 1000 & wait"],
        NamespaceMode::Private,
    )
    .await;
    f.runtime
        .start(&trapping, &f.log(&trapping), Stdio::default())
        .await
        .unwrap();
    // `sleep 1000` as the container's PID 1: the kernel drops signals PID 1 has no handler for, so SIGTERM
    // leaves it running (why the kubelet follows with SIGKILL after the grace period); SIGKILL gives 137.
    let sleeper = unique("sleep");
    create(&f, &sleeper, &["sleep", "1000"], NamespaceMode::Private).await;
    let pid = f
        .runtime
        .start(&sleeper, &f.log(&sleeper), Stdio::default())
        .await
        .unwrap();
    let state = f.runtime.task_state(&sleeper).await.unwrap().unwrap();
    assert_eq!(state.status, TaskStatus::Running);
    assert_eq!(state.pid, pid);
    // cgroup v1 limits from the spec are in place.
    let limit = std::fs::read_to_string(format!(
        "/sys/fs/cgroup/memory{}/memory.limit_in_bytes",
        cgroup(&sleeper)
    ))
    .unwrap();
    assert_eq!(limit.trim(), (64u64 << 20).to_string());
    let shares =
        std::fs::read_to_string(format!("/sys/fs/cgroup/cpu{}/cpu.shares", cgroup(&sleeper)))
            .unwrap();
    assert_eq!(shares.trim(), "256");

    // Give the trapping shell a moment to install its trap.
    tokio::time::sleep(Duration::from_millis(300)).await;
    f.runtime.kill(&trapping, 15).await.unwrap();
    f.runtime.kill(&sleeper, 15).await.unwrap();
    let trapped = tokio::time::timeout(Duration::from_secs(10), f.runtime.wait(&trapping))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(trapped.code, 143);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let state = f.runtime.task_state(&sleeper).await.unwrap().unwrap();
    assert_eq!(state.status, TaskStatus::Running, "PID 1 ignores SIGTERM");
    f.runtime.kill(&sleeper, 9).await.unwrap();
    let killed = tokio::time::timeout(Duration::from_secs(10), f.runtime.wait(&sleeper))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(killed.code, 137);
    f.runtime.delete(&trapping).await.unwrap();
    f.runtime.delete(&sleeper).await.unwrap();
}

#[tokio::test]
async fn delete_removes_task_container_snapshot_fifos_mounts_and_cgroup() {
    let f = RuntimeFixture::start("ferrokube-containerd-").await;
    let id = unique("gone");
    create(&f, &id, &["sleep", "1000"], NamespaceMode::Private).await;
    f.runtime
        .start(&id, &f.log(&id), Stdio::default())
        .await
        .unwrap();
    assert!(snapshots(f.containerd.socket()).contains(&id));
    // Deleting a running container kills it first.
    f.runtime.delete(&id).await.unwrap();
    assert!(f.runtime.task_state(&id).await.unwrap().is_none());
    assert!(!f.runtime.container_exists(&id).await.unwrap());
    assert!(
        !f.runtime
            .list_containers()
            .await
            .unwrap()
            .iter()
            .any(|c| c.id == id)
    );
    assert!(!snapshots(f.containerd.socket()).contains(&id));
    assert!(
        !f.dir
            .path()
            .join("fifo")
            .join(format!("{id}-stdout"))
            .exists()
    );
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mountinfo.contains(&id), "a mount of {id} is left");
    assert!(!Path::new(&format!("/sys/fs/cgroup/memory{}", cgroup(&id))).exists());
    // Deleting again finds nothing to do.
    f.runtime.delete(&id).await.unwrap();
}

#[tokio::test]
async fn exec_runs_in_the_container_and_times_out() {
    let f = RuntimeFixture::start("ferrokube-containerd-").await;
    let id = unique("exec");
    create(
        &f,
        &id,
        &["sh", "-c", "echo inside > /tmp/mark; exec sleep 1000"],
        NamespaceMode::Private,
    )
    .await;
    f.runtime
        .start(&id, &f.log(&id), Stdio::default())
        .await
        .unwrap();
    let argv = |script: &str| vec!["sh".to_string(), "-c".to_string(), script.to_string()];
    // The exec sees the container's filesystem; both streams are collected; the exit code comes back.
    let ran = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let out = f
                .runtime
                .exec(
                    &id,
                    &argv("cat /tmp/mark && echo err >&2 && exit 3"),
                    Duration::from_secs(5),
                )
                .await
                .unwrap();
            if out.exit_code == 3 {
                return out;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("the exec never saw /tmp/mark");
    let text = String::from_utf8(ran.output).unwrap();
    assert!(
        text.contains("inside\n") && text.contains("err\n"),
        "{text:?}"
    );
    let ok = f
        .runtime
        .exec(&id, &argv("true"), Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(ok.exit_code, 0);
    // A command outliving its timeout is killed and reported as upstream's ExecSync does.
    let started = std::time::Instant::now();
    let err = f
        .runtime
        .exec(&id, &argv("sleep 30"), Duration::from_millis(500))
        .await
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(
        err.to_string(),
        "command timed out: \"sh -c sleep 30\" timed out after 500ms"
    );
    // The container itself runs on, and no exec FIFO is left.
    let state = f.runtime.task_state(&id).await.unwrap().unwrap();
    assert_eq!(state.status, TaskStatus::Running);
    let fifos: Vec<_> = std::fs::read_dir(f.dir.path().join("fifo"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with(&format!("{id}-exec-")))
        .collect();
    assert!(fifos.is_empty(), "{fifos:?}");
    f.runtime.delete(&id).await.unwrap();
}

#[tokio::test]
async fn a_container_joins_an_existing_network_namespace() {
    let f = RuntimeFixture::start("ferrokube-containerd-").await;
    let netns = unique("ferrokube-test");
    assert!(
        Command::new("ip")
            .args(["netns", "add", &netns])
            .status()
            .unwrap()
            .success()
    );
    let id = unique("netns");
    create(
        &f,
        &id,
        &["cat", "/proc/net/dev"],
        NamespaceMode::Join(PathBuf::from(format!("/var/run/netns/{netns}"))),
    )
    .await;
    f.runtime
        .start(&id, &f.log(&id), Stdio::default())
        .await
        .unwrap();
    let exit = f.runtime.wait(&id).await.unwrap();
    f.runtime.delete(&id).await.unwrap();
    let _ = Command::new("ip").args(["netns", "del", &netns]).status();
    assert_eq!(exit.code, 0);
    let log = std::fs::read_to_string(f.log(&id)).unwrap();
    // /proc/net/dev: two header lines, then one line per interface.
    let interfaces: Vec<&str> = log
        .lines()
        .filter_map(|l| l.splitn(4, ' ').nth(3))
        .filter_map(|l| l.split_once(':').map(|(name, _)| name.trim()))
        .filter(|name| !name.contains('|'))
        .collect();
    assert_eq!(interfaces, ["lo"], "{log}");
}

#[tokio::test]
async fn a_new_runtime_reopens_the_logs_of_a_running_container() {
    let f = RuntimeFixture::start("ferrokube-containerd-").await;
    let id = unique("reopen");
    // Prints a line whenever /tmp/go appears, so the test decides when output happens.
    create(
        &f,
        &id,
        &[
            "sh",
            "-c",
            "echo before; while [ ! -e /tmp/go ]; do sleep 0.1; done; echo after; exit 0",
        ],
        NamespaceMode::Private,
    )
    .await;
    // Started by a "kubelet" on a tokio runtime of its own, which then ends as a restarted kubelet does:
    // its connection and log copiers are gone, the container and its FIFOs stay.
    let (socket, fifo_dir, log, container) = (
        f.containerd.socket().to_path_buf(),
        f.dir.path().join("fifo"),
        f.log(&id),
        id.clone(),
    );
    std::thread::spawn(move || {
        let kubelet = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        kubelet.block_on(async {
            let runtime = Runtime::connect(&socket)
                .await
                .unwrap()
                .with_fifo_dir(&fifo_dir);
            runtime
                .start(&container, &log, Stdio::default())
                .await
                .unwrap();
            // Until the first line is in the log, so the restart happens between the two lines.
            while !std::fs::read_to_string(&log).unwrap().contains("before") {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
    })
    .join()
    .unwrap();
    let restarted = Runtime::connect(f.containerd.socket())
        .await
        .unwrap()
        .with_fifo_dir(&f.dir.path().join("fifo"));
    let listed = restarted.list_containers().await.unwrap();
    assert!(listed.iter().any(|c| c.id == id));
    restarted.reopen_logs(&id, &f.log(&id)).await.unwrap();
    let state = restarted.task_state(&id).await.unwrap().unwrap();
    assert_eq!(state.status, TaskStatus::Running);
    // Trigger the second line from the host through the container's root filesystem.
    let upper = format!("/proc/{}/root/tmp/go", state.pid);
    std::fs::write(&upper, b"").unwrap();
    let exit = tokio::time::timeout(Duration::from_secs(10), restarted.wait(&id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(exit.code, 0);
    let log = std::fs::read_to_string(f.log(&id)).unwrap();
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.len(), 2, "{log}");
    assert!(lines[0].ends_with(" stdout F before"), "{log}");
    assert!(lines[1].ends_with(" stdout F after"), "{log}");
    restarted.delete(&id).await.unwrap();
}

#[tokio::test]
async fn long_lines_are_logged_as_partial_lines() {
    let f = RuntimeFixture::start("ferrokube-containerd-").await;
    let id = unique("long");
    // 40000 characters and no newline inside: three log lines (16384 P, 16384 P, 7232 F).
    create(
        &f,
        &id,
        &["sh", "-c", "head -c 40000 /dev/zero | tr '\\0' x; echo"],
        NamespaceMode::Private,
    )
    .await;
    f.runtime
        .start(&id, &f.log(&id), Stdio::default())
        .await
        .unwrap();
    assert_eq!(f.runtime.wait(&id).await.unwrap().code, 0);
    f.runtime.delete(&id).await.unwrap();
    let log = std::fs::read_to_string(f.log(&id)).unwrap();
    let parsed: Vec<(&str, usize)> = log
        .lines()
        .map(|l| {
            let fields: Vec<&str> = l.splitn(4, ' ').collect();
            (fields[2], fields[3].len())
        })
        .collect();
    assert_eq!(
        parsed,
        [("P", 16384), ("P", 16384), ("F", 40000 - 2 * 16384)]
    );
}

#[tokio::test]
async fn dropping_the_harness_containerd_leaves_no_container_or_mount_behind() {
    let f = RuntimeFixture::start("ferrokube-containerd-").await;
    let id = unique("orphan");
    create(&f, &id, &["sleep", "1000"], NamespaceMode::Private).await;
    let pid = f
        .runtime
        .start(&id, &f.log(&id), Stdio::default())
        .await
        .unwrap();
    let dir = f.dir.path().to_path_buf();
    // As a failed test would: the container is never deleted.
    drop(f);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !ferrokube_cluster::process::is_alive(pid),
        "the container survived"
    );
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mountinfo.contains(&dir.to_string_lossy().into_owned()));
    assert!(!dir.exists(), "{} is left", dir.display());
    assert!(!Path::new(&format!("/sys/fs/cgroup/memory{}", cgroup(&id))).exists());
}

/// The lines a container wrote to its log, without the CRI prefix.
fn output(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap()
        .lines()
        .filter_map(|l| l.splitn(4, ' ').nth(3).map(str::to_string))
        .collect()
}

#[tokio::test]
async fn the_busybox_image_has_its_applets_users_and_the_pods_hostname() {
    let f = RuntimeFixture::start("ferrokube-containerd-").await;
    let id = unique("applets");
    create(
        &f,
        &id,
        &[
            "sh",
            "-c",
            "id -un; hostname; which httpd nc wget sleep cat env",
        ],
        NamespaceMode::Private,
    )
    .await;
    f.runtime
        .start(&id, &f.log(&id), Stdio::default())
        .await
        .unwrap();
    assert_eq!(f.runtime.wait(&id).await.unwrap().code, 0);
    f.runtime.delete(&id).await.unwrap();
    let lines = output(&f.log(&id));
    assert_eq!(lines[0], "root");
    assert_eq!(lines[1], id);
    assert_eq!(
        lines[2..],
        [
            "/usr/sbin/httpd",
            "/usr/bin/nc",
            "/usr/bin/wget",
            "/bin/sleep",
            "/bin/cat",
            "/usr/bin/env"
        ]
    );
}

#[tokio::test]
async fn a_non_root_container_with_a_read_only_root_and_no_capabilities() {
    let f = RuntimeFixture::start("ferrokube-containerd-").await;
    let id = unique("locked");
    let spec = spec::build(&ContainerSpec {
        args: ["sh", "-c", "id -u; id -G; touch /x 2>/dev/null && echo writable || echo read-only; grep CapEff /proc/self/status"]
            .iter()
            .map(|a| a.to_string())
            .collect(),
        env: f.image.env.clone(),
        uid: 65534,
        gid: 65534,
        additional_gids: vec![1234],
        read_only_root_filesystem: true,
        no_new_privileges: true,
        capabilities: spec::Capabilities {
            add: vec![],
            drop: vec!["ALL".into()],
        },
        cgroups_path: Some(cgroup(&id)),
        ..ContainerSpec::default()
    });
    f.runtime
        .create_container(&id, &f.image, &spec, HashMap::new())
        .await
        .unwrap();
    f.runtime
        .start(&id, &f.log(&id), Stdio::default())
        .await
        .unwrap();
    assert_eq!(f.runtime.wait(&id).await.unwrap().code, 0);
    f.runtime.delete(&id).await.unwrap();
    let lines = output(&f.log(&id));
    assert_eq!(
        lines,
        [
            "65534",
            "65534 1234",
            "read-only",
            "CapEff:\t0000000000000000"
        ]
    );
}
