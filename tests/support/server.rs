//! Test peer: a real HTTP/1.1 server on 127.0.0.1 with Range, If-Range, ETag and keep-alive,
//! that can also misbehave on demand (cut a body short, ignore Range, answer 503 with
//! Retry-After, stall, omit the length, go slowly, demand a header). Used by the Rust tests, the
//! C tests (through `examples/serve.rs`) and the demo.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;

/// Ways to misbehave; counters say for how many responses.
#[derive(Debug, Default, Clone)]
pub struct Faults {
    /// Answer every GET with 200 and the whole body.
    pub ignore_range: bool,
    /// Send no Content-Length; the body ends when the connection closes.
    pub no_length: bool,
    /// Close the connection after this many body bytes, for the next `cut_count` responses.
    pub cut_after: u64,
    pub cut_count: u32,
    /// Answer the next `fail_count` requests with 503 and `Retry-After: retry_after`.
    pub fail_count: u32,
    pub retry_after: Option<String>,
    /// Stop sending for `stall_for` after this many body bytes, for the next `stall_count`.
    pub stall_after: u64,
    pub stall_for: Duration,
    pub stall_count: u32,
    /// Pace every body at this many bytes per second (0 = full speed).
    pub bytes_per_sec: u64,
    /// Answer 401 unless this `Authorization` value is sent.
    pub require_auth: Option<String>,
    /// Answer every GET with `307 Temporary Redirect` to this base URL (same path).
    pub redirect_to: Option<String>,
    /// Send the ETag as a weak one (`W/"…"`).
    pub weak_etag: bool,
    /// Answer ranged requests with another ETag than the object's (a lying cache).
    pub wrong_part_etag: bool,
    /// Answer every ranged request with 416 and `Content-Range: bytes */<real size>`.
    pub always_416: bool,
    /// Answer `x-ms-range-get-content-md5: true` with a wrong `Content-MD5` for ranges that
    /// contain this offset (the right one for the others, as Azure Blob does).
    pub wrong_range_md5_at: Option<u64>,
}

#[derive(Clone)]
struct Object {
    data: Arc<Vec<u8>>,
    etag: String,
}

/// One stall the server made: how long it lasted, and whether the client closed the connection
/// (gave up on it) before the stall was over.
#[derive(Debug, Clone)]
pub struct Stall {
    pub lasted: Duration,
    pub abandoned: bool,
}

#[derive(Default)]
struct State {
    stalls: Mutex<Vec<Stall>>,
    /// Every request head as received.
    heads: Mutex<Vec<String>>,
    objects: Mutex<HashMap<String, Object>>,
    faults: Mutex<Faults>,
    body_bytes: AtomicU64,
    /// Responses being written now.
    responding: AtomicU64,
    /// Ranged GETs (not the one-byte probe) being answered now, and the most at once.
    ranged_now: AtomicU64,
    ranged_peak: AtomicU64,
    requests: Mutex<Vec<String>>,
    version: AtomicU64,
}

pub struct TestServer {
    pub addr: SocketAddr,
    state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
    scheme: &'static str,
}

/// A self-signed certificate for 127.0.0.1 (made with the openssl command), for HTTPS peers.
pub struct TestCert {
    pub cert_pem: String,
    pub key_pem: String,
}

impl TestCert {
    pub fn new() -> TestCert {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        let ok = std::process::Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
            ])
            .args(["-nodes", "-days", "1", "-subj", "/CN=127.0.0.1"])
            .args(["-addext", "subjectAltName=IP:127.0.0.1"])
            // An end-entity certificate that is its own trust anchor (webpki refuses a CA
            // certificate as a server's).
            .args(["-addext", "basicConstraints=critical,CA:FALSE"])
            .args(["-addext", "extendedKeyUsage=serverAuth"])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .stderr(std::process::Stdio::null())
            .status()
            .expect("openssl (apt: openssl) is needed for HTTPS test peers")
            .success();
        assert!(ok, "openssl could not make a test certificate");
        TestCert {
            cert_pem: std::fs::read_to_string(cert).unwrap(),
            key_pem: std::fs::read_to_string(key).unwrap(),
        }
    }
}

impl TestServer {
    /// Starts on 127.0.0.1 with an ephemeral port on the current tokio runtime.
    pub async fn start() -> TestServer {
        Self::start_with(None).await
    }

    /// The same server over HTTPS with `cert`.
    pub async fn start_tls(cert: &TestCert) -> TestServer {
        use rustls::pki_types::pem::PemObject as _;
        let certs = rustls::pki_types::CertificateDer::pem_slice_iter(cert.cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key =
            rustls::pki_types::PrivateKeyDer::from_pem_slice(cert.key_pem.as_bytes()).unwrap();
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let config = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap();
        Self::start_with(Some(tokio_rustls::TlsAcceptor::from(Arc::new(config)))).await
    }

    async fn start_with(tls: Option<tokio_rustls::TlsAcceptor>) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1");
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State::default());
        let st = state.clone();
        let scheme = if tls.is_some() { "https" } else { "http" };
        let task = tokio::spawn(async move {
            loop {
                let Ok((sock, _)) = listener.accept().await else {
                    continue;
                };
                let _ = sock.set_nodelay(true);
                let (st, tls) = (st.clone(), tls.clone());
                tokio::spawn(async move {
                    let _ = match tls {
                        None => serve_conn(sock, st).await,
                        Some(acceptor) => match acceptor.accept(sock).await {
                            Ok(s) => serve_conn(s, st).await,
                            Err(_) => Ok(()),
                        },
                    };
                });
            }
        });
        TestServer {
            addr,
            state,
            task,
            scheme,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!(
            "{}://{}/{}",
            self.scheme,
            self.addr,
            path.trim_start_matches('/')
        )
    }

    /// Puts (or replaces, with a new ETag) an object.
    pub fn put(&self, path: &str, data: Vec<u8>) {
        let v = self.state.version.fetch_add(1, Ordering::Relaxed);
        let etag = format!("\"v{v}-{}\"", data.len());
        self.state.objects.lock().unwrap().insert(
            format!("/{}", path.trim_start_matches('/')),
            Object {
                data: Arc::new(data),
                etag,
            },
        );
    }

    pub fn set_faults(&self, f: Faults) {
        *self.state.faults.lock().unwrap() = f;
    }

    pub fn faults(&self) -> std::sync::MutexGuard<'_, Faults> {
        self.state.faults.lock().unwrap()
    }

    /// Body bytes sent since the start (or the last reset).
    pub fn body_bytes(&self) -> u64 {
        self.state.body_bytes.load(Ordering::Relaxed)
    }

    /// Starts counting afresh, once the responses still being written (e.g. to a client that was
    /// just killed, whose closed socket takes one more write before the server notices) end: their
    /// bytes belong to the run before.
    pub fn reset_stats(&self) {
        let t = std::time::Instant::now();
        while self.state.responding.load(Ordering::SeqCst) > 0 {
            assert!(
                t.elapsed() < Duration::from_secs(20),
                "responses still being written after 20 s"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        self.state.body_bytes.store(0, Ordering::Relaxed);
        self.state.requests.lock().unwrap().clear();
    }

    /// Whether any request so far carried `text` in its head (header names and values).
    pub fn saw_in_heads(&self, text: &str) -> bool {
        self.state
            .heads
            .lock()
            .unwrap()
            .iter()
            .any(|h| h.to_ascii_lowercase().contains(&text.to_ascii_lowercase()))
    }

    /// The stalls served so far.
    pub fn stalls(&self) -> Vec<Stall> {
        self.state.stalls.lock().unwrap().clone()
    }

    /// The most ranged GETs (one-byte probes left out) answered at once so far.
    pub fn peak_ranged(&self) -> u64 {
        self.state.ranged_peak.load(Ordering::SeqCst)
    }

    /// "GET /path bytes=a-b" lines, one per request.
    pub fn requests(&self) -> Vec<String> {
        self.state.requests.lock().unwrap().clone()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Deterministic pseudo-random bytes (xorshift), so tests need no rand crate.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(len);
    v
}

async fn serve_conn<S: AsyncRead + AsyncWrite + Unpin>(
    mut sock: S,
    st: Arc<State>,
) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(4096);
    loop {
        // Read one request head.
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            if buf.len() > 64 * 1024 {
                return Ok(());
            }
            let mut tmp = [0u8; 4096];
            let n = sock.read(&mut tmp).await?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&tmp[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
        buf.drain(..head_end);
        let mut lines = head.split("\r\n");
        let mut first = lines.next().unwrap_or("").split(' ');
        let method = first.next().unwrap_or("").to_string();
        let target = first.next().unwrap_or("/").to_string();
        let path = target.split('?').next().unwrap_or("/").to_string();
        let headers: HashMap<String, String> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let range = headers.get("range").cloned();
        st.heads.lock().unwrap().push(head.clone());
        st.requests.lock().unwrap().push(format!(
            "{method} {path} {}",
            range.clone().unwrap_or_default()
        ));
        let part = method == "GET" && range.as_deref().is_some_and(|r| r != "bytes=0-0");
        let keep = {
            let _responding = Responding::new(&st.responding);
            let _ranged = part.then(|| {
                let now = st.ranged_now.fetch_add(1, Ordering::SeqCst) + 1;
                st.ranged_peak.fetch_max(now, Ordering::SeqCst);
                Responding(&st.ranged_now)
            });
            respond(&mut sock, &st, &method, &path, &headers).await?
        };
        if !keep {
            return Ok(());
        }
    }
}

/// Counts one response being written, until dropped (also when writing fails).
struct Responding<'a>(&'a AtomicU64);

impl<'a> Responding<'a> {
    fn new(n: &'a AtomicU64) -> Responding<'a> {
        n.fetch_add(1, Ordering::SeqCst);
        Responding(n)
    }
}

impl Drop for Responding<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Writes one response; returns whether the connection may carry another.
async fn respond(
    sock: &mut (impl AsyncRead + AsyncWrite + Unpin),
    st: &State,
    method: &str,
    path: &str,
    headers: &HashMap<String, String>,
) -> std::io::Result<bool> {
    let mut f = {
        let mut faults = st.faults.lock().unwrap();
        let snapshot = faults.clone();
        if faults.fail_count > 0 {
            faults.fail_count -= 1;
        }
        if faults.cut_count > 0 {
            faults.cut_count -= 1;
        }
        if faults.stall_count > 0 {
            faults.stall_count -= 1;
        }
        snapshot
    };
    if f.fail_count > 0 {
        let ra = f
            .retry_after
            .take()
            .map(|v| format!("Retry-After: {v}\r\n"))
            .unwrap_or_default();
        sock.write_all(
            format!("HTTP/1.1 503 Service Unavailable\r\n{ra}Content-Length: 0\r\n\r\n").as_bytes(),
        )
        .await?;
        return Ok(true);
    }
    if let Some(base) = &f.redirect_to {
        sock.write_all(
            format!(
                "HTTP/1.1 307 Temporary Redirect\r\nLocation: {}{path}\r\nContent-Length: 0\r\n\r\n",
                base.trim_end_matches('/')
            )
            .as_bytes(),
        )
        .await?;
        return Ok(true);
    }
    if let Some(want) = &f.require_auth
        && headers.get("authorization") != Some(want)
    {
        sock.write_all(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n")
            .await?;
        return Ok(true);
    }
    let obj = st.objects.lock().unwrap().get(path).cloned();
    let Some(obj) = obj else {
        sock.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
            .await?;
        return Ok(true);
    };
    if method != "GET" && method != "HEAD" {
        sock.write_all(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
            .await?;
        return Ok(true);
    }
    let len = obj.data.len() as u64;
    let etag = if f.weak_etag {
        format!("W/{}", obj.etag)
    } else {
        obj.etag.clone()
    };
    if f.always_416 && headers.contains_key("range") {
        sock.write_all(
            format!("HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */{len}\r\nContent-Length: 0\r\n\r\n").as_bytes(),
        )
        .await?;
        return Ok(true);
    }
    let mut range = None;
    if !f.ignore_range
        && let Some(r) = headers.get("range")
    {
        let if_range_ok = headers
            .get("if-range")
            .is_none_or(|v| *v == obj.etag || *v == etag);
        if if_range_ok && let Some(spec) = r.strip_prefix("bytes=") {
            let (a, b) = spec.split_once('-').unwrap_or((spec, ""));
            let a: u64 = a.parse().unwrap_or(0);
            let b: u64 = if b.is_empty() {
                len.saturating_sub(1)
            } else {
                b.parse().unwrap_or(0).min(len.saturating_sub(1))
            };
            if a >= len || a > b {
                sock.write_all(
                    format!("HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */{len}\r\nETag: {}\r\nContent-Length: 0\r\n\r\n", obj.etag).as_bytes(),
                )
                .await?;
                return Ok(true);
            }
            range = Some((a, b));
        }
    }
    let (status, start, end) = match range {
        Some((a, b)) => ("206 Partial Content", a, b + 1),
        None => ("200 OK", 0, len),
    };
    let sent_etag = if f.wrong_part_etag && range.is_some() && start > 0 {
        "\"another-version\"".to_string()
    } else {
        etag
    };
    let mut head = format!("HTTP/1.1 {status}\r\nETag: {sent_etag}\r\nAccept-Ranges: bytes\r\n");
    if let Some((a, b)) = range {
        head.push_str(&format!("Content-Range: bytes {a}-{b}/{len}\r\n"));
        if headers
            .get("x-ms-range-get-content-md5")
            .map(String::as_str)
            == Some("true")
        {
            use base64::Engine as _;
            use md5::Digest as _;
            let mut md5 = md5::Md5::digest(&obj.data[a as usize..=b as usize]);
            if f.wrong_range_md5_at.is_some_and(|at| (a..=b).contains(&at)) {
                md5[0] ^= 1;
            }
            let md5 = base64::engine::general_purpose::STANDARD.encode(md5);
            head.push_str(&format!("Content-MD5: {md5}\r\n"));
        }
    }
    if f.no_length {
        head.push_str("Connection: close\r\n\r\n");
    } else {
        head.push_str(&format!("Content-Length: {}\r\n\r\n", end - start));
    }
    sock.write_all(head.as_bytes()).await?;
    if method == "HEAD" {
        return Ok(!f.no_length);
    }
    let body = &obj.data[start as usize..end as usize];
    let chunk = 64 * 1024;
    let mut sent = 0u64;
    for piece in body.chunks(chunk) {
        let mut piece = piece;
        if f.cut_count > 0 && sent + piece.len() as u64 > f.cut_after {
            let n = f.cut_after.saturating_sub(sent) as usize;
            sock.write_all(&piece[..n]).await?;
            st.body_bytes.fetch_add(n as u64, Ordering::Relaxed);
            sock.flush().await?;
            return Ok(false);
        }
        if f.stall_count > 0 && sent + piece.len() as u64 > f.stall_after {
            let n = f.stall_after.saturating_sub(sent) as usize;
            sock.write_all(&piece[..n]).await?;
            st.body_bytes.fetch_add(n as u64, Ordering::Relaxed);
            sent += n as u64;
            piece = &piece[n..];
            // Stall, but notice when the client gives up on us (it closes the connection).
            let started = std::time::Instant::now();
            let mut probe = [0u8; 1];
            let abandoned = tokio::select! {
                _ = tokio::time::sleep(f.stall_for) => false,
                r = sock.read(&mut probe) => matches!(r, Ok(0) | Err(_)),
            };
            st.stalls.lock().unwrap().push(Stall {
                lasted: started.elapsed(),
                abandoned,
            });
            if abandoned {
                return Ok(false);
            }
            f.stall_count = 0;
        }
        sock.write_all(piece).await?;
        st.body_bytes
            .fetch_add(piece.len() as u64, Ordering::Relaxed);
        sent += piece.len() as u64;
        if f.bytes_per_sec > 0 {
            tokio::time::sleep(Duration::from_secs_f64(
                piece.len() as f64 / f.bytes_per_sec as f64,
            ))
            .await;
        }
    }
    Ok(!f.no_length)
}
