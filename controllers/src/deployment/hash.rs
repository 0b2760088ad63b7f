//! The pod-template-hash (upstream `controller.ComputeHash`) and the new ReplicaSet's name.
//!
//! Upstream hashes with FNV-32a the `%v` printing of the Go PodTemplateSpec struct (`hashutil.DeepHashObject`,
//! via `dump.ForHash`) and then the collision count. That printing of Go structs cannot be reproduced byte
//! for byte from Rust, so ferrokube hashes the template's JSON (k8s-openapi serializes fields in a fixed
//! order and maps sorted) instead: the hash is stable for a template and collision count, which is all the
//! controller relies on (ReplicaSet names `<deployment>-<hash>`); it is not the value upstream would pick
//! for the same template. Which ReplicaSet is "the new one" is decided by template equality ignoring this
//! label, never by the hash, so ReplicaSets made by upstream's controller are recognised all the same.

use k8s_openapi::api::core::v1::PodTemplateSpec;

/// rand.String's alphabet: no vowels, no look-alike characters.
const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
/// DNS-1123 subdomain limit on object names.
const DNS1123_SUBDOMAIN_MAX_LENGTH: usize = 253;

const FNV32_OFFSET: u32 = 0x811c_9dc5;
const FNV32_PRIME: u32 = 0x0100_0193;

fn fnv32a(hash: u32, bytes: &[u8]) -> u32 {
    bytes
        .iter()
        .fold(hash, |h, b| (h ^ u32::from(*b)).wrapping_mul(FNV32_PRIME))
}

/// `rand.SafeEncodeString`: each character mapped into the safe alphabet.
pub fn safe_encode_string(s: &str) -> String {
    s.chars()
        .map(|c| char::from(ALPHANUMS[(c as usize) % ALPHANUMS.len()]))
        .collect()
}

/// The pod-template-hash of `template` with `collision_count` (see the module comment).
pub fn compute_hash(template: &PodTemplateSpec, collision_count: Option<i32>) -> String {
    // Serializing a PodTemplateSpec cannot fail (no maps with non-string keys).
    let json = serde_json::to_vec(template).unwrap_or_default();
    let mut hash = fnv32a(FNV32_OFFSET, &json);
    if let Some(count) = collision_count {
        // As upstream: the count as a little-endian uint32 in an 8-byte buffer.
        let mut bytes = [0u8; 8];
        bytes[..4].copy_from_slice(&(count as u32).to_le_bytes());
        hash = fnv32a(hash, &bytes);
    }
    safe_encode_string(&hash.to_string())
}

/// Upstream's `generateReplicaSetName`: `<deployment>-<hash>`, the deployment's name cut so the whole fits
/// a DNS subdomain.
pub fn replica_set_name(deployment: &str, hash: &str) -> String {
    let max = DNS1123_SUBDOMAIN_MAX_LENGTH.saturating_sub(1 + hash.len());
    if deployment.len() > max && max > 0 {
        format!("{}-{hash}", &deployment[..max])
    } else {
        format!("{deployment}-{hash}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn template(image: &str) -> PodTemplateSpec {
        serde_json::from_value(json!({
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": image}]}
        }))
        .unwrap()
    }

    #[test]
    fn fnv32a_matches_the_reference_vectors() {
        assert_eq!(fnv32a(FNV32_OFFSET, b""), 0x811c_9dc5);
        assert_eq!(fnv32a(FNV32_OFFSET, b"a"), 0xe40c_292c);
        assert_eq!(fnv32a(FNV32_OFFSET, b"foobar"), 0xbf9c_f968);
    }

    #[test]
    fn safe_encoding_maps_digits_into_the_alphabet() {
        // '0' is 48: 48 % 27 = 21 → '4'; '9' is 57: 57 % 27 = 3 → 'f'.
        assert_eq!(safe_encode_string("09"), "4f");
        assert!(
            safe_encode_string("1234567890")
                .bytes()
                .all(|b| ALPHANUMS.contains(&b))
        );
    }

    #[test]
    fn the_hash_is_stable_and_depends_on_template_and_collision_count() {
        let a = compute_hash(&template("nginx:1"), None);
        assert_eq!(a, compute_hash(&template("nginx:1"), None));
        assert_ne!(a, compute_hash(&template("nginx:2"), None));
        assert_ne!(a, compute_hash(&template("nginx:1"), Some(1)));
        assert_ne!(
            compute_hash(&template("nginx:1"), Some(0)),
            compute_hash(&template("nginx:1"), Some(1))
        );
        assert!(a.len() <= 10 && !a.is_empty());
    }

    #[test]
    fn long_deployment_names_are_cut_to_fit() {
        assert_eq!(replica_set_name("web", "abc"), "web-abc");
        let long = "d".repeat(300);
        let name = replica_set_name(&long, "hash");
        assert_eq!(name.len(), DNS1123_SUBDOMAIN_MAX_LENGTH);
        assert!(name.ends_with("-hash"));
    }
}
