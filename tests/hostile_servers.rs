//! API endpoints that hang, lie or attack: a vCenter that never answers the login, answers with
//! a document nested 200 000 deep or a 40 MiB body, or redirects the login elsewhere. Each must
//! end in a clean error within the configured deadline, never a hang, a crash of the host
//! process, or a password sent twice. The "server" is a raw TCP peer on 127.0.0.1 that answers
//! every request with the bytes it is given.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hypersdk::{Client, ErrorKind};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// What the peer does with each request.
#[derive(Clone)]
enum Answer {
    Nothing,
    Bytes(Arc<Vec<u8>>),
}

struct Peer {
    port: u16,
    requests: Arc<AtomicUsize>,
}

fn start(rt: &tokio::runtime::Runtime, answer: Answer) -> Peer {
    let listener = rt.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
    let port = listener.local_addr().unwrap().port();
    let requests = Arc::new(AtomicUsize::new(0));
    let r = requests.clone();
    rt.spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let (answer, r) = (answer.clone(), r.clone());
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                let mut got = Vec::new();
                // Read the head and whatever body arrives with it.
                while !String::from_utf8_lossy(&got).contains("</soapenv:Envelope>") {
                    match sock.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                r.fetch_add(1, Ordering::SeqCst);
                match answer {
                    Answer::Nothing => tokio::time::sleep(Duration::from_secs(600)).await,
                    Answer::Bytes(bytes) => {
                        let _ = sock.write_all(&bytes).await;
                        let _ = sock.shutdown().await;
                    }
                }
            });
        }
    });
    Peer { port, requests }
}

fn connect(port: u16, password: &str) -> (Result<Client, hypersdk::Error>, Duration) {
    let cfg = serde_json::json!({
        "url": format!("http://127.0.0.1:{port}/sdk"),
        "username": "backup@vsphere.local",
        "password": password,
        "api_timeout_ms": 500,
    });
    let t = Instant::now();
    let r = Client::new("vsphere", &cfg.to_string());
    (r, t.elapsed())
}

fn http(status: &str, extra: &str, body: &[u8]) -> Answer {
    let mut v = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/xml\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    v.extend_from_slice(body);
    Answer::Bytes(Arc::new(v))
}

#[test]
fn a_silent_server_cannot_hang_the_login() {
    let rt = support::peer_runtime();
    let peer = start(&rt, Answer::Nothing);
    let (r, took) = connect(peer.port, "pw-silent-1");
    let e = r.err().expect("a login that gets no answer must fail");
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    // The kit's rule, the same for every cloud: 8 attempts of api_timeout_ms each, ~22 s of
    // backoff between them (capped at 5 s); bounded, not a hang.
    assert!(
        took < Duration::from_secs(45),
        "the login hung for {took:?}"
    );
    assert!(peer.requests.load(Ordering::SeqCst) >= 8, "not retried");
    assert!(peer.requests.load(Ordering::SeqCst) >= 1);
}

#[test]
fn a_document_nested_200000_deep_is_a_clean_error() {
    let rt = support::peer_runtime();
    let depth = 200_000;
    let mut body = String::from("<?xml version=\"1.0\"?>");
    body.push_str(&"<a>".repeat(depth));
    body.push_str(&"</a>".repeat(depth));
    let peer = start(&rt, http("200 OK", "", body.as_bytes()));
    let (r, _) = connect(peer.port, "pw-deep-2");
    let e = r.err().expect("must fail");
    assert_eq!(e.kind(), ErrorKind::Remote, "{e}");
    assert!(e.to_string().contains("nesting deeper"), "{e}");
}

#[test]
fn an_oversized_answer_is_refused_before_it_is_read() {
    let rt = support::peer_runtime();
    // Announces 40 MiB (and sends a little): refused on the announced length.
    let head = "HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: 41943040\r\nConnection: close\r\n\r\n<a>";
    let peer = start(&rt, Answer::Bytes(Arc::new(head.as_bytes().to_vec())));
    let (r, _) = connect(peer.port, "pw-big-3");
    let e = r.err().expect("must fail");
    assert!(e.to_string().contains("larger than 32 MiB"), "{e}");
}

#[test]
fn a_redirected_call_is_not_followed() {
    let rt = support::peer_runtime();
    // Where the redirect points: had it been followed, this peer would get the SOAP call (and,
    // at the login, the password).
    let target = start(&rt, Answer::Nothing);
    let peer = start(
        &rt,
        http(
            "307 Temporary Redirect",
            &format!("Location: http://127.0.0.1:{}/sdk\r\n", target.port),
            b"",
        ),
    );
    let (r, _) = connect(peer.port, "pw-redirect-4");
    let e = r.err().expect("must fail");
    assert!(e.to_string().contains("redirect"), "{e}");
    assert!(!e.to_string().contains("pw-redirect-4"), "{e}");
    assert_eq!(peer.requests.load(Ordering::SeqCst), 1);
    assert_eq!(
        target.requests.load(Ordering::SeqCst),
        0,
        "the redirect was followed"
    );
}

/// A silent EC2 endpoint ends the export with a timeout (the SDK's attempts each have the
/// configured deadline), never a hang.
#[cfg(feature = "aws")]
#[test]
fn a_silent_aws_endpoint_times_out() {
    let rt = support::peer_runtime();
    let peer = start(&rt, Answer::Nothing);
    let cfg = serde_json::json!({
        "region": "us-east-1", "endpoint_url": format!("http://127.0.0.1:{}", peer.port),
        "access_key_id": "AKIDTEST", "secret_access_key": "not-used-secret",
        "api_timeout_ms": 300,
    });
    let client = Client::new("aws", &cfg.to_string()).unwrap();
    let out = tempfile::tempdir().unwrap();
    let o = serde_json::json!({"output_dir": out.path(), "s3_bucket": "exports"});
    let t = Instant::now();
    let e = client
        .start_export("i-0123456789abcdef0", &o.to_string(), None)
        .unwrap();
    let r = e
        .wait(Some(Duration::from_secs(60)))
        .unwrap()
        .expect("the export must end");
    let err = r.error().expect("a silent endpoint must fail the export");
    assert_eq!(err.kind, ErrorKind::Timeout, "{}", err.message);
    assert!(
        t.elapsed() < Duration::from_secs(30),
        "took {:?}",
        t.elapsed()
    );
}
