//! Toxiproxy (github.com/Shopify/toxiproxy v2, built by tests/peers/toxiproxy/install.sh) between
//! the library and a real peer: one server per test process, one proxy per test, toxics added and
//! removed through its HTTP API while an export runs. The server exits with the test process: a
//! shell holds it and kills it when our end of its stdin closes.
#![allow(dead_code)]

use std::io::{BufRead as _, Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

pub struct Toxiproxy {
    api: SocketAddr,
    _child: Mutex<(Child, ChildStdin)>,
}

fn server_binary() -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/toxiproxy/install.sh");
    let out = Command::new(&script)
        .stderr(Stdio::inherit())
        .output()
        .expect("run tests/peers/toxiproxy/install.sh");
    assert!(
        out.status.success(),
        "tests/peers/toxiproxy/install.sh failed (it needs Go and the module proxy)"
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

pub fn toxiproxy() -> &'static Toxiproxy {
    static T: OnceLock<Toxiproxy> = OnceLock::new();
    T.get_or_init(|| {
        let bin = server_binary();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(r#""$0" -host 127.0.0.1 -port "$1" </dev/null >/dev/null 2>&1 & pid=$!; cat >/dev/null; kill $pid"#)
            .arg(&bin)
            .arg(port.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("start toxiproxy");
        let stdin = child.stdin.take().unwrap();
        let api: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while request(api, "GET", "/version", None).is_err() {
            assert!(Instant::now() < deadline, "toxiproxy did not start on {api}");
            std::thread::sleep(Duration::from_millis(50));
        }
        Toxiproxy {
            api,
            _child: Mutex::new((child, stdin)),
        }
    })
}

impl Toxiproxy {
    /// A new proxy on a free local port in front of `upstream` ("host:port").
    pub fn proxy(&self, upstream: &str) -> Proxy {
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "p{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let (status, v) = request(
            self.api,
            "POST",
            "/proxies",
            Some(&json!({"name": name, "listen": "127.0.0.1:0", "upstream": upstream, "enabled": true})),
        )
        .expect("toxiproxy API");
        assert_eq!(status, 201, "creating a proxy: {v}");
        Proxy {
            api: self.api,
            name,
            listen: v["listen"].as_str().unwrap().to_string(),
        }
    }
}

/// One proxy; removed (with its connections) when dropped.
pub struct Proxy {
    api: SocketAddr,
    pub name: String,
    /// "127.0.0.1:PORT" to point the library at.
    pub listen: String,
}

impl Proxy {
    /// Adds a toxic (`kind`: latency, bandwidth, slow_close, timeout, reset_peer, slicer,
    /// limit_data) on `stream` ("downstream": peer → library, "upstream": library → peer).
    pub fn add(&self, name: &str, kind: &str, stream: &str, attributes: Value) {
        let (status, v) = request(
            self.api,
            "POST",
            &format!("/proxies/{}/toxics", self.name),
            Some(&json!({"name": name, "type": kind, "stream": stream, "toxicity": 1.0, "attributes": attributes})),
        )
        .expect("toxiproxy API");
        assert!(status == 200 || status == 201, "adding toxic {kind}: {v}");
    }

    /// Removes a toxic: connections from now on (and the open ones) go through unharmed.
    pub fn remove(&self, name: &str) {
        let (status, v) = request(
            self.api,
            "DELETE",
            &format!("/proxies/{}/toxics/{name}", self.name),
            None,
        )
        .expect("toxiproxy API");
        assert!(status == 204 || status == 200, "removing toxic {name}: {v}");
    }

    /// Removes a toxic after `after`, from a thread (the test meanwhile drives the export).
    pub fn remove_later(&self, name: &str, after: Duration) -> std::thread::JoinHandle<()> {
        let (api, path) = (self.api, format!("/proxies/{}/toxics/{name}", self.name));
        std::thread::spawn(move || {
            std::thread::sleep(after);
            let (status, v) = request(api, "DELETE", &path, None).expect("toxiproxy API");
            assert!(status == 204 || status == 200, "removing {path}: {v}");
        })
    }

    /// Disabled, the proxy refuses connections and closes the open ones (the peer "goes away").
    pub fn set_enabled(&self, enabled: bool) {
        let (status, v) = request(
            self.api,
            "POST",
            &format!("/proxies/{}", self.name),
            Some(&json!({"enabled": enabled})),
        )
        .expect("toxiproxy API");
        assert_eq!(status, 200, "enabling: {v}");
    }

    /// Points the proxy at another upstream (for a peer that must know the proxy's port
    /// before it starts).
    pub fn set_upstream(&self, upstream: &str) {
        let (status, v) = request(
            self.api,
            "POST",
            &format!("/proxies/{}", self.name),
            Some(&json!({"upstream": upstream})),
        )
        .expect("toxiproxy API");
        assert_eq!(status, 200, "setting the upstream: {v}");
    }

    pub fn port(&self) -> u16 {
        self.listen.rsplit(':').next().unwrap().parse().unwrap()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}/{}", self.listen, path.trim_start_matches('/'))
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = request(self.api, "DELETE", &format!("/proxies/{}", self.name), None);
    }
}

/// One HTTP/1.1 request to the API (a few per test: std's TcpStream is enough).
fn request(
    api: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> std::io::Result<(u16, Value)> {
    let mut s = TcpStream::connect_timeout(&api, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {api}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut r = std::io::BufReader::new(s);
    let mut status_line = String::new();
    r.read_line(&mut status_line)?;
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line {status_line:?}")))?;
    let mut rest = String::new();
    r.read_to_string(&mut rest)?;
    let body = rest.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    Ok((status, serde_json::from_str(body).unwrap_or(Value::Null)))
}
