//! Which files a configMap, secret or downwardAPI volume (or projection) holds — upstream's
//! MakePayload/CollectData — as pure functions of the source's content and the volume's items and modes.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{DownwardAPIVolumeFile, KeyToPath, Pod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use component_base::quantity::{parse_milli, parse_value};

use super::VolumeError;
use crate::kuberuntime::env::field_value;

/// The mode files get when neither the item nor the volume says (upstream's 0644).
pub const DEFAULT_MODE: i32 = 0o644;

/// One file of a volume: its content, permission bits and owner.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileProjection {
    /// The content.
    pub data: Vec<u8>,
    /// The permission bits (e.g. 0o644).
    pub mode: i32,
    /// The owning user when not root (a projected token for a pod running as one user).
    pub uid: Option<u32>,
    /// The owning group (the pod's fsGroup).
    pub gid: Option<u32>,
}

/// Files by their path relative to the volume.
pub type Payload = BTreeMap<String, FileProjection>;

/// The files of a keyed source (a ConfigMap's or Secret's `data`): every key, or only `items` with their
/// paths and modes. A missing item key is an error unless the source is optional (`kind` is `configmap`
/// or `secret`, for upstream's message).
pub fn keyed_payload(
    kind: &str,
    data: &BTreeMap<String, Vec<u8>>,
    items: Option<&[KeyToPath]>,
    default_mode: i32,
    optional: bool,
) -> Result<Payload, VolumeError> {
    let mut payload = Payload::new();
    match items.filter(|i| !i.is_empty()) {
        None => {
            for (key, value) in data {
                payload.insert(key.clone(), file(value.clone(), default_mode));
            }
        }
        Some(items) => {
            for item in items {
                let Some(value) = data.get(&item.key) else {
                    if optional {
                        continue;
                    }
                    return Err(VolumeError::Invalid(format!(
                        "{kind} references non-existent {} key: {}",
                        if kind == "configmap" {
                            "config"
                        } else {
                            "secret"
                        },
                        item.key
                    )));
                };
                payload.insert(
                    item.path.clone(),
                    file(value.clone(), item.mode.unwrap_or(default_mode)),
                );
            }
        }
    }
    Ok(payload)
}

fn file(data: Vec<u8>, mode: i32) -> FileProjection {
    FileProjection {
        data,
        mode,
        ..FileProjection::default()
    }
}

/// The one user every container of the pod runs as, if they all say the same (upstream's FsUserFrom).
pub fn fs_user(pod: &Pod) -> Option<u32> {
    let spec = pod.spec.as_ref()?;
    let pod_user = spec.security_context.as_ref().and_then(|s| s.run_as_user);
    let mut users = crate::pod_spec::all_containers(spec).map(|c| {
        c.security_context
            .as_ref()
            .and_then(|s| s.run_as_user)
            .or(pod_user)
    });
    let first = users.next()??;
    users
        .all(|u| u == Some(first))
        .then(|| u32::try_from(first).ok())
        .flatten()
}

/// The pod's fsGroup.
pub fn fs_group(pod: &Pod) -> Option<u32> {
    let group = pod.spec.as_ref()?.security_context.as_ref()?.fs_group?;
    u32::try_from(group).ok()
}

/// Gives every file of a read-only volume to group `gid`, group-readable (upstream's SetVolumeOwnership
/// for read-only volumes: mode | 0440).
pub fn with_fs_group(mut payload: Payload, gid: Option<u32>) -> Payload {
    if let Some(gid) = gid {
        for file in payload.values_mut() {
            file.gid = Some(gid);
            file.mode |= 0o440;
        }
    }
    payload
}

/// The files of a downwardAPI volume or projection: each item's pod field or container resource (an unset
/// limit reads as the node's `allocatable`).
pub fn downward_payload(
    pod: &Pod,
    items: &[DownwardAPIVolumeFile],
    default_mode: i32,
    allocatable: &BTreeMap<String, Quantity>,
) -> Result<Payload, VolumeError> {
    let mut payload = Payload::new();
    for item in items {
        let value = if let Some(field) = &item.field_ref {
            downward_field(pod, &field.field_path)?
        } else if let Some(resource) = &item.resource_field_ref {
            let container = resource.container_name.as_deref().unwrap_or_default();
            resource_value(
                pod,
                container,
                &resource.resource,
                resource.divisor.as_ref(),
                allocatable,
            )?
        } else {
            return Err(VolumeError::Invalid(format!(
                "downwardAPI item {:?} has neither fieldRef nor resourceFieldRef",
                item.path
            )));
        };
        payload.insert(
            item.path.clone(),
            file(value.into_bytes(), item.mode.unwrap_or(default_mode)),
        );
    }
    Ok(payload)
}

/// Whether any item reads a container resource (the node's allocatable may be needed).
pub fn reads_resources(items: &[DownwardAPIVolumeFile]) -> bool {
    items.iter().any(|i| i.resource_field_ref.is_some())
}

/// A pod field as a downwardAPI file shows it: whole label/annotation maps as sorted `key="value"` lines.
pub fn downward_field(pod: &Pod, path: &str) -> Result<String, VolumeError> {
    let meta = &pod.metadata;
    match path {
        "metadata.labels" => Ok(format_map(meta.labels.as_ref())),
        "metadata.annotations" => Ok(format_map(meta.annotations.as_ref())),
        _ => field_value(pod, path)
            .or_else(|| {
                // A missing label or annotation key is an empty file, not an error.
                (path.starts_with("metadata.labels['")
                    || path.starts_with("metadata.annotations['"))
                .then(String::new)
            })
            .ok_or_else(|| VolumeError::Invalid(format!("unsupported fieldPath: {path}"))),
    }
}

/// Upstream's fieldpath.FormatMap: sorted `key="value"` lines, values Go-quoted, no trailing newline.
pub fn format_map(map: Option<&BTreeMap<String, String>>) -> String {
    map.into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", go_quote(v)))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Go's strconv.Quote for the characters label and annotation values hold.
pub fn go_quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A container's request or limit in units of `divisor`, rounded up (upstream's
/// ExtractContainerResourceValue). An unset limit reads as the node's allocatable (the request when that
/// is unknown too), an unset request as 0.
pub fn resource_value(
    pod: &Pod,
    container: &str,
    resource: &str,
    divisor: Option<&Quantity>,
    allocatable: &BTreeMap<String, Quantity>,
) -> Result<String, VolumeError> {
    let found = pod
        .spec
        .as_ref()
        .and_then(|spec| crate::pod_spec::find_container(spec, container))
        .ok_or_else(|| {
            VolumeError::Invalid(format!("container {container:?} not found in the pod"))
        })?;
    let resources = found.resources.clone().unwrap_or_default();
    let limits = resources.limits.unwrap_or_default();
    let requests = resources.requests.unwrap_or_default();
    let (kind, name) = resource.split_once('.').ok_or_else(|| {
        VolumeError::Invalid(format!("unsupported container resource : {resource}"))
    })?;
    let quantity = match kind {
        "limits" => limits
            .get(name)
            .or(allocatable.get(name))
            .or(requests.get(name)),
        "requests" => requests.get(name),
        _ => None,
    };
    let unsupported =
        || VolumeError::Invalid(format!("unsupported container resource : {resource}"));
    match name {
        "cpu" => {
            let milli = quantity.and_then(|q| parse_milli(&q.0)).unwrap_or(0);
            let divisor = divisor
                .and_then(|d| parse_milli(&d.0))
                .filter(|d| *d > 0)
                .unwrap_or(1000);
            Ok(ceil_div(milli, divisor).to_string())
        }
        "memory" | "ephemeral-storage" => {
            let value = quantity.and_then(|q| parse_value(&q.0)).unwrap_or(0);
            let divisor = divisor
                .and_then(|d| parse_value(&d.0))
                .filter(|d| *d > 0)
                .unwrap_or(1);
            Ok(ceil_div(value, divisor).to_string())
        }
        _ => Err(unsupported()),
    }
}

fn ceil_div(value: i64, divisor: i64) -> i64 {
    (value + divisor - 1).div_euclid(divisor)
}

#[cfg(test)]
#[path = "payload_tests.rs"]
mod tests;
