//! Image reference normalisation as the kubelet and containerd's CRI do it (docker's reference rules):
//! `busybox` is `docker.io/library/busybox:latest`, `foo/bar:1` is `docker.io/foo/bar:1`, digests are kept.

/// The registry an image name without a domain belongs to.
const DEFAULT_DOMAIN: &str = "docker.io";
/// The repository prefix of official images on the default registry.
const OFFICIAL_REPO_PREFIX: &str = "library/";
/// The tag of a reference that has neither tag nor digest.
const DEFAULT_TAG: &str = "latest";

/// The fully qualified form of image reference `reference`, or why it is not one.
pub fn normalize(reference: &str) -> Result<String, String> {
    let reference = reference.trim();
    if reference.is_empty() {
        return Err("empty image reference".to_string());
    }
    if reference.chars().any(char::is_whitespace) {
        return Err(format!(
            "invalid image reference {reference:?}: contains whitespace"
        ));
    }
    // A digest (`@sha256:...`) is kept as it is; the tag, if any, comes before it.
    let (name_and_tag, digest) = match reference.split_once('@') {
        Some((name, digest)) => {
            if !digest.contains(':') {
                return Err(format!("invalid image reference {reference:?}: bad digest"));
            }
            (name, Some(digest))
        }
        None => (reference, None),
    };
    // A tag is a `:` after the last `/` (a `:` before it is a registry port).
    let last_slash = name_and_tag.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match name_and_tag[last_slash..].rfind(':') {
        Some(i) => (
            &name_and_tag[..last_slash + i],
            Some(&name_and_tag[last_slash + i + 1..]),
        ),
        None => (name_and_tag, None),
    };
    if name.is_empty() || tag == Some("") {
        return Err(format!("invalid image reference {reference:?}"));
    }
    if name.chars().any(|c| c.is_ascii_uppercase()) {
        return Err(format!(
            "invalid image reference {reference:?}: repository name must be lowercase"
        ));
    }
    // The first component is a registry when it looks like a host: has a `.` or `:`, or is `localhost`.
    let qualified = match name.split_once('/') {
        Some((first, _)) if first.contains('.') || first.contains(':') || first == "localhost" => {
            name.to_string()
        }
        Some(_) => format!("{DEFAULT_DOMAIN}/{name}"),
        None => format!("{DEFAULT_DOMAIN}/{OFFICIAL_REPO_PREFIX}{name}"),
    };
    let mut out = qualified;
    match (tag, digest) {
        (Some(tag), _) => {
            out.push(':');
            out.push_str(tag);
        }
        (None, None) => {
            out.push(':');
            out.push_str(DEFAULT_TAG);
        }
        (None, Some(_)) => {}
    }
    if let Some(digest) = digest {
        out.push('@');
        out.push_str(digest);
    }
    Ok(out)
}

/// The repository part of a normalised reference (no tag, no digest): `docker.io/library/busybox`.
pub fn repository(normalized: &str) -> &str {
    let without_digest = normalized
        .split_once('@')
        .map_or(normalized, |(name, _)| name);
    let last_slash = without_digest.rfind('/').map_or(0, |i| i + 1);
    match without_digest[last_slash..].rfind(':') {
        Some(i) => &without_digest[..last_slash + i],
        None => without_digest,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_are_official_images_on_docker_hub() {
        assert_eq!(
            normalize("busybox").unwrap(),
            "docker.io/library/busybox:latest"
        );
        assert_eq!(
            normalize("busybox:1.36").unwrap(),
            "docker.io/library/busybox:1.36"
        );
    }

    #[test]
    fn user_repositories_get_the_default_domain() {
        assert_eq!(normalize("foo/bar:1").unwrap(), "docker.io/foo/bar:1");
        assert_eq!(normalize("foo/bar").unwrap(), "docker.io/foo/bar:latest");
        assert_eq!(
            normalize("foo/bar/baz").unwrap(),
            "docker.io/foo/bar/baz:latest"
        );
    }

    #[test]
    fn registries_are_recognised_by_dot_port_or_localhost() {
        assert_eq!(
            normalize("registry.k8s.io/pause:3.10").unwrap(),
            "registry.k8s.io/pause:3.10"
        );
        assert_eq!(
            normalize("localhost:5000/app").unwrap(),
            "localhost:5000/app:latest"
        );
        assert_eq!(normalize("localhost/app:v2").unwrap(), "localhost/app:v2");
        assert_eq!(
            normalize("docker.io/library/busybox:latest").unwrap(),
            "docker.io/library/busybox:latest"
        );
    }

    #[test]
    fn digests_are_kept_and_get_no_default_tag() {
        let digest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        assert_eq!(
            normalize(&format!("busybox@{digest}")).unwrap(),
            format!("docker.io/library/busybox@{digest}")
        );
        assert_eq!(
            normalize(&format!("quay.io/x/y:1@{digest}")).unwrap(),
            format!("quay.io/x/y:1@{digest}")
        );
    }

    #[test]
    fn bad_references_are_refused() {
        assert!(normalize("").is_err());
        assert!(normalize("Busybox").is_err());
        assert!(normalize("busybox:").is_err());
        assert!(normalize("busy box").is_err());
        assert!(normalize("busybox@nodigest").is_err());
    }

    #[test]
    fn repository_drops_tag_and_digest() {
        assert_eq!(
            repository("docker.io/library/busybox:latest"),
            "docker.io/library/busybox"
        );
        assert_eq!(repository("localhost:5000/app"), "localhost:5000/app");
        assert_eq!(repository("quay.io/x/y@sha256:00"), "quay.io/x/y");
    }
}
