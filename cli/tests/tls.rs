//! The built `wharf` binary against a wharf-server whose native listener speaks TLS: the TLS
//! flags, their environment variables, contexts that remember them, and the exit codes of the
//! ways TLS fails. Certificates are made here with rcgen, in a temporary directory.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair,
};
use wharf_gateway::config::{Overrides, ServerConfig, TlsSettings};

struct Env {
    server: String,
    ca_file: PathBuf,
    certs: tempfile::TempDir,
    config_dir: tempfile::TempDir,
    _data: tempfile::TempDir,
    _running: wharf_gateway::Running,
    _rt: tokio::runtime::Runtime,
}

/// A CA and a `localhost` server certificate it signed, as PEM files in `dir`.
fn certificates(dir: &std::path::Path) -> TlsSettings {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(DnType::CommonName, "cli test CA");
    let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
    std::fs::write(dir.join("ca.pem"), ca.as_ref().pem()).unwrap();
    let mut params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &ca).unwrap();
    std::fs::write(dir.join("server.pem"), cert.pem()).unwrap();
    std::fs::write(dir.join("server.key"), key.serialize_pem()).unwrap();
    TlsSettings {
        cert_file: dir.join("server.pem"),
        key_file: dir.join("server.key"),
        client_ca_file: None,
    }
}

fn start() -> Env {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let data = tempfile::tempdir().unwrap();
    let certs = tempfile::tempdir().unwrap();
    let overrides = Overrides {
        data_dir: Some(data.path().to_path_buf()),
        native_addr: Some("127.0.0.1:0".into()),
        kafka_addr: Some("127.0.0.1:0".into()),
        ..Overrides::default()
    };
    let mut config = ServerConfig::load_from(&overrides, &[]).unwrap();
    config.native.tls = Some(certificates(certs.path()));
    let running = rt.block_on(wharf_gateway::start(config)).unwrap();
    Env {
        server: running.native_addr.to_string(),
        ca_file: certs.path().join("ca.pem"),
        certs,
        config_dir: tempfile::tempdir().unwrap(),
        _data: data,
        _running: running,
        _rt: rt,
    }
}

impl Env {
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_wharf"));
        c.args(args)
            .env("WHARF_SERVER", &self.server)
            .env("WHARF_CONFIG_DIR", self.config_dir.path())
            .stdin(Stdio::null());
        for var in [
            "WHARF_USERNAME",
            "WHARF_PASSWORD",
            "WHARF_TOKEN",
            "WHARF_TLS",
            "WHARF_TLS_CA_FILE",
            "WHARF_TLS_DOMAIN",
            "WHARF_TLS_CERT_FILE",
            "WHARF_TLS_KEY_FILE",
        ] {
            c.env_remove(var);
        }
        c
    }

    fn ca(&self) -> &str {
        self.ca_file.to_str().unwrap()
    }

    fn ok(&self, cmd: &mut Command) -> String {
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{cmd:?} failed ({:?}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// A command that must fail: (exit code, its one line of stderr).
    fn fails(&self, cmd: &mut Command) -> (i32, String) {
        let out: Output = cmd.output().unwrap();
        assert!(!out.status.success(), "{cmd:?} should have failed");
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(err.lines().count(), 1, "errors are one line: {err}");
        (out.status.code().unwrap(), err.trim_end().to_string())
    }
}

#[test]
fn tls_flags_environment_and_contexts() {
    let env = start();
    // Flags.
    env.ok(&mut env.cmd(&["--tls-ca-file", env.ca(), "stream", "create", "shop"]));
    let out = env.ok(&mut env.cmd(&[
        "--tls",
        "--tls-ca-file",
        env.ca(),
        "--tls-domain",
        "localhost",
        "stream",
        "list",
    ]));
    assert!(out.contains("shop"), "{out}");
    // The environment, as for the other connection settings.
    let out = env.ok(env
        .cmd(&["stream", "list"])
        .env("WHARF_TLS", "1")
        .env("WHARF_TLS_CA_FILE", env.ca()));
    assert!(out.contains("shop"), "{out}");
    // `--tls` takes no value: what follows is the command.
    let (code, err) = env.fails(
        env.cmd(&["--tls", "ping"])
            .env("WHARF_TLS_DOMAIN", "wharf.example.com")
            .env("WHARF_TLS_CA_FILE", env.ca()),
    );
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains("wharf.example.com"),
        "the environment's domain was used: {err}"
    );
    // WHARF_TLS=false with nothing else is plain TCP.
    let (code, err) = env.fails(env.cmd(&["ping"]).env("WHARF_TLS", "false"));
    assert!(
        code == 3 && err.starts_with("error: cannot reach the server"),
        "{err}"
    );

    // Plain TCP to a TLS listener gets nowhere.
    let (code, err) = env.fails(&mut env.cmd(&["ping"]));
    assert_eq!(code, 3, "{err}");
    // A name the certificate does not carry.
    let (code, err) = env.fails(&mut env.cmd(&[
        "--tls-ca-file",
        env.ca(),
        "--tls-domain",
        "wharf.example.com",
        "ping",
    ]));
    assert_eq!(code, 3, "{err}");
    assert!(
        err.starts_with("error: cannot connect securely to ")
            && err.contains("not valid for \"wharf.example.com\""),
        "{err}"
    );
    // A CA file that is not there is a usage error naming the file.
    let missing = env.certs.path().join("missing.pem");
    let (code, err) =
        env.fails(&mut env.cmd(&["--tls-ca-file", missing.to_str().unwrap(), "ping"]));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.starts_with("error: TLS: CA file ") && err.contains("missing.pem"),
        "{err}"
    );
    // A certificate without its key is refused by the flags themselves.
    let out = env
        .cmd(&["--tls-cert-file", env.ca(), "ping"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--tls-key-file"));

    // A context remembers TLS; `--no-tls` overrides it.
    env.ok(&mut env.cmd(&["--tls-ca-file", env.ca(), "context", "create", "secure"]));
    env.ok(&mut env.cmd(&["ping"]));
    let (code, _) = env.fails(&mut env.cmd(&["--no-tls", "ping"]));
    assert_eq!(code, 3);
}
