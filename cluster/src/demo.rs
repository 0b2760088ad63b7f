//! `ferrokube demo`: what a user does with kubectl on a new cluster, step by step, checking what each step
//! shows: a Deployment behind a Service, reached by cluster IP and by DNS name; scaling; a rolling update
//! and its undo; a cordoned node; deleting it all.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::{Error, upstream};

/// The image the demo starts with, and the one it rolls to (both the local busybox, tagged twice).
pub const FIRST_IMAGE: &str = "busybox:1.35";
/// The image of the rolling update.
pub const SECOND_IMAGE: &str = "busybox:latest";
/// The web server each replica runs: busybox httpd serving a page with the pod's name.
const HTTPD: &str = "mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 8080 -h /www";
/// How long a step waits for what it expects.
const STEP_TIMEOUT: Duration = Duration::from_secs(120);

/// Runs kubectl with a kubeconfig, printing each command and what it printed.
pub struct Kubectl {
    binary: PathBuf,
    kubeconfig: PathBuf,
}

impl Kubectl {
    /// kubectl from hack/upstream against the cluster of `kubeconfig`.
    pub fn new(kubeconfig: &Path) -> Result<Self, Error> {
        Ok(Self {
            binary: upstream::binary("kubectl")?,
            kubeconfig: kubeconfig.to_path_buf(),
        })
    }

    /// Runs `kubectl ARGS`, prints it and its output; its standard output if it succeeded.
    pub async fn run(&self, args: &[&str]) -> Result<String, Error> {
        println!("$ kubectl {}", shell_words(args));
        let output = self.output(args).await?;
        print_output(&output);
        Ok(output)
    }

    /// Like [`Kubectl::run`] without printing: for the checks between steps.
    pub async fn output(&self, args: &[&str]) -> Result<String, Error> {
        let output = tokio::process::Command::new(&self.binary)
            .env("KUBECONFIG", &self.kubeconfig)
            .args(args)
            .kill_on_drop(true)
            .output();
        let output = tokio::time::timeout(STEP_TIMEOUT + Duration::from_secs(30), output)
            .await
            .map_err(|_| Error::Demo(format!("kubectl {} did not finish", shell_words(args))))?
            .map_err(|source| Error::Spawn {
                name: "kubectl".into(),
                source,
            })?;
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout).into_owned())
        } else {
            Err(Error::Demo(format!(
                "kubectl {} failed ({}): {}",
                shell_words(args),
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            )))
        }
    }

    /// Runs `args` until its output satisfies `expect` (printing the last try), for at most the step
    /// timeout.
    pub async fn until(
        &self,
        args: &[&str],
        what: &str,
        expect: impl Fn(&str) -> bool,
    ) -> Result<String, Error> {
        let started = Instant::now();
        loop {
            let output = self.output(args).await;
            if let Ok(text) = &output
                && expect(text.trim())
            {
                println!("$ kubectl {}", shell_words(args));
                print_output(text);
                return Ok(text.clone());
            }
            if started.elapsed() > STEP_TIMEOUT {
                let saw = output.unwrap_or_else(|e| e.to_string());
                return Err(Error::Demo(format!(
                    "{what}: not seen within {}s; last saw: {}",
                    STEP_TIMEOUT.as_secs(),
                    saw.trim()
                )));
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

/// Prints kubectl's output, ending the line when it does not (jsonpath output).
fn print_output(text: &str) {
    print!("{text}");
    if !text.is_empty() && !text.ends_with('\n') {
        println!();
    }
}

fn shell_words(args: &[&str]) -> String {
    args.iter()
        .map(|a| {
            if a.contains([' ', '&', '>', '$', '{', '\'']) {
                format!("'{a}'")
            } else {
                a.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn step(title: &str) {
    println!();
    println!("==> {title}");
}

fn ok(what: &str) {
    println!("    ok: {what}");
}

/// Runs every step against the cluster of `kubeconfig`; an error names the step that did not hold.
pub async fn run(kubeconfig: &Path) -> Result<(), Error> {
    let kubectl = Kubectl::new(kubeconfig)?;
    step("The nodes");
    let nodes = kubectl.run(&["get", "nodes", "-o", "wide"]).await?;
    let ready = nodes
        .lines()
        .filter(|l| l.split_whitespace().nth(1) == Some("Ready"))
        .count();
    expect(ready >= 2, "at least two nodes are Ready", &nodes)?;

    step("A Deployment of 3 busybox httpd replicas behind a ClusterIP Service");
    deploy_web(&kubectl).await?;
    step("A client pod fetches the page by cluster IP and by DNS name");
    fetch_through_the_service(&kubectl).await?;
    step("Scale to 5 replicas");
    scale_to_five(&kubectl).await?;
    step("Change the image: a rolling update");
    let image = format!("busybox={SECOND_IMAGE}");
    kubectl
        .run(&["set", "image", "deployment/web", &image])
        .await?;
    rollout_status(&kubectl).await?;
    expect_template_image(&kubectl, SECOND_IMAGE).await?;
    step("Undo the rollout");
    kubectl.run(&["rollout", "undo", "deployment/web"]).await?;
    rollout_status(&kubectl).await?;
    expect_template_image(&kubectl, FIRST_IMAGE).await?;
    kubectl
        .run(&["rollout", "history", "deployment/web"])
        .await?;
    step("Cordon a node and delete a pod on it: its replacement lands elsewhere");
    cordon_and_replace(&kubectl).await?;
    step("Delete everything");
    delete_everything(&kubectl).await?;
    println!();
    println!("Every step held.");
    Ok(())
}

async fn deploy_web(kubectl: &Kubectl) -> Result<(), Error> {
    let create = [
        "create",
        "deployment",
        "web",
        "--image",
        FIRST_IMAGE,
        "--replicas=3",
        "--port=8080",
        "--",
        "sh",
        "-c",
        HTTPD,
    ];
    kubectl.run(&create).await?;
    let expose = [
        "expose",
        "deployment",
        "web",
        "--port=80",
        "--target-port=8080",
    ];
    kubectl.run(&expose).await?;
    rollout_status(kubectl).await?;
    kubectl
        .run(&["get", "pods", "-l", "app=web", "-o", "wide"])
        .await?;
    Ok(())
}

async fn fetch_through_the_service(kubectl: &Kubectl) -> Result<(), Error> {
    let client = [
        "run",
        "client",
        "--image",
        FIRST_IMAGE,
        "--restart=Never",
        "--command",
        "--",
        "sleep",
        "3600",
    ];
    kubectl.run(&client).await?;
    let wait = [
        "wait",
        "--for=condition=Ready",
        "pod/client",
        "--timeout=120s",
    ];
    kubectl.run(&wait).await?;
    let cluster_ip = kubectl
        .run(&["get", "service", "web", "-o", "jsonpath={.spec.clusterIP}"])
        .await?;
    println!();
    for address in [cluster_ip.trim(), "web.default.svc.cluster.local"] {
        let url = format!("http://{address}/");
        // busybox's `wget -T` crashes (Debian's 1.35); `timeout` bounds it instead.
        let wget = ["exec", "client", "--", "timeout", "5", "wget", "-qO-", &url];
        let page = kubectl
            .until(&wget, &format!("a page from {url}"), |page| {
                page.starts_with("web-")
            })
            .await?;
        ok(&format!("{url} answered from pod {}", page.trim()));
    }
    Ok(())
}

async fn scale_to_five(kubectl: &Kubectl) -> Result<(), Error> {
    kubectl
        .run(&["scale", "deployment", "web", "--replicas=5"])
        .await?;
    rollout_status(kubectl).await?;
    let ready = [
        "get",
        "deployment",
        "web",
        "-o",
        "jsonpath={.status.readyReplicas}",
    ];
    kubectl
        .until(&ready, "5 ready replicas", |ready| ready == "5")
        .await?;
    ok("5 replicas ready");
    Ok(())
}

async fn delete_everything(kubectl: &Kubectl) -> Result<(), Error> {
    kubectl.run(&["delete", "deployment", "web"]).await?;
    kubectl.run(&["delete", "service", "web"]).await?;
    kubectl
        .run(&["delete", "pod", "client", "--grace-period=1"])
        .await?;
    let pods = ["get", "pods", "-o", "name"];
    kubectl
        .until(
            &pods,
            "no pods left in the default namespace",
            str::is_empty,
        )
        .await?;
    let replica_sets = ["get", "replicasets", "-o", "name"];
    kubectl
        .until(&replica_sets, "no ReplicaSets left", str::is_empty)
        .await?;
    ok("all gone");
    Ok(())
}

async fn rollout_status(kubectl: &Kubectl) -> Result<(), Error> {
    kubectl
        .run(&["rollout", "status", "deployment/web", "--timeout=120s"])
        .await
        .map(|_| ())
}

async fn expect_template_image(kubectl: &Kubectl, image: &str) -> Result<(), Error> {
    let jsonpath = "jsonpath={.spec.template.spec.containers[0].image} {.status.updatedReplicas} \
                    {.status.readyReplicas} {.status.replicas}";
    let want = format!("{image} 5 5 5");
    kubectl
        .until(
            &["get", "deployment", "web", "-o", jsonpath],
            &format!("5 updated, ready replicas of {image} and no old ones"),
            |seen| seen == want,
        )
        .await?;
    ok(&format!("all 5 replicas run {image}"));
    Ok(())
}

async fn cordon_and_replace(kubectl: &Kubectl) -> Result<(), Error> {
    // Pods of the old ReplicaSet may still be terminating (and still Running): wait until only the
    // current five are left, so the pod deleted below is one the ReplicaSet replaces.
    kubectl
        .until(
            &["get", "pods", "-l", "app=web", "-o", "name"],
            "only the 5 current pods",
            |pods| pods.lines().count() == 5,
        )
        .await?;
    let running = kubectl
        .output(&[
            "get",
            "pods",
            "-l",
            "app=web",
            "--field-selector=status.phase=Running",
            "-o",
            "jsonpath={.items[0].metadata.name} {.items[0].spec.nodeName}",
        ])
        .await?;
    let (pod, node) = running
        .trim()
        .split_once(' ')
        .ok_or_else(|| Error::Demo(format!("no running web pod: {running:?}")))?;
    let before = kubectl
        .output(&["get", "pods", "-l", "app=web", "-o", "name"])
        .await?;
    kubectl.run(&["cordon", node]).await?;
    let replaced = async {
        kubectl.run(&["delete", "pod", pod]).await?;
        rollout_status(kubectl).await?;
        let placed =
            "jsonpath={range .items[*]}pod/{.metadata.name} {.spec.nodeName}{\"\\n\"}{end}";
        let is_new = |line: &&str| {
            let mut fields = line.split_whitespace();
            let name = fields.next().unwrap_or_default();
            fields.next().is_some() && !before.lines().any(|old| old == name)
        };
        let placed = kubectl
            .until(
                &["get", "pods", "-l", "app=web", "-o", placed],
                "the replacement pod scheduled",
                |pods| pods.lines().any(|line| is_new(&line)),
            )
            .await?;
        let replacement = placed.lines().find(is_new).unwrap_or_default();
        expect(
            replacement.split_whitespace().nth(1) != Some(node),
            &format!("the replacement of {pod} is not on cordoned {node}"),
            replacement,
        )
    }
    .await;
    // Uncordoned whatever happened, so a failed step leaves the cluster usable.
    kubectl.run(&["uncordon", node]).await?;
    replaced
}

fn expect(holds: bool, what: &str, saw: &str) -> Result<(), Error> {
    if holds {
        ok(what);
        Ok(())
    } else {
        Err(Error::Demo(format!("expected {what}; saw: {}", saw.trim())))
    }
}
