//! Hyper-V's client config, export options and source ids.

use std::path::PathBuf;

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::secret::Secret;

/// Where the scripts run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transport {
    /// This machine's PowerShell, this machine's Hyper-V.
    Local,
    /// `Invoke-Command -ComputerName host -Credential …` (WinRM).
    Winrm,
    /// PowerShell remoting over SSH (`Invoke-Command -HostName host`), key-based.
    Ssh,
}

impl Transport {
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Local => "local",
            Transport::Winrm => "winrm",
            Transport::Ssh => "ssh",
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct HyperVConfig {
    /// The Hyper-V host; empty: this machine.
    #[serde(default)]
    pub host: String,
    /// `local`, `winrm` or `ssh`; default: local without a host, winrm with one.
    #[serde(default)]
    pub transport: Option<String>,
    /// The PowerShell to run; default: `pwsh`, `powershell.exe` or `powershell` from PATH.
    #[serde(default)]
    pub powershell_path: Option<PathBuf>,
    #[serde(default)]
    pub username: Option<String>,
    /// WinRM only; reaches PowerShell on stdin, never argv or the environment.
    #[serde(default)]
    pub password: Option<Secret>,
    #[serde(default)]
    pub port: Option<u16>,
    /// WinRM over HTTPS.
    #[serde(default)]
    pub use_ssl: bool,
    /// WinRM's authentication: `default` (Negotiate), `kerberos` or `credssp`. The scripts need
    /// no second hop (the files are checked here, Hyper-V writes the share as the host's
    /// computer account); `credssp` is for hosts whose policy asks for it.
    #[serde(default)]
    pub authentication: Option<String>,
    /// Each control script (inventory, verify, cleanup), seconds.
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
}

fn default_timeout() -> u64 {
    120
}

impl HyperVConfig {
    pub fn check(&self) -> Result<Transport> {
        let bad = |m: String| Err(Error::InvalidArgument(format!("hyperv config: {m}")));
        let transport = match self.transport.as_deref() {
            None if self.host.is_empty() => Transport::Local,
            None => Transport::Winrm,
            Some("local") => Transport::Local,
            Some("winrm") => Transport::Winrm,
            Some("ssh") => Transport::Ssh,
            Some(t) => return bad(format!("transport {t:?} is not one of local, winrm, ssh")),
        };
        if self
            .host
            .chars()
            .any(|c| c.is_control() || c.is_whitespace())
        {
            return bad("host must be a host name or address".into());
        }
        match transport {
            Transport::Local if !self.host.is_empty() => {
                return bad("transport local runs on this machine: leave host empty".into());
            }
            Transport::Winrm | Transport::Ssh if self.host.is_empty() => {
                return bad(format!("transport {} needs a host", transport.as_str()));
            }
            _ => {}
        }
        if transport == Transport::Ssh && self.password.is_some() {
            return bad(
                "ssh remoting authenticates with keys (PowerShell cannot take an SSH password \
                 without a prompt): drop password"
                    .into(),
            );
        }
        if transport == Transport::Winrm && self.username.is_some() != self.password.is_some() {
            return bad(
                "winrm needs both username and password, or neither (the current user's \
                 Kerberos login)"
                    .into(),
            );
        }
        if transport == Transport::Local && (self.username.is_some() || self.password.is_some()) {
            return bad(
                "username and password are for remote transports; local runs as this user".into(),
            );
        }
        if let Some(a) = &self.authentication {
            if transport != Transport::Winrm {
                return bad("authentication is for transport winrm".into());
            }
            if authentication_name(a).is_none() {
                return bad(format!(
                    "authentication {a:?} is not one of default, kerberos, credssp"
                ));
            }
        }
        if !(1..=86_400).contains(&self.timeout_secs) {
            return bad("timeout_secs must be between 1 and 86400".into());
        }
        Ok(transport)
    }
}

/// `Invoke-Command -Authentication`'s name (AuthenticationMechanism) for a config value.
pub(crate) fn authentication_name(a: &str) -> Option<&'static str> {
    match a.to_ascii_lowercase().as_str() {
        "default" => Some("Default"),
        "kerberos" => Some("Kerberos"),
        "credssp" => Some("Credssp"),
        _ => None,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum ExportType {
    /// Export-VM: configuration, (checkpoints,) disks, in Hyper-V's layout.
    Full,
    /// The disks of the current state only.
    VhdOnly,
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct HyperVOptions {
    pub export_type: ExportType,
    /// With `full`: Export-VM with the VM's checkpoint tree. Default false: the VM as it is now.
    pub include_snapshots: bool,
    /// For remote transports: the output folder as the Hyper-V host sees it (a share both
    /// machines reach, e.g. `\\nas\exports` on the host mounted at output_dir here).
    pub host_output_dir: Option<String>,
    /// With `full`: the folder's name in output_dir. Default: the VM's name.
    pub folder_name: Option<String>,
    /// `Test-VHD` on every exported disk. Default true.
    pub verify: bool,
    /// The whole export, seconds. Default one day.
    pub timeout_secs: u64,
    /// What a running VM's state becomes when the VM itself is exported (export_type full
    /// with include_snapshots; the other exports read a checkpoint): Export-VM's
    /// `-CaptureLiveState` values `CaptureSavedState` (default: memory included),
    /// `CaptureCrashConsistentState` (nothing done about the state) or
    /// `CaptureDataConsistentState` (production checkpoint technology).
    pub capture_live_state: Option<String>,
}

impl Default for HyperVOptions {
    fn default() -> Self {
        HyperVOptions {
            export_type: ExportType::Full,
            include_snapshots: false,
            host_output_dir: None,
            folder_name: None,
            verify: true,
            timeout_secs: 86_400,
            capture_live_state: None,
        }
    }
}

impl HyperVOptions {
    pub fn check(&self, transport: Transport) -> Result<()> {
        let bad = |m: &str| Err(Error::InvalidArgument(format!("hyperv options: {m}")));
        if self.include_snapshots && self.export_type != ExportType::Full {
            return bad("include_snapshots goes with export_type full");
        }
        if self.folder_name.is_some() && self.export_type != ExportType::Full {
            return bad("folder_name goes with export_type full");
        }
        if let Some(c) = &self.capture_live_state {
            if !(self.export_type == ExportType::Full && self.include_snapshots) {
                return bad(
                    "capture_live_state applies when the running VM itself is exported \
                     (export_type full with include_snapshots); the other exports read a \
                     checkpoint, whose consistency is the VM's checkpoint type",
                );
            }
            if super::wmi::capture_live_state(c).is_none() {
                return bad(&format!(
                    "capture_live_state {c:?} is none of CaptureSavedState, \
                     CaptureCrashConsistentState, CaptureDataConsistentState"
                ));
            }
        }
        if let Some(f) = &self.folder_name {
            crate::paths::validate_file_name(f)?;
        }
        match (transport, &self.host_output_dir) {
            (Transport::Local, Some(_)) => {
                return bad(
                    "host_output_dir is for remote transports; local exports write into output_dir",
                );
            }
            (Transport::Winrm | Transport::Ssh, None) => {
                return bad(
                    "a remote export needs host_output_dir: the output folder as the Hyper-V host \
                     sees it (a share that is also output_dir here)",
                );
            }
            (_, Some(d)) if d.is_empty() || d.chars().any(char::is_control) => {
                return bad("host_output_dir must be a path");
            }
            _ => {}
        }
        if !(1..=7 * 86_400).contains(&self.timeout_secs) {
            return bad("timeout_secs must be between 1 and 604800");
        }
        Ok(())
    }
}

/// A VM by id (a GUID) or by its exact name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum VmRef {
    Id(String),
    Name(String),
}

pub(crate) fn parse_source(src: &str) -> Result<VmRef> {
    let s = src.strip_prefix("vm:").unwrap_or(src);
    if s.is_empty() || s.len() > 1024 || s.contains('\0') {
        return Err(Error::InvalidArgument(format!(
            "hyperv source {src:?} is not a VM name or id"
        )));
    }
    if is_guid(s) {
        return Ok(VmRef::Id(s.to_ascii_lowercase()));
    }
    Ok(VmRef::Name(s.to_string()))
}

fn is_guid(s: &str) -> bool {
    let s = s.trim_start_matches('{').trim_end_matches('}');
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.chars().all(|c| c.is_ascii_hexdigit()))
}

/// A name Windows accepts for a folder (Export-VM makes one named after the VM).
pub(crate) fn is_windows_folder_name(s: &str) -> bool {
    !s.is_empty()
        && s != "."
        && s != ".."
        && !s.ends_with(['.', ' '])
        && !s.chars().any(|c| {
            c.is_control() || matches!(c, '<' | '>' | ':' | '"' | '/' | '\\' | '|' | '?' | '*')
        })
}

/// The file name part of a host path (`C:\VMs\disk.vhdx`, `/srv/disk.vhdx`).
pub(crate) fn leaf(path: &str) -> &str {
    path.rsplit(['\\', '/']).next().unwrap_or(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(v: serde_json::Value) -> Result<Transport> {
        serde_json::from_value::<HyperVConfig>(v).unwrap().check()
    }

    #[test]
    fn config_and_transports() {
        assert_eq!(cfg(serde_json::json!({})).unwrap(), Transport::Local);
        assert_eq!(
            cfg(serde_json::json!({"host": "hv1", "username": "u", "password": "p"})).unwrap(),
            Transport::Winrm
        );
        assert_eq!(
            cfg(serde_json::json!({"host": "hv1", "transport": "ssh", "username": "u"})).unwrap(),
            Transport::Ssh
        );
        assert_eq!(
            cfg(serde_json::json!({"host": "hv1", "authentication": "CredSSP"})).unwrap(),
            Transport::Winrm
        );
        for bad in [
            serde_json::json!({"transport": "winrm"}),
            serde_json::json!({"transport": "telnet", "host": "h"}),
            serde_json::json!({"host": "h", "transport": "ssh", "password": "p"}),
            serde_json::json!({"host": "h", "username": "u"}),
            serde_json::json!({"host": "h; rm -rf /"}),
            serde_json::json!({"username": "u", "password": "p"}),
            serde_json::json!({"timeout_secs": 0}),
            serde_json::json!({"host": "h", "authentication": "basic"}),
            serde_json::json!({"host": "h", "transport": "ssh", "authentication": "credssp"}),
            serde_json::json!({"authentication": "kerberos"}),
        ] {
            let e = cfg(bad.clone()).unwrap_err();
            assert!(matches!(e, Error::InvalidArgument(_)), "{bad}: {e}");
            assert!(!e.to_string().contains("\"p\""), "{e}");
        }
    }

    #[test]
    fn sources_and_names() {
        assert_eq!(
            parse_source("8E0B5F2C-1D3A-4B5C-9D8E-0F1A2B3C4D5E").unwrap(),
            VmRef::Id("8e0b5f2c-1d3a-4b5c-9d8e-0f1a2b3c4d5e".into())
        );
        assert_eq!(
            parse_source("vm:a'b\"c; Remove-Item").unwrap(),
            VmRef::Name("a'b\"c; Remove-Item".into())
        );
        assert!(parse_source("").is_err());
        assert!(parse_source("a\0b").is_err());
        assert!(is_windows_folder_name("web-01 ü $(whoami)"));
        for bad in ["a\"b", "x; Remove-Item -Recurse /", "..", "a.", "c:d", ""] {
            assert!(!is_windows_folder_name(bad), "{bad}");
        }
        assert_eq!(leaf(r"C:\VMs\web\disk0.vhdx"), "disk0.vhdx");
        assert_eq!(leaf("/srv/vms/d.vhdx"), "d.vhdx");
    }

    #[test]
    fn options_are_checked() {
        let o = |v: serde_json::Value| serde_json::from_value::<HyperVOptions>(v);
        assert!(o(serde_json::json!({"export_type": "vhd"})).is_err());
        let vhd =
            o(serde_json::json!({"export_type": "vhd-only", "include_snapshots": true})).unwrap();
        assert!(vhd.check(Transport::Local).is_err());
        let remote = o(serde_json::json!({})).unwrap();
        assert!(remote.check(Transport::Winrm).is_err());
        assert!(remote.check(Transport::Local).is_ok());
        let f = o(serde_json::json!({"folder_name": "../x"})).unwrap();
        assert!(f.check(Transport::Local).is_err());
    }
}
