use std::os::unix::fs::PermissionsExt;

use super::*;
use crate::volumemanager::payload::FileProjection;

fn payload(files: &[(&str, &str, i32)]) -> Payload {
    files
        .iter()
        .map(|(p, d, m)| {
            (
                p.to_string(),
                FileProjection {
                    data: d.as_bytes().to_vec(),
                    mode: *m,
                    ..FileProjection::default()
                },
            )
        })
        .collect()
}

#[test]
fn paths_must_stay_inside() {
    assert!(validate_path("a/b").is_ok());
    assert!(validate_path("").is_err());
    assert!(validate_path("/abs").is_err());
    assert!(validate_path("a/../b").is_err());
    assert!(validate_path("..hidden").is_err());
}

#[test]
fn top_level_entries_are_first_path_elements() {
    let p = payload(&[("a/b", "", 0o644), ("a/c", "", 0o644), ("d", "", 0o644)]);
    assert_eq!(top_level(&p).into_iter().collect::<Vec<_>>(), ["a", "d"]);
}

#[test]
fn the_layout_is_a_timestamped_dir_a_data_link_and_per_entry_links() {
    let dir = tempfile::tempdir().unwrap();
    let first = payload(&[("key", "v1", 0o400), ("sub/file", "x", 0o644)]);
    assert!(write(dir.path(), &first).unwrap());
    let data = std::fs::read_link(dir.path().join("..data")).unwrap();
    assert!(data.to_string_lossy().starts_with("..20"), "{data:?}");
    assert_eq!(
        std::fs::read_link(dir.path().join("key")).unwrap(),
        Path::new("..data/key")
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("key")).unwrap(),
        "v1"
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("sub/file")).unwrap(),
        "x"
    );
    let mode = std::fs::metadata(dir.path().join("key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o400);

    // The same payload again writes nothing.
    assert!(!write(dir.path(), &first).unwrap());
    assert_eq!(std::fs::read_link(dir.path().join("..data")).unwrap(), data);

    // A change swaps ..data, drops entries gone from the payload and the old directory.
    let second = payload(&[("key", "v2", 0o400), ("new", "n", 0o644)]);
    assert!(write(dir.path(), &second).unwrap());
    assert_eq!(
        std::fs::read_to_string(dir.path().join("key")).unwrap(),
        "v2"
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("new")).unwrap(),
        "n"
    );
    assert!(std::fs::symlink_metadata(dir.path().join("sub")).is_err());
    assert!(!dir.path().join(&data).exists());
    let entries: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    assert_eq!(entries.len(), 4, "{entries:?}");
}

#[test]
fn files_get_their_owner() {
    use std::os::unix::fs::MetadataExt;
    if running_as_root() {
        let dir = tempfile::tempdir().unwrap();
        let mut p = payload(&[("token", "jwt", 0o600)]);
        if let Some(file) = p.get_mut("token") {
            file.uid = Some(1000);
            file.gid = Some(2000);
        }
        assert!(write(dir.path(), &p).unwrap());
        let meta = std::fs::metadata(dir.path().join("token")).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (1000, 2000));
        assert!(
            !write(dir.path(), &p).unwrap(),
            "the owner is part of what is unchanged"
        );
    }
}

/// chown needs root; elsewhere the ownership test has nothing to check.
fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .map(|s| {
            s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}
