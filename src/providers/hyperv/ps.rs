//! Running the crate's own PowerShell scripts: fixed text (one file per operation, below),
//! passed as `-NoProfile -NonInteractive -EncodedCommand <UTF-16LE base64>`, with every input —
//! VM names, paths, the WinRM password — as one JSON document on stdin. Nothing a user typed is
//! ever part of the code PowerShell parses. Output comes back as JSON lines; an `error` line
//! carries PowerShell's category and `FullyQualifiedErrorId`, mapped to our error kinds.
//!
//! Remote transports (WinRM, SSH) run `remote.ps1` locally, which runs the operation's script
//! on the host with `Invoke-Command`; the script text and its input travel as data in the
//! stdin document, and the password becomes a `PSCredential` inside PowerShell.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::config::{HyperVConfig, Transport};
use crate::error::{Error, Result};
use crate::providers::process::{Line, ProcessSpec, Running};
use crate::secret::Secret;

/// The scripts, reviewed text compiled into the library.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Script {
    Inventory,
    Export,
    Verify,
    Cleanup,
    List,
}

impl Script {
    pub fn text(self) -> &'static str {
        match self {
            Script::Inventory => include_str!("scripts/inventory.ps1"),
            Script::Export => include_str!("scripts/export.ps1"),
            Script::Verify => include_str!("scripts/verify.ps1"),
            Script::Cleanup => include_str!("scripts/cleanup.ps1"),
            Script::List => include_str!("scripts/list.ps1"),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Script::Inventory => "inventory",
            Script::Export => "export",
            Script::Verify => "verify",
            Script::Cleanup => "cleanup",
            Script::List => "list",
        }
    }
}

const REMOTE: &str = include_str!("scripts/remote.ps1");

/// Names looked for in PATH when `powershell_path` is not set, in this order: PowerShell 7
/// (`pwsh`) first, then Windows PowerShell 5.1. On Windows only `.exe` files run.
#[cfg(windows)]
pub(crate) const CANDIDATES: &[&str] = &["pwsh.exe", "powershell.exe"];
#[cfg(not(windows))]
pub(crate) const CANDIDATES: &[&str] = &["pwsh", "powershell.exe", "powershell"];

/// The PowerShell this client runs, and where it runs the scripts.
pub(crate) struct PowerShell {
    program: PathBuf,
    transport: Transport,
    host: String,
    port: Option<u16>,
    use_ssl: bool,
    authentication: Option<&'static str>,
    username: Option<String>,
    password: Option<Secret>,
}

impl std::fmt::Debug for PowerShell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PowerShell")
            .field("program", &self.program)
            .field("transport", &self.transport)
            .field("host", &self.host)
            .finish_non_exhaustive()
    }
}

impl PowerShell {
    pub fn new(cfg: &HyperVConfig, transport: Transport) -> Result<PowerShell> {
        let path = std::env::var_os("PATH").unwrap_or_default();
        let program = find_powershell(cfg.powershell_path.as_deref(), &path)?;
        Ok(PowerShell {
            program,
            transport,
            host: cfg.host.clone(),
            port: cfg.port,
            use_ssl: cfg.use_ssl,
            authentication: cfg
                .authentication
                .as_deref()
                .and_then(super::config::authentication_name),
            username: cfg.username.clone(),
            password: cfg.password.clone(),
        })
    }

    pub fn transport(&self) -> Transport {
        self.transport
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    /// The process that runs `script` with `input`, locally or through `remote.ps1`.
    fn spec(&self, script: Script, input: &Value, timeout: Duration) -> ProcessSpec {
        let input = ascii_json(input);
        let (code, stdin, secrets) = match self.transport {
            Transport::Local => (script.text(), input, Vec::new()),
            Transport::Winrm | Transport::Ssh => {
                let password = self.password.as_ref().map(|p| p.expose().to_string());
                let doc = json!({
                    "transport": self.transport.as_str(),
                    "host": self.host,
                    "port": self.port,
                    "use_ssl": self.use_ssl,
                    "authentication": self.authentication,
                    "username": self.username,
                    "password": password,
                    "script": script.text(),
                    "input": input,
                });
                (REMOTE, ascii_json(&doc), password.into_iter().collect())
            }
        };
        ProcessSpec {
            program: self.program.clone(),
            args: vec![
                "-NoProfile".into(),
                "-NonInteractive".into(),
                "-EncodedCommand".into(),
                OsString::from(encode_command(code)),
            ],
            stdin: stdin.into_bytes(),
            secrets,
            timeout,
            ..Default::default()
        }
    }

    /// Starts `script`; its output is read line by line with [`Running::next_line`].
    pub fn start(&self, script: Script, input: &Value, timeout: Duration) -> Result<Running> {
        Running::spawn(self.spec(script, input, timeout)).map_err(|e| match e {
            Error::NotFound(m) => Error::Unsupported(m),
            e => e,
        })
    }

    /// Runs `script` to its end; its JSON lines, or the error it reported. A failing script
    /// writes an `error` line and then exits non-zero: the line, not the exit status, says
    /// what went wrong.
    pub async fn run(
        &self,
        script: Script,
        input: &Value,
        timeout: Duration,
        cancel: &CancellationToken,
    ) -> Result<Vec<Value>> {
        let mut running = self.start(script, input, timeout)?;
        let mut out = Vec::new();
        while let Some(line) = running.next_line(cancel).await? {
            if let Line::Json(v) = line {
                if v["event"] == "error" {
                    return Err(script_error(script, &v));
                }
                out.push(v);
            }
        }
        running.finish(cancel).await.map_err(|e| match e {
            Error::Remote(m) => Error::Remote(format!("PowerShell ({}): {m}", script.name())),
            e => e,
        })?;
        Ok(out)
    }
}

/// PowerShell's error record, as our error kind: category and `FullyQualifiedErrorId` decide.
pub(crate) fn script_error(script: Script, v: &Value) -> Error {
    let category = v["category"].as_str().unwrap_or("");
    let id = v["id"].as_str().unwrap_or("");
    let message = v["message"].as_str().unwrap_or("").trim();
    let text = format!("Hyper-V ({}): {message} [{category}: {id}]", script.name());
    let lower = id.to_ascii_lowercase();
    if id == "PowerShellTooOldForSsh" {
        // remote.ps1: this machine's PowerShell cannot do SSH remoting (needs 6+).
        return Error::Unsupported(text);
    }
    match category {
        "ObjectNotFound" => Error::NotFound(text),
        "PermissionDenied" | "SecurityError" | "AuthenticationError" => Error::Auth(text),
        "InvalidArgument" | "InvalidData" | "InvalidType" | "SyntaxError" => {
            Error::InvalidArgument(text)
        }
        "ResourceExists" => Error::AlreadyExists(text),
        "OperationTimeout" => Error::Timeout(text),
        "ConnectionError" | "OpenError" | "ResourceUnavailable"
            if lower.contains("psremotingtransport") || lower.contains("connect") =>
        {
            Error::Network(text)
        }
        _ if lower.contains("accessdenied") || lower.contains("unauthorizedaccess") => {
            Error::Auth(text)
        }
        _ if lower.contains("notfound") => Error::NotFound(text),
        _ if lower.contains("psremotingtransport") => Error::Network(text),
        _ => Error::Remote(text),
    }
}

/// `v` as JSON text with every non-ASCII character `\u`-escaped (UTF-16 units, surrogate pairs
/// for the rest): Windows PowerShell 5.1 decodes stdin in the console's OEM code page unless a
/// script sets `[Console]::InputEncoding` first, and pure ASCII reads the same in every code
/// page. `ConvertFrom-Json` turns the escapes back into the characters.
pub(crate) fn ascii_json(v: &Value) -> String {
    let text = v.to_string();
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            // Outside strings JSON has only ASCII: every such character is inside one.
            let mut units = [0u16; 2];
            for u in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{u:04x}"));
            }
        }
    }
    out
}

/// `-EncodedCommand`'s form: the script as UTF-16LE, base64.
pub(crate) fn encode_command(script: &str) -> String {
    let bytes: Vec<u8> = script.encode_utf16().flat_map(u16::to_le_bytes).collect();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The PowerShell to run: `explicit` when given (it must exist), else the first of
/// [`CANDIDATES`] found in `path` (a PATH value), else (Windows) Windows PowerShell where
/// Windows installs it. Missing: UNSUPPORTED, naming what was looked for and where.
pub(crate) fn find_powershell(explicit: Option<&Path>, path: &std::ffi::OsStr) -> Result<PathBuf> {
    find_in(explicit, path, CANDIDATES, system_powershell().as_deref())
}

/// Windows PowerShell 5.1 is part of Windows at
/// `%SystemRoot%\System32\WindowsPowerShell\v1.0\powershell.exe`, in PATH or not (a service's
/// or a scheduled task's PATH may lack it). Nothing elsewhere.
fn system_powershell() -> Option<PathBuf> {
    #[cfg(windows)]
    {
        std::env::var_os("SystemRoot").map(|root| {
            [r"System32", "WindowsPowerShell", "v1.0", "powershell.exe"]
                .iter()
                .fold(PathBuf::from(root), |p, c| p.join(c))
        })
    }
    #[cfg(not(windows))]
    {
        None
    }
}

/// [`find_powershell`] with the names and the last resort given (the tests give Windows' on
/// any machine).
fn find_in(
    explicit: Option<&Path>,
    path: &std::ffi::OsStr,
    names: &[&str],
    last_resort: Option<&Path>,
) -> Result<PathBuf> {
    if let Some(p) = explicit {
        if is_executable(p) {
            return Ok(p.to_path_buf());
        }
        return Err(Error::Unsupported(format!(
            "hyperv: powershell_path {} is not an executable file",
            p.display()
        )));
    }
    for dir in std::env::split_paths(path) {
        for name in names {
            let p = dir.join(name);
            if is_executable(&p) {
                return Ok(p);
            }
        }
    }
    if let Some(p) = last_resort.filter(|p| is_executable(p)) {
        return Ok(p.to_path_buf());
    }
    // PATH's own separator.
    let sep = if cfg!(windows) { ";" } else { ":" };
    Err(Error::Unsupported(format!(
        "hyperv: no PowerShell found: looked for {} in PATH ({}){}; install PowerShell (with the \
         Hyper-V module on the host) or set powershell_path",
        names.join(", "),
        std::env::split_paths(path)
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(sep),
        last_resort
            .map(|p| format!(" and at {}", p.display()))
            .unwrap_or_default()
    )))
}

fn is_executable(p: &Path) -> bool {
    match std::fs::metadata(p) {
        #[cfg(unix)]
        Ok(m) => {
            use std::os::unix::fs::PermissionsExt as _;
            m.is_file() && m.permissions().mode() & 0o111 != 0
        }
        #[cfg(not(unix))]
        Ok(m) => m.is_file(),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoded_command_is_utf16le_base64() {
        // What `[Convert]::ToBase64String([Text.Encoding]::Unicode.GetBytes('dir ü'))` gives.
        assert_eq!(encode_command("dir ü"), "ZABpAHIAIAD8AA==");
    }

    #[test]
    fn stdin_json_is_pure_ascii_and_means_the_same() {
        let v = json!({"vm": "Büro 名前 😀", "path": "C:\\VMs\\ä"});
        let a = ascii_json(&v);
        assert!(a.is_ascii(), "{a}");
        assert!(
            a.contains("B\\u00fcro") && a.contains("\\ud83d\\ude00"),
            "{a}"
        );
        assert_eq!(serde_json::from_str::<Value>(&a).unwrap(), v);
    }

    #[test]
    fn powershell_is_looked_up_and_a_missing_one_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let e = find_powershell(None, dir.path().as_os_str()).unwrap_err();
        assert!(matches!(e, Error::Unsupported(_)), "{e}");
        let m = e.to_string();
        assert!(m.contains("pwsh, powershell.exe, powershell"), "{m}");
        assert!(m.contains(&dir.path().display().to_string()), "{m}");

        let not_exec = dir.path().join("pwsh");
        std::fs::write(&not_exec, "#!/bin/sh\n").unwrap();
        assert!(find_powershell(None, dir.path().as_os_str()).is_err());
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&not_exec, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(
            find_powershell(None, dir.path().as_os_str()).unwrap(),
            not_exec
        );
        let e = find_powershell(Some(Path::new("/nonexistent/pwsh")), dir.path().as_os_str())
            .unwrap_err();
        assert!(matches!(e, Error::Unsupported(_)), "{e}");
        assert!(e.to_string().contains("/nonexistent/pwsh"));
    }

    /// Windows' rules, on any machine: `.exe` names only, PowerShell 7 before 5.1 in each PATH
    /// folder, and Windows PowerShell where Windows installs it when PATH has none.
    #[test]
    fn powershell_is_found_as_windows_finds_it() {
        let names = ["pwsh.exe", "powershell.exe"];
        let path_dir = tempfile::tempdir().unwrap();
        let root = tempfile::tempdir().unwrap();
        let system = root.path().join("powershell.exe");
        let exec = |p: &Path| {
            std::fs::write(p, "MZ").unwrap();
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt as _;
                std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
            }
        };
        let path = path_dir.path().as_os_str();
        let e = find_in(None, path, &names, Some(&system)).unwrap_err();
        assert!(
            e.to_string()
                .contains(&format!("and at {}", system.display())),
            "{e}"
        );
        exec(&system);
        assert_eq!(find_in(None, path, &names, Some(&system)).unwrap(), system);
        exec(&path_dir.path().join("powershell.exe"));
        assert_eq!(
            find_in(None, path, &names, Some(&system)).unwrap(),
            path_dir.path().join("powershell.exe"),
            "PATH comes before the system's copy"
        );
        exec(&path_dir.path().join("pwsh.exe"));
        assert_eq!(
            find_in(None, path, &names, Some(&system)).unwrap(),
            path_dir.path().join("pwsh.exe"),
            "PowerShell 7 comes before 5.1"
        );
    }

    #[test]
    fn error_records_map_to_kinds() {
        let rec = |category: &str, id: &str| json!({"event": "error", "category": category, "id": id, "message": "m"});
        let kind =
            |category: &str, id: &str| script_error(Script::Export, &rec(category, id)).kind();
        use crate::error::ErrorKind as K;
        assert_eq!(kind("ObjectNotFound", "VMNotFound"), K::NotFound);
        assert_eq!(
            kind(
                "InvalidArgument",
                "InvalidParameter,Microsoft.HyperV.PowerShell.Commands.GetVM"
            ),
            K::InvalidArgument
        );
        assert_eq!(
            kind(
                "PermissionDenied",
                "AccessDenied,Microsoft.HyperV.PowerShell.Commands.ExportVM"
            ),
            K::Auth
        );
        assert_eq!(
            kind("NotSpecified", "UnauthorizedAccess,Microsoft.PowerShell"),
            K::Auth
        );
        assert_eq!(
            kind("OpenError", "PSRemotingTransportException"),
            K::Network
        );
        assert_eq!(kind("NotSpecified", "Whatever"), K::Remote);
        assert_eq!(
            kind("NotImplemented", "PowerShellTooOldForSsh"),
            K::Unsupported
        );
        let m = script_error(Script::Export, &rec("ObjectNotFound", "VMNotFound")).to_string();
        assert!(m.contains("export") && m.contains("VMNotFound"), "{m}");
    }

    #[test]
    fn every_script_reads_its_input_as_data() {
        for s in [
            Script::Inventory,
            Script::Export,
            Script::Verify,
            Script::Cleanup,
            Script::List,
        ] {
            let t = s.text();
            assert!(t.contains("param([string]$InputJson)"), "{}", s.name());
            assert!(t.contains("ConvertFrom-Json"), "{}", s.name());
            assert!(
                t.contains("$ErrorActionPreference = 'Stop'"),
                "{}",
                s.name()
            );
        }
        assert!(REMOTE.contains("ConvertTo-SecureString"));
    }
}
