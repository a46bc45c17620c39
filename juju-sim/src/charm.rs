//! The charm as the simulator sees it: unpacking a `.charm` zip or copying a
//! charm directory, and reading metadata.yaml (name, endpoints, resources),
//! config.yaml (option types and defaults) and actions.yaml (parameter
//! schemas). The YAML is read into `serde_json::Value` so that the schema
//! checks below can walk it without a typed model of every field.

use serde_json::{Map, Value};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// Errors from reading or validating a charm.
#[derive(Debug, thiserror::Error)]
pub enum CharmError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot parse {path}: {msg}")]
    Parse { path: PathBuf, msg: String },
    #[error("{0}")]
    Invalid(String),
}

/// The parsed charm files.
#[derive(Debug, Clone, Default)]
pub struct Charm {
    pub meta: Value,
    pub config: Value,
    pub actions: Value,
}

fn read_yaml(path: &Path, required: bool) -> Result<Value, CharmError> {
    match fs::read_to_string(path) {
        Ok(s) => {
            let v: Value = serde_yaml::from_str(&s).map_err(|e| CharmError::Parse {
                path: path.to_path_buf(),
                msg: e.to_string(),
            })?;
            Ok(if v.is_null() {
                Value::Object(Map::new())
            } else {
                v
            })
        }
        Err(e) if !required && e.kind() == io::ErrorKind::NotFound => Ok(Value::Object(Map::new())),
        Err(source) => Err(CharmError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

impl Charm {
    /// Reads an unpacked charm directory.
    pub fn load(dir: &Path) -> Result<Charm, CharmError> {
        Ok(Charm {
            meta: read_yaml(&dir.join("metadata.yaml"), true)?,
            config: read_yaml(&dir.join("config.yaml"), false)?,
            actions: read_yaml(&dir.join("actions.yaml"), false)?,
        })
    }

    pub fn name(&self) -> String {
        self.meta["name"].as_str().unwrap_or("charm").to_string()
    }

    fn section(&self, key: &str) -> Vec<String> {
        self.meta[key]
            .as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// The `provides` (`true`) or `requires` (`false`) endpoints with their
    /// interfaces.
    pub fn relation_endpoints(&self, provides: bool) -> Vec<(String, String)> {
        let key = if provides { "provides" } else { "requires" };
        self.meta[key]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(ep, v)| {
                        (
                            ep.clone(),
                            v["interface"].as_str().unwrap_or_default().to_string(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The interface of endpoint `ep` (peers, provides or requires).
    pub fn interface_of(&self, ep: &str) -> String {
        ["peers", "provides", "requires"]
            .iter()
            .find_map(|k| self.meta[*k][ep]["interface"].as_str())
            .unwrap_or_default()
            .to_string()
    }

    pub fn peers(&self) -> Vec<String> {
        self.section("peers")
    }

    /// Every endpoint name network-get accepts.
    pub fn endpoints(&self) -> Vec<String> {
        let mut v = self.section("peers");
        v.extend(self.section("provides"));
        v.extend(self.section("requires"));
        v.extend(self.section("extra-bindings"));
        v.push("juju-info".to_string());
        v
    }

    /// Resource name → filename.
    pub fn resources(&self) -> Vec<(String, String)> {
        self.meta["resources"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| {
                        let f = v["filename"].as_str().unwrap_or(k).to_string();
                        (k.clone(), f)
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn options(&self) -> Map<String, Value> {
        self.config["options"]
            .as_object()
            .cloned()
            .unwrap_or_default()
    }

    /// Parses an operator-supplied config value against its declared type.
    pub fn parse_config_value(&self, key: &str, raw: &str) -> Result<Value, CharmError> {
        let opts = self.options();
        let opt = opts
            .get(key)
            .ok_or_else(|| CharmError::Invalid(format!("unknown option \"{key}\"")))?;
        let ty = opt["type"].as_str().unwrap_or("string");
        let bad = || CharmError::Invalid(format!("option \"{key}\" expected {ty}, got \"{raw}\""));
        Ok(match ty {
            "int" => Value::from(raw.trim().parse::<i64>().map_err(|_| bad())?),
            "float" => Value::from(raw.trim().parse::<f64>().map_err(|_| bad())?),
            // Go's strconv.ParseBool, which Juju uses for `juju config`.
            "boolean" => match raw.trim() {
                "1" | "t" | "T" | "true" | "True" | "TRUE" => Value::Bool(true),
                "0" | "f" | "F" | "false" | "False" | "FALSE" => Value::Bool(false),
                _ => return Err(bad()),
            },
            _ => Value::String(raw.to_string()),
        })
    }

    /// Effective settings: defaults overlaid with user values. Keys with
    /// neither are `null`.
    pub fn effective_config(
        &self,
        user: &std::collections::BTreeMap<String, Value>,
    ) -> Map<String, Value> {
        let mut out = Map::new();
        for (k, opt) in self.options() {
            let v = user
                .get(&k)
                .cloned()
                .unwrap_or_else(|| opt.get("default").cloned().unwrap_or(Value::Null));
            out.insert(k, v);
        }
        out
    }

    /// Validates `key=value` action parameters against actions.yaml and
    /// returns the full parameter map with defaults filled in. As in Juju,
    /// `file` (from `--params`) is the base and the CLI arguments override
    /// it; each CLI value is parsed as YAML (YAML 1.1 booleans such as
    /// `True`, `yes` and `on` included) unless `string_args` is set, and
    /// dotted keys make nested maps.
    pub fn action_params(
        &self,
        unit: &str,
        action: &str,
        args: &[String],
        file: Option<Map<String, Value>>,
        string_args: bool,
    ) -> Result<Value, CharmError> {
        let spec = self.actions.get(action).ok_or_else(|| {
            CharmError::Invalid(format!(
                "action \"{action}\" not defined on unit \"{unit}\""
            ))
        })?;
        let props = spec["params"].as_object().cloned().unwrap_or_default();
        let mut given = file.unwrap_or_default();
        for arg in args {
            let (k, raw) = arg.split_once('=').ok_or_else(|| {
                CharmError::Invalid(format!(
                    "argument \"{arg}\" must be of the form key.key.key...=value"
                ))
            })?;
            for seg in k.split('.') {
                if !valid_name(seg) {
                    return Err(CharmError::Invalid(format!(
                        "key \"{seg}\" must start and end with lowercase alphanumeric, and contain only lowercase alphanumeric and hyphens"
                    )));
                }
            }
            let value = if string_args {
                Value::String(raw.to_string())
            } else {
                // As in Juju, `revision=1234` is an integer even for a
                // string-typed parameter: `--string-args` keeps the text.
                parse_cli_value(raw).map_err(|e| {
                    CharmError::Invalid(format!("cannot parse the value of \"{k}\": {e}"))
                })?
            };
            insert_dotted(&mut given, k, value);
        }
        let given_json = Value::Object(given.clone()).to_string();
        if spec["additionalProperties"] == Value::Bool(false) {
            for k in given.keys() {
                if !props.contains_key(k) {
                    return Err(CharmError::Invalid(format!(
                        "validation failed: (root) : additional property \"{k}\" is not allowed, given {given_json}"
                    )));
                }
            }
        }
        for (k, v) in &given {
            if let Some(ty) = props.get(k).and_then(|p| p["type"].as_str()) {
                let ok = match ty {
                    "boolean" => v.is_boolean(),
                    "integer" => v.is_i64() || v.is_u64(),
                    "number" => v.is_number(),
                    "string" => v.is_string(),
                    _ => true,
                };
                if !ok {
                    let got = match v {
                        Value::String(_) => "string",
                        Value::Bool(_) => "boolean",
                        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
                        Value::Number(_) => "number",
                        Value::Null => "null",
                        Value::Array(_) => "array",
                        Value::Object(_) => "object",
                    };
                    return Err(CharmError::Invalid(format!(
                        "validation failed: (root).{k} : invalid type. Expected: {ty}, given: {got}, given {given_json}"
                    )));
                }
            }
        }
        let mut out = given;
        for (k, p) in &props {
            if !out.contains_key(k) {
                if let Some(d) = p.get("default") {
                    out.insert(k.clone(), d.clone());
                }
            }
        }
        if let Some(req) = spec["required"].as_array() {
            for r in req.iter().filter_map(Value::as_str) {
                if !out.contains_key(r) {
                    return Err(CharmError::Invalid(format!(
                        "validation failed: (root) : \"{r}\" property is missing and required, given {given_json}"
                    )));
                }
            }
        }
        Ok(Value::Object(out))
    }
}

/// Juju's action and key name rule, `^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$`.
pub fn valid_name(s: &str) -> bool {
    let b = s.as_bytes();
    let alnum = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    b.first().is_some_and(alnum)
        && b.last().is_some_and(alnum)
        && b.iter().all(|c| alnum(c) || *c == b'-')
}

/// Parses one CLI parameter value as Juju does (go-yaml v2, YAML 1.1): an
/// empty value stays the empty string, YAML 1.1 booleans are booleans.
pub fn parse_cli_value(raw: &str) -> Result<Value, String> {
    match raw {
        "" => return Ok(Value::String(String::new())),
        "y" | "Y" | "yes" | "Yes" | "YES" | "on" | "On" | "ON" | "true" | "True" | "TRUE" => {
            return Ok(Value::Bool(true))
        }
        "n" | "N" | "no" | "No" | "NO" | "off" | "Off" | "OFF" | "false" | "False" | "FALSE" => {
            return Ok(Value::Bool(false))
        }
        _ => {}
    }
    let v: Value = serde_yaml::from_str(raw).map_err(|e| e.to_string())?;
    Ok(v)
}

/// Inserts `a.b.c=value` into nested maps; a later scalar replaces a map.
pub fn insert_dotted(map: &mut Map<String, Value>, key: &str, value: Value) {
    let mut parts: Vec<&str> = key.split('.').collect();
    let last = parts.pop().unwrap_or(key);
    let mut cur = map;
    for p in parts {
        let entry = cur
            .entry(p.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        if !entry.is_object() {
            *entry = Value::Object(Map::new());
        }
        cur = match entry.as_object_mut() {
            Some(m) => m,
            None => return,
        };
    }
    cur.insert(last.to_string(), value);
}

/// Unpacks a `.charm` zip or copies a charm directory into `dest`, and makes
/// `dispatch`, `hooks/*` and `actions/*` executable (0755).
pub fn unpack(src: &Path, dest: &Path) -> Result<(), CharmError> {
    let ioe = |path: &Path| {
        let path = path.to_path_buf();
        move |source| CharmError::Io { path, source }
    };
    if dest.exists() {
        fs::remove_dir_all(dest).map_err(ioe(dest))?;
    }
    fs::create_dir_all(dest).map_err(ioe(dest))?;
    if src.is_dir() {
        crate::util::copy_tree(src, dest).map_err(ioe(src))?;
    } else {
        let f = fs::File::open(src).map_err(ioe(src))?;
        let mut zip = zip::ZipArchive::new(f).map_err(|e| {
            CharmError::Invalid(format!("cannot open charm {}: {e}", src.display()))
        })?;
        for i in 0..zip.len() {
            let mut entry = zip.by_index(i).map_err(|e| {
                CharmError::Invalid(format!("cannot read charm {}: {e}", src.display()))
            })?;
            let Some(rel) = entry.enclosed_name() else {
                continue;
            };
            let out = dest.join(rel);
            if entry.is_dir() {
                fs::create_dir_all(&out).map_err(ioe(&out))?;
                continue;
            }
            if let Some(parent) = out.parent() {
                fs::create_dir_all(parent).map_err(ioe(parent))?;
            }
            let mut w = fs::File::create(&out).map_err(ioe(&out))?;
            io::copy(&mut entry, &mut w).map_err(ioe(&out))?;
            if let Some(mode) = entry.unix_mode() {
                use std::os::unix::fs::PermissionsExt;
                fs::set_permissions(&out, fs::Permissions::from_mode(mode & 0o7777))
                    .map_err(ioe(&out))?;
            }
        }
    }
    // Zips made by other tools may drop the mode bits: `dispatch` and the
    // legacy `hooks/*` and `actions/*` files must still run.
    let mut runnable = vec![dest.join("dispatch")];
    for sub in ["hooks", "actions"] {
        if let Ok(rd) = fs::read_dir(dest.join(sub)) {
            runnable.extend(rd.flatten().map(|e| e.path()).filter(|p| p.is_file()));
        }
    }
    for file in runnable.iter().filter(|p| p.is_file()) {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(file, fs::Permissions::from_mode(0o755)).map_err(ioe(file))?;
    }
    if !dest.join("metadata.yaml").exists() {
        return Err(CharmError::Invalid(format!(
            "{} is not a charm: no metadata.yaml",
            src.display()
        )));
    }
    Ok(())
}
