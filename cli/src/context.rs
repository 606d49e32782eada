//! Named connection profiles, kept in `contexts.json` under `$WHARF_CONFIG_DIR`, else
//! `$XDG_CONFIG_HOME/wharf`, else `~/.config/wharf`. The file may hold passwords and tokens, so it
//! is written readable by its owner only.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::{json, Value};

/// One profile.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Context {
    pub server: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub token: Option<String>,
    /// TLS to the server, with the files and name below.
    pub tls: bool,
    pub tls_ca_file: Option<String>,
    pub tls_domain: Option<String>,
    pub tls_cert_file: Option<String>,
    pub tls_key_file: Option<String>,
}

/// All profiles and which is active.
#[derive(Debug, Default)]
pub struct Contexts {
    pub active: Option<String>,
    pub contexts: BTreeMap<String, Context>,
}

fn dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("WHARF_CONFIG_DIR") {
        return Some(PathBuf::from(d));
    }
    if let Some(d) = std::env::var_os("XDG_CONFIG_HOME") {
        return Some(PathBuf::from(d).join("wharf"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config").join("wharf"))
}

fn path() -> Result<PathBuf, String> {
    dir()
        .map(|d| d.join("contexts.json"))
        .ok_or_else(|| "cannot find a config folder: set WHARF_CONFIG_DIR or HOME".into())
}

fn field(v: &Value, k: &str) -> Option<String> {
    v.get(k).and_then(Value::as_str).map(str::to_string)
}

impl Contexts {
    pub fn load() -> Result<Contexts, String> {
        let path = path()?;
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Contexts::default()),
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        };
        let v: Value = serde_json::from_str(&text)
            .map_err(|e| format!("{} is not valid JSON: {e}", path.display()))?;
        let mut out = Contexts {
            active: field(&v, "active"),
            ..Contexts::default()
        };
        if let Some(map) = v.get("contexts").and_then(Value::as_object) {
            for (name, c) in map {
                out.contexts.insert(
                    name.clone(),
                    Context {
                        server: field(c, "server"),
                        username: field(c, "username"),
                        password: field(c, "password"),
                        token: field(c, "token"),
                        tls: c.get("tls").and_then(Value::as_bool).unwrap_or(false),
                        tls_ca_file: field(c, "tls_ca_file"),
                        tls_domain: field(c, "tls_domain"),
                        tls_cert_file: field(c, "tls_cert_file"),
                        tls_key_file: field(c, "tls_key_file"),
                    },
                );
            }
        }
        Ok(out)
    }

    pub fn save(&self) -> Result<(), String> {
        let path = path()?;
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
        }
        let contexts: serde_json::Map<String, Value> = self
            .contexts
            .iter()
            .map(|(n, c)| {
                (
                    n.clone(),
                    json!({
                        "server": c.server, "username": c.username, "password": c.password, "token": c.token,
                        "tls": c.tls, "tls_ca_file": c.tls_ca_file, "tls_domain": c.tls_domain,
                        "tls_cert_file": c.tls_cert_file, "tls_key_file": c.tls_key_file,
                    }),
                )
            })
            .collect();
        let text =
            serde_json::to_string_pretty(&json!({"active": self.active, "contexts": contexts}))
                .map_err(|e| e.to_string())?;
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, text).map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600));
        }
        std::fs::rename(&tmp, &path).map_err(|e| format!("cannot write {}: {e}", path.display()))
    }

    /// The active profile, if any.
    pub fn current(&self) -> Option<&Context> {
        self.active.as_ref().and_then(|a| self.contexts.get(a))
    }
}
