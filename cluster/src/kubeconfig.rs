//! Kubeconfig files with the credentials embedded, one per identity, as kubeadm writes admin.conf,
//! scheduler.conf, controller-manager.conf and kubelet.conf.

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::Error;
use crate::pki::CertAndKey;

/// Renders a kubeconfig for `user` against `server`, trusting `ca_pem`.
pub fn render(server: &str, ca_pem: &str, user: &str, client: &CertAndKey) -> String {
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: ferrokube
  cluster:
    server: {server}
    certificate-authority-data: {ca}
users:
- name: {user}
  user:
    client-certificate-data: {cert}
    client-key-data: {key}
contexts:
- name: {user}@ferrokube
  context:
    cluster: ferrokube
    user: {user}
current-context: {user}@ferrokube
",
        ca = STANDARD.encode(ca_pem),
        cert = STANDARD.encode(&client.cert_pem),
        key = STANDARD.encode(&client.key_pem),
    )
}

/// Writes `contents` to `path` readable by the owner only, since it holds a private key.
pub fn write(path: &Path, contents: &str) -> Result<(), Error> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| Error::io(path, e))?;
    file.write_all(contents.as_bytes())
        .map_err(|e| Error::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendered_kubeconfig_is_read_by_kube() {
        let client = CertAndKey {
            cert_pem: "CERT".into(),
            key_pem: "KEY".into(),
        };
        let text = render(
            "https://127.0.0.1:6443",
            "CA",
            "system:kube-scheduler",
            &client,
        );
        let parsed = kube::config::Kubeconfig::from_yaml(&text).unwrap();
        assert_eq!(
            parsed.current_context.as_deref(),
            Some("system:kube-scheduler@ferrokube")
        );
        let cluster = parsed.clusters[0].cluster.as_ref().unwrap();
        assert_eq!(cluster.server.as_deref(), Some("https://127.0.0.1:6443"));
        assert_eq!(
            cluster.certificate_authority_data.as_deref(),
            Some(STANDARD.encode("CA").as_str())
        );
    }
}
