//! The relay between tests/c/win/pwsh_relay.c (the `powershell.exe` a Windows build runs under
//! Wine) and the Hyper-V stand-in (tests/peers/hyperv/pwsh_standin.py, through the `pwsh`
//! wrapper of [`super::hyperv::HyperV`]): a Windows program under Wine cannot wait for a Linux
//! process, so the Windows program sends its argv (as Windows split it), its whole command line
//! and its stdin here; the relay runs the stand-in with that argv and stdin and streams back its
//! stdout, stderr and exit code. When the Windows side goes (killed with its job object), the
//! stand-in is killed too. Protocol: the comment at the top of pwsh_relay.c.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

/// What one call of the Windows `powershell.exe` received.
#[derive(Debug, Clone)]
pub struct RelayCall {
    /// argv as `CommandLineToArgvW` split the command line, argv[0] included.
    pub argv: Vec<String>,
    /// The whole command line as Windows gave it to the program.
    pub command_line: String,
}

pub struct PwshRelay {
    pub addr: SocketAddr,
    calls: Arc<Mutex<Vec<RelayCall>>>,
}

/// A lingering grandchild for the calls that run `script`: pwsh.exe starts a Windows process
/// whose command line carries `token` and that sleeps until killed.
#[derive(Clone)]
pub struct Linger {
    pub script: String,
    pub token: String,
}

impl PwshRelay {
    /// A relay running `pwsh` (the stand-in's wrapper) for each connection, until the test ends.
    pub fn start(pwsh: &Path, linger: Option<Linger>) -> PwshRelay {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let calls = Arc::new(Mutex::new(Vec::new()));
        let (pwsh, seen) = (pwsh.to_path_buf(), calls.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let (pwsh, seen, linger) = (pwsh.clone(), seen.clone(), linger.clone());
                std::thread::spawn(move || serve(conn, &pwsh, &seen, linger.as_ref()));
            }
        });
        PwshRelay { addr, calls }
    }

    pub fn calls(&self) -> Vec<RelayCall> {
        self.calls.lock().unwrap().clone()
    }
}

fn blob(r: &mut impl Read) -> std::io::Result<Vec<u8>> {
    let mut n = [0u8; 4];
    r.read_exact(&mut n)?;
    let mut b = vec![0u8; u32::from_le_bytes(n) as usize];
    r.read_exact(&mut b)?;
    Ok(b)
}

fn frame(w: &Mutex<TcpStream>, kind: u8, data: &[u8]) -> std::io::Result<()> {
    let mut w = w.lock().unwrap();
    w.write_all(&[kind])?;
    w.write_all(&(data.len() as u32).to_le_bytes())?;
    w.write_all(data)
}

/// The script of `-EncodedCommand` (UTF-16LE, base64).
fn decoded_script(argv: &[String]) -> Option<String> {
    use base64::Engine as _;
    let i = argv.iter().position(|a| a == "-EncodedCommand")?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(argv.get(i + 1)?)
        .ok()?;
    let units: Vec<u16> = bytes
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    String::from_utf16(&units).ok()
}

fn serve(
    mut conn: TcpStream,
    pwsh: &PathBuf,
    seen: &Mutex<Vec<RelayCall>>,
    linger: Option<&Linger>,
) {
    let request = (|| -> std::io::Result<(Vec<String>, String, Vec<u8>)> {
        let mut n = [0u8; 4];
        conn.read_exact(&mut n)?;
        let mut argv = Vec::new();
        for _ in 0..u32::from_le_bytes(n) {
            argv.push(String::from_utf8(blob(&mut conn)?).unwrap());
        }
        let line = String::from_utf8(blob(&mut conn)?).unwrap();
        Ok((argv, line, blob(&mut conn)?))
    })();
    let Ok((argv, command_line, stdin)) = request else {
        return;
    };
    seen.lock().unwrap().push(RelayCall {
        argv: argv.clone(),
        command_line,
    });
    if let Some(l) = linger
        && decoded_script(&argv).as_deref() == Some(l.script.as_str())
    {
        let w = Mutex::new(conn.try_clone().unwrap());
        let _ = frame(&w, 4, l.token.as_bytes());
    }
    let mut child = Command::new(pwsh)
        .args(&argv[1..])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut child_in = child.stdin.take().unwrap();
    std::thread::spawn(move || {
        let _ = child_in.write_all(&stdin);
    });
    let writer = Arc::new(Mutex::new(conn.try_clone().unwrap()));
    let pumps: Vec<_> = [
        (
            1u8,
            Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>,
        ),
        (2u8, Box::new(child.stderr.take().unwrap())),
    ]
    .into_iter()
    .map(|(kind, mut from)| {
        let w = writer.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            while let Ok(n) = from.read(&mut buf) {
                if n == 0 || frame(&w, kind, &buf[..n]).is_err() {
                    break;
                }
            }
        })
    })
    .collect();
    // The Windows side closing the connection (killed with its job) kills the stand-in.
    let closed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut probe = conn;
    let flag = closed.clone();
    std::thread::spawn(move || {
        let mut b = [0u8; 1];
        let _ = probe.read(&mut b);
        flag.store(true, std::sync::atomic::Ordering::SeqCst);
    });
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if closed.load(std::sync::atomic::Ordering::SeqCst) {
            let _ = child.kill();
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    for p in pumps {
        let _ = p.join();
    }
    let code = status.code().unwrap_or(137);
    let _ = frame(&writer, 3, &code.to_le_bytes());
}
