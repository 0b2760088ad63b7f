//! Loading the network configuration from `--cni-conf-dir` as containerd's CNI library does with libcni.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::sandbox::SandboxError;

/// The extensions libcni's `ConfFiles` is asked for by containerd.
const EXTENSIONS: [&str; 3] = ["conf", "conflist", "json"];

/// One network configuration list: the networks' name and version and its plugins, in order.
#[derive(Debug, Clone, PartialEq)]
pub struct NetworkConfigList {
    /// The network's `name`.
    pub name: String,
    /// The list's `cniVersion`, injected into every plugin's configuration.
    pub cni_version: String,
    /// Each plugin's configuration object, as written.
    pub plugins: Vec<Map<String, Value>>,
    /// The file it came from.
    pub source: PathBuf,
}

impl NetworkConfigList {
    /// The list as JSON, the form recorded with a sandbox so DEL uses what ADD used.
    pub fn to_json(&self) -> Value {
        serde_json::json!({
            "cniVersion": self.cni_version,
            "name": self.name,
            "plugins": self.plugins,
            "source": self.source,
        })
    }

    /// Reads back [`NetworkConfigList::to_json`].
    pub fn from_json(value: &Value, path: &Path) -> Result<Self, SandboxError> {
        let source = value
            .get("source")
            .and_then(Value::as_str)
            .map(PathBuf::from)
            .unwrap_or_else(|| path.to_path_buf());
        let bytes = serde_json::to_vec(value).map_err(|e| config_error(path, e.to_string()))?;
        let mut list = parse_conflist(&bytes, path)?;
        list.source = source;
        Ok(list)
    }

    /// The `type` of each plugin (its binary's name).
    pub fn plugin_type(plugin: &Map<String, Value>) -> &str {
        plugin.get("type").and_then(Value::as_str).unwrap_or("")
    }
}

/// The first usable configuration in `dir`: files named `*.conf`, `*.conflist` or `*.json`, in lexical
/// order; a `.conf`/`.json` holds one plugin and is wrapped into a list. As containerd's loader, a broken
/// first file is an error rather than skipped, so a typo does not silently select another network.
pub fn load_from_dir(dir: &Path) -> Result<NetworkConfigList, SandboxError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(SandboxError::NotInitialized {
                dir: dir.to_path_buf(),
            });
        }
        Err(e) => return Err(SandboxError::io(dir, e)),
    };
    let names = entries
        .filter_map(Result::ok)
        .filter(|entry| entry.file_type().map(|t| !t.is_dir()).unwrap_or(false))
        .map(|entry| entry.path())
        .collect();
    let Some(first) = config_files(names).into_iter().next() else {
        return Err(SandboxError::NotInitialized {
            dir: dir.to_path_buf(),
        });
    };
    let bytes = std::fs::read(&first).map_err(|e| SandboxError::io(&first, e))?;
    parse_file(&bytes, &first)
}

/// The configuration files among `paths`, sorted as libcni's callers sort them.
pub fn config_files(mut paths: Vec<PathBuf>) -> Vec<PathBuf> {
    paths.retain(|path| {
        path.extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| EXTENSIONS.contains(&e))
    });
    paths.sort();
    paths
}

/// Parses one file by its extension: `.conflist` as a list, anything else as a single plugin.
pub fn parse_file(bytes: &[u8], path: &Path) -> Result<NetworkConfigList, SandboxError> {
    if path.extension().and_then(|e| e.to_str()) == Some("conflist") {
        parse_conflist(bytes, path)
    } else {
        parse_conf(bytes, path)
    }
}

/// Parses a configuration list (libcni's `ConfListFromBytes`).
pub fn parse_conflist(bytes: &[u8], path: &Path) -> Result<NetworkConfigList, SandboxError> {
    let object = parse_object(bytes, path)?;
    let name = string_field(&object, "name")
        .ok_or_else(|| config_error(path, "error parsing configuration list: no name"))?;
    let cni_version = string_field(&object, "cniVersion").unwrap_or_default();
    let plugins = match object.get("plugins") {
        Some(Value::Array(plugins)) => plugins,
        Some(_) => {
            return Err(config_error(
                path,
                "error parsing configuration list: invalid 'plugins' type",
            ));
        }
        None => {
            return Err(config_error(
                path,
                "error parsing configuration list: no 'plugins' key",
            ));
        }
    };
    if plugins.is_empty() {
        return Err(config_error(path, "CNI config list has no networks"));
    }
    let plugins = plugins
        .iter()
        .enumerate()
        .map(|(index, plugin)| match plugin {
            Value::Object(plugin) if string_field(plugin, "type").is_some() => Ok(plugin.clone()),
            _ => Err(config_error(
                path,
                format!("plugin {index}: error parsing configuration: missing 'type'"),
            )),
        })
        .collect::<Result<_, _>>()?;
    Ok(NetworkConfigList {
        name,
        cni_version,
        plugins,
        source: path.to_path_buf(),
    })
}

/// Parses a single-plugin configuration and wraps it into a list (libcni's `ConfListFromConf`).
pub fn parse_conf(bytes: &[u8], path: &Path) -> Result<NetworkConfigList, SandboxError> {
    let object = parse_object(bytes, path)?;
    if string_field(&object, "type").is_none() {
        // Also what a conflist saved under a .conf name looks like.
        return Err(config_error(path, "network type not found"));
    }
    Ok(NetworkConfigList {
        name: string_field(&object, "name").unwrap_or_default(),
        cni_version: string_field(&object, "cniVersion").unwrap_or_default(),
        plugins: vec![object],
        source: path.to_path_buf(),
    })
}

fn parse_object(bytes: &[u8], path: &Path) -> Result<Map<String, Value>, SandboxError> {
    match serde_json::from_slice(bytes) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(_) => Err(config_error(path, "not a JSON object")),
        Err(e) => Err(config_error(
            path,
            format!("error parsing configuration: {e}"),
        )),
    }
}

fn string_field(object: &Map<String, Value>, key: &str) -> Option<String> {
    object
        .get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

fn config_error(path: &Path, reason: impl Into<String>) -> SandboxError {
    SandboxError::Config {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIST: &str = r#"{"cniVersion":"1.0.0","name":"net","plugins":[
        {"type":"bridge","bridge":"cni0"},{"type":"portmap","capabilities":{"portMappings":true}}]}"#;

    #[test]
    fn a_conflist_keeps_its_plugins_in_order() {
        let list = parse_file(LIST.as_bytes(), Path::new("/d/10-net.conflist")).unwrap();
        assert_eq!(list.name, "net");
        assert_eq!(list.cni_version, "1.0.0");
        let types: Vec<_> = list
            .plugins
            .iter()
            .map(NetworkConfigList::plugin_type)
            .collect();
        assert_eq!(types, ["bridge", "portmap"]);
    }

    #[test]
    fn a_conf_file_is_wrapped_into_a_list() {
        let conf = r#"{"cniVersion":"0.4.0","name":"single","type":"bridge","bridge":"b0"}"#;
        for name in ["/d/1.conf", "/d/1.json"] {
            let list = parse_file(conf.as_bytes(), Path::new(name)).unwrap();
            assert_eq!(list.name, "single");
            assert_eq!(list.cni_version, "0.4.0");
            assert_eq!(list.plugins.len(), 1);
            assert_eq!(list.plugins[0]["bridge"], "b0");
        }
    }

    #[test]
    fn a_conflist_under_a_conf_name_is_refused() {
        let error = parse_file(LIST.as_bytes(), Path::new("/d/1.conf")).unwrap_err();
        assert!(
            error.to_string().contains("network type not found"),
            "{error}"
        );
    }

    #[test]
    fn invalid_lists_name_the_problem() {
        let cases = [
            (r#"{"cniVersion":"1.0.0","plugins":[]}"#, "no name"),
            (r#"{"name":"n","plugins":{}}"#, "invalid 'plugins' type"),
            (r#"{"name":"n","plugins":[]}"#, "no networks"),
            (
                r#"{"name":"n","plugins":[{"bridge":"x"}]}"#,
                "missing 'type'",
            ),
            ("not json", "error parsing configuration"),
        ];
        for (text, wanted) in cases {
            let error = parse_conflist(text.as_bytes(), Path::new("/d/x.conflist")).unwrap_err();
            assert!(error.to_string().contains(wanted), "{text}: {error}");
            assert!(error.to_string().contains("/d/x.conflist"), "{error}");
        }
    }

    #[test]
    fn files_are_taken_in_lexical_order_whatever_their_extension() {
        let paths = [
            "/d/20-b.conflist",
            "/d/10-a.conf",
            "/d/05-x.txt",
            "/d/15-c.json",
        ]
        .map(PathBuf::from)
        .to_vec();
        let sorted = config_files(paths);
        assert_eq!(
            sorted,
            ["/d/10-a.conf", "/d/15-c.json", "/d/20-b.conflist"].map(PathBuf::from)
        );
    }

    #[test]
    fn a_directory_without_configs_is_not_initialized() {
        let dir = std::env::temp_dir().join(format!("fk-cni-empty-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("README"), "x").unwrap();
        let error = load_from_dir(&dir).unwrap_err();
        assert!(
            matches!(error, SandboxError::NotInitialized { .. }),
            "{error}"
        );
        std::fs::write(dir.join("99-net.conflist"), LIST).unwrap();
        std::fs::write(
            dir.join("50-first.conf"),
            r#"{"name":"first","type":"bridge"}"#,
        )
        .unwrap();
        assert_eq!(load_from_dir(&dir).unwrap().name, "first");
        std::fs::remove_dir_all(&dir).unwrap();
        let missing = load_from_dir(&dir).unwrap_err();
        assert!(matches!(missing, SandboxError::NotInitialized { .. }));
    }

    #[test]
    fn the_recorded_form_reads_back() {
        let list = parse_file(LIST.as_bytes(), Path::new("/d/10-net.conflist")).unwrap();
        let back = NetworkConfigList::from_json(&list.to_json(), Path::new("/state")).unwrap();
        assert_eq!(back, list);
    }
}
