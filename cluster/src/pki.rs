//! The control plane's PKI, generated in memory: a cluster CA with the apiserver's serving certificate and a
//! client certificate per identity, the front-proxy CA and client for the aggregation layer, and the
//! service-account signing key. Laid out on disk as kubeadm lays out /etc/kubernetes/pki.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};

use crate::Error;

/// A certificate and its private key, both PEM.
#[derive(Clone, Debug)]
pub struct CertAndKey {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// The private key, PEM (PKCS#8).
    pub key_pem: String,
}

/// Who a client certificate speaks for: the user name (CN) and groups (O) Kubernetes reads from it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Identity {
    /// The user name, e.g. `system:kube-scheduler`.
    pub user: String,
    /// The groups, e.g. `system:nodes`.
    pub groups: Vec<String>,
}

impl Identity {
    /// The cluster administrator, in `system:masters` as kubeadm's admin.conf is (before its
    /// `kubeadm:cluster-admins` binding exists).
    pub fn admin() -> Self {
        Self::new("kubernetes-admin", &["system:masters"])
    }
    /// kube-scheduler's identity, bound by the apiserver's bootstrap RBAC to `system:kube-scheduler`.
    pub fn scheduler() -> Self {
        Self::new("system:kube-scheduler", &[])
    }
    /// kube-controller-manager's identity, bound to `system:kube-controller-manager`.
    pub fn controller_manager() -> Self {
        Self::new("system:kube-controller-manager", &[])
    }
    /// A kubelet's identity, authorized by the Node authorizer and NodeRestriction for node `name` only.
    pub fn node(name: &str) -> Self {
        Self::new(&format!("{NODE_USER_PREFIX}{name}"), &["system:nodes"])
    }
    /// kube-proxy's identity, which the apiserver's bootstrap ClusterRoleBinding `system:node-proxier` binds
    /// to the ClusterRole of that name (kubeadm's kube-proxy uses a service account bound to the same role).
    pub fn kube_proxy() -> Self {
        Self::new("system:kube-proxy", &[])
    }
    /// The apiserver's identity towards kubelets (kubeadm's apiserver-kubelet-client).
    pub fn apiserver_kubelet_client() -> Self {
        Self::new("kube-apiserver-kubelet-client", &["system:masters"])
    }

    fn new(user: &str, groups: &[&str]) -> Self {
        Self {
            user: user.to_string(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
        }
    }

    /// A file-name-safe form of the user name.
    pub fn file_stem(&self) -> String {
        self.user.replace(':', "-")
    }
}

/// The user name prefix of kubelets' identities.
const NODE_USER_PREFIX: &str = "system:node:";

/// What a kubelet's serving certificate is valid for: its name, loopback, the host's address and the
/// node's own addresses (its InternalIP, which the apiserver dials for logs, exec and the node proxy).
fn kubelet_sans(node: &str, node_ips: &[IpAddr]) -> Vec<String> {
    let mut sans = vec![
        node.to_string(),
        "localhost".to_string(),
        "127.0.0.1".to_string(),
    ];
    sans.extend(crate::sys::default_route_ip().map(|ip| ip.to_string()));
    sans.extend(node_ips.iter().map(IpAddr::to_string));
    sans
}

/// Every key and certificate a control plane needs.
pub struct Pki {
    /// The cluster CA: signs the serving certificate and every client certificate.
    pub ca: CertAndKey,
    /// The apiserver's serving certificate.
    pub apiserver: CertAndKey,
    /// The aggregation layer's CA and the apiserver's client certificate towards extension apiservers.
    pub front_proxy_ca: CertAndKey,
    /// The front-proxy client (CN `front-proxy-client`).
    pub front_proxy_client: CertAndKey,
    /// The service-account token signing key pair.
    pub service_account: CertAndKey,
    /// One client certificate per identity.
    pub clients: Vec<(Identity, CertAndKey)>,
    /// A serving certificate for each node identity's kubelet, by node name.
    pub kubelet_serving: Vec<(String, CertAndKey)>,
}

/// The names and addresses the apiserver's serving certificate is valid for.
pub fn apiserver_sans(extra_ips: &[IpAddr], first_service_ip: IpAddr) -> Vec<String> {
    let mut sans: Vec<String> = [
        "localhost",
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
        "127.0.0.1",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    sans.push(first_service_ip.to_string());
    sans.extend(extra_ips.iter().map(IpAddr::to_string));
    sans
}

impl Pki {
    /// Generates a fresh PKI for an apiserver reachable at `sans`, with client certificates for `clients`;
    /// node identities also get kubelet serving certificates, valid for their addresses in `node_ips`.
    pub fn generate(
        sans: Vec<String>,
        clients: &[Identity],
        node_ips: &[(String, IpAddr)],
    ) -> Result<Self, Error> {
        let (ca, ca_issuer) = new_ca("kubernetes")?;
        let (front_proxy_ca, front_proxy_issuer) = new_ca("front-proxy-ca")?;

        let mut serving = leaf_params("kube-apiserver", &[], sans)?;
        serving.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let apiserver = sign(serving, &ca_issuer)?;

        let front_proxy_client = sign(
            client_params(&Identity::new("front-proxy-client", &[]))?,
            &front_proxy_issuer,
        )?;

        let clients = clients
            .iter()
            .map(|identity| {
                Ok((
                    identity.clone(),
                    sign(client_params(identity)?, &ca_issuer)?,
                ))
            })
            .collect::<Result<Vec<_>, Error>>()?;

        let kubelet_serving = clients
            .iter()
            .filter_map(|(identity, _)| identity.user.strip_prefix(NODE_USER_PREFIX))
            .map(|node| {
                let ips: Vec<IpAddr> = node_ips
                    .iter()
                    .filter(|(name, _)| name == node)
                    .map(|(_, ip)| *ip)
                    .collect();
                let mut params = leaf_params(node, &[], kubelet_sans(node, &ips))?;
                params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
                Ok((node.to_string(), sign(params, &ca_issuer)?))
            })
            .collect::<Result<Vec<_>, Error>>()?;

        Ok(Self {
            kubelet_serving,
            ca,
            apiserver,
            front_proxy_ca,
            front_proxy_client,
            service_account: service_account_key()?,
            clients,
        })
    }

    /// The client certificate of `identity`, if one was generated.
    pub fn client(&self, identity: &Identity) -> Option<&CertAndKey> {
        self.clients
            .iter()
            .find(|(id, _)| id == identity)
            .map(|(_, cert)| cert)
    }

    /// Writes the files the apiserver reads into `dir` (kubeadm's names) and returns their paths.
    pub fn write(&self, dir: &Path) -> Result<PkiPaths, Error> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let write = |name: &str, text: &str| -> Result<PathBuf, Error> {
            let path = dir.join(name);
            std::fs::write(&path, text).map_err(|e| Error::io(&path, e))?;
            Ok(path)
        };
        let kubelet_client = self
            .client(&Identity::apiserver_kubelet_client())
            .ok_or_else(|| {
                Error::Pki("no apiserver-kubelet-client certificate was generated".into())
            })?;
        Ok(PkiPaths {
            ca_cert: write("ca.crt", &self.ca.cert_pem)?,
            apiserver_cert: write("apiserver.crt", &self.apiserver.cert_pem)?,
            apiserver_key: write("apiserver.key", &self.apiserver.key_pem)?,
            front_proxy_ca_cert: write("front-proxy-ca.crt", &self.front_proxy_ca.cert_pem)?,
            front_proxy_client_cert: write(
                "front-proxy-client.crt",
                &self.front_proxy_client.cert_pem,
            )?,
            front_proxy_client_key: write(
                "front-proxy-client.key",
                &self.front_proxy_client.key_pem,
            )?,
            service_account_key: write("sa.key", &self.service_account.key_pem)?,
            service_account_public_key: write("sa.pub", &self.service_account.cert_pem)?,
            kubelet_client_cert: write("apiserver-kubelet-client.crt", &kubelet_client.cert_pem)?,
            kubelet_client_key: write("apiserver-kubelet-client.key", &kubelet_client.key_pem)?,
            kubelet_serving: self
                .kubelet_serving
                .iter()
                .map(|(node, pair)| {
                    Ok((
                        node.clone(),
                        write(&format!("kubelet-{node}.crt"), &pair.cert_pem)?,
                        write(&format!("kubelet-{node}.key"), &pair.key_pem)?,
                    ))
                })
                .collect::<Result<_, Error>>()?,
        })
    }
}

/// Where [`Pki::write`] put each file.
#[derive(Clone, Debug)]
pub struct PkiPaths {
    pub ca_cert: PathBuf,
    pub apiserver_cert: PathBuf,
    pub apiserver_key: PathBuf,
    pub front_proxy_ca_cert: PathBuf,
    pub front_proxy_client_cert: PathBuf,
    pub front_proxy_client_key: PathBuf,
    pub service_account_key: PathBuf,
    pub service_account_public_key: PathBuf,
    pub kubelet_client_cert: PathBuf,
    pub kubelet_client_key: PathBuf,
    /// Each node's kubelet serving certificate and key, by node name.
    pub kubelet_serving: Vec<(String, PathBuf, PathBuf)>,
}

fn pki_error(e: rcgen::Error) -> Error {
    Error::Pki(e.to_string())
}

/// The token signing key; its "certificate" is the bare public key, which is what the apiserver verifies with.
fn service_account_key() -> Result<CertAndKey, Error> {
    let key = KeyPair::generate().map_err(pki_error)?;
    Ok(CertAndKey {
        cert_pem: key.public_key_pem(),
        key_pem: key.serialize_pem(),
    })
}

fn new_ca(common_name: &str) -> Result<(CertAndKey, Issuer<'static, KeyPair>), Error> {
    let mut params = leaf_params(common_name, &[], vec![])?;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let key = KeyPair::generate().map_err(pki_error)?;
    let cert = params.self_signed(&key).map_err(pki_error)?;
    let pem = CertAndKey {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    };
    Ok((pem, Issuer::new(params, key)))
}

fn leaf_params(
    common_name: &str,
    organizations: &[String],
    sans: Vec<String>,
) -> Result<CertificateParams, Error> {
    let mut params = CertificateParams::new(sans).map_err(pki_error)?;
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, common_name);
    for organization in organizations {
        name.push(DnType::OrganizationName, organization.as_str());
    }
    params.distinguished_name = name;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    Ok(params)
}

fn client_params(identity: &Identity) -> Result<CertificateParams, Error> {
    let mut params = leaf_params(&identity.user, &identity.groups, vec![])?;
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    Ok(params)
}

fn sign(params: CertificateParams, issuer: &Issuer<'_, KeyPair>) -> Result<CertAndKey, Error> {
    let key = KeyPair::generate().map_err(pki_error)?;
    let cert = params.signed_by(&key, issuer).map_err(pki_error)?;
    Ok(CertAndKey {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_certificates_carry_user_and_groups() {
        let pki = Pki::generate(
            apiserver_sans(&[], "10.96.0.1".parse().unwrap()),
            &[Identity::node("node-1")],
            &[],
        )
        .unwrap();
        let cert = pki.client(&Identity::node("node-1")).unwrap();
        let (_, pem) = x509_parser::pem::parse_x509_pem(cert.cert_pem.as_bytes()).unwrap();
        let parsed = pem.parse_x509().unwrap();
        let subject = parsed.subject().to_string();
        assert!(subject.contains("CN=system:node:node-1"), "{subject}");
        assert!(subject.contains("O=system:nodes"), "{subject}");
        assert_eq!(parsed.issuer().to_string(), "CN=kubernetes");
    }

    /// The DNS names and IPv4 addresses a PEM certificate is valid for.
    fn sans_of(cert_pem: &str) -> Vec<String> {
        let (_, pem) = x509_parser::pem::parse_x509_pem(cert_pem.as_bytes()).unwrap();
        let parsed = pem.parse_x509().unwrap();
        let names = &parsed
            .subject_alternative_name()
            .unwrap()
            .unwrap()
            .value
            .general_names;
        names
            .iter()
            .map(|name| match name {
                x509_parser::extensions::GeneralName::DNSName(dns) => dns.to_string(),
                x509_parser::extensions::GeneralName::IPAddress(ip) => {
                    std::net::Ipv4Addr::from(<[u8; 4]>::try_from(*ip).unwrap()).to_string()
                }
                other => format!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn a_kubelet_serving_certificate_covers_its_node_ip_and_no_other_nodes() {
        let pki = Pki::generate(
            apiserver_sans(&[], "10.96.0.1".parse().unwrap()),
            &[Identity::node("node-1"), Identity::node("node-2")],
            &[
                ("node-1".to_string(), "10.200.0.11".parse().unwrap()),
                ("node-2".to_string(), "10.200.0.12".parse().unwrap()),
            ],
        )
        .unwrap();
        let (_, node_1) = pki
            .kubelet_serving
            .iter()
            .find(|(name, _)| name == "node-1")
            .unwrap();
        let sans = sans_of(&node_1.cert_pem);
        assert!(sans.contains(&"node-1".to_string()), "{sans:?}");
        assert!(sans.contains(&"10.200.0.11".to_string()), "{sans:?}");
        assert!(!sans.contains(&"10.200.0.12".to_string()), "{sans:?}");
    }

    #[test]
    fn serving_certificate_covers_loopback_and_the_kubernetes_service() {
        let pki =
            Pki::generate(apiserver_sans(&[], "10.96.0.1".parse().unwrap()), &[], &[]).unwrap();
        let sans = sans_of(&pki.apiserver.cert_pem);
        for want in [
            "127.0.0.1",
            "10.96.0.1",
            "kubernetes.default.svc.cluster.local",
            "localhost",
        ] {
            assert!(
                sans.iter().any(|san| san == want),
                "{want} missing from {sans:?}"
            );
        }
    }
}
