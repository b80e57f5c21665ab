//! Clouds that never stop answering (issue 25, items 4, 5 and the Azure parts of 11), against
//! the Azure peer: Azurite (real page blobs) seen through a proxy of this file that passes
//! every request on and, when told, makes Get Page Ranges hostile (a `NextMarker` that repeats,
//! a range past the blob's end, an answer without end); and the ARM stand-in's hostile switch
//! (a `nextLink` pointing at its own page). Each must end in a clean error naming the listing,
//! quickly, and a fragmented disk must be fetched in few requests with its holes kept.
#![cfg(feature = "azure")]

mod support;

use std::os::unix::fs::MetadataExt as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use hypersdk::{Client, ErrorKind};
use serde_json::json;
use support::azure::azure;
use support::opts;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};

/// What the proxy does to Get Page Ranges (`comp=pagelist`) answers.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Mode {
    /// Passes everything on as Azurite answered.
    Pass,
    /// Every page names the same `NextMarker` (the marker is not passed on: Azurite would
    /// refuse one it never gave).
    Loop,
    /// One more range, far past the blob's end.
    PastSize,
    /// An answer with no length that never ends (chunked `PageRange`s, up to 512 MiB).
    Endless,
}

struct Proxy {
    port: u16,
    /// Ranged GETs of the blob's bytes (not listings, not HEADs).
    ranged_gets: Arc<AtomicUsize>,
    pagelists: Arc<AtomicUsize>,
    /// Bytes of the endless answer the client took before it hung up.
    endless_sent: Arc<AtomicU64>,
    _rt: tokio::runtime::Runtime,
}

fn start_proxy(upstream: &url::Url, mode: Mode) -> Proxy {
    use rustls::pki_types::pem::PemObject as _;
    let az = azure();
    let rt = support::peer_runtime();
    let cert_pem = std::fs::read(az.dir.path().join("cert.pem")).unwrap();
    let key_pem = std::fs::read(az.dir.path().join("key.pem")).unwrap();
    let certs = rustls::pki_types::CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(&key_pem).unwrap();
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let tls = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(az.ca_pem.as_bytes()).unwrap())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let origin = format!(
        "https://{}:{}",
        upstream.host_str().unwrap(),
        upstream.port().unwrap()
    );
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    let p = Proxy {
        port,
        ranged_gets: Arc::default(),
        pagelists: Arc::default(),
        endless_sent: Arc::default(),
        _rt: rt,
    };
    let (ranged, lists, sent) = (
        p.ranged_gets.clone(),
        p.pagelists.clone(),
        p.endless_sent.clone(),
    );
    p._rt.spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            let (acceptor, client, origin) = (acceptor.clone(), client.clone(), origin.clone());
            let (ranged, lists, sent) = (ranged.clone(), lists.clone(), sent.clone());
            tokio::spawn(async move {
                let Ok(s) = acceptor.accept(sock).await else {
                    return;
                };
                let c = Counters {
                    ranged,
                    lists,
                    sent,
                };
                let _ = serve(s, &client, &origin, mode, &c).await;
            });
        }
    });
    p
}

struct Counters {
    ranged: Arc<AtomicUsize>,
    lists: Arc<AtomicUsize>,
    sent: Arc<AtomicU64>,
}

/// One request per connection (`Connection: close`): read the head, forward, answer.
async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    client: &reqwest::Client,
    origin: &str,
    mode: Mode,
    c: &Counters,
) -> std::io::Result<()> {
    let mut head = Vec::new();
    let mut buf = [0u8; 8192];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = s.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&head).to_string();
    let mut lines = text.split("\r\n");
    let mut first = lines.next().unwrap_or("").split(' ');
    let (method, target) = (first.next().unwrap_or(""), first.next().unwrap_or("/"));
    let listing = target.contains("comp=pagelist");
    let mut target = target.to_string();
    if listing {
        c.lists.fetch_add(1, Ordering::SeqCst);
        if mode == Mode::Loop {
            // Azurite gave no marker of its own: the one we made up is not passed on.
            let mut u = url::Url::parse(&format!("{origin}{target}")).unwrap();
            let q: Vec<(String, String)> = u
                .query_pairs()
                .filter(|(k, _)| k != "marker")
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
            u.query_pairs_mut().clear().extend_pairs(q);
            target = format!("{}?{}", u.path(), u.query().unwrap_or(""));
        }
        if mode == Mode::Endless {
            return endless(s, c).await;
        }
    } else if method == "GET" {
        c.ranged.fetch_add(1, Ordering::SeqCst);
    }
    let mut req = client.request(
        reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
        format!("{origin}{target}"),
    );
    for l in lines.take_while(|l| !l.is_empty()) {
        if let Some((k, v)) = l.split_once(':') {
            let k = k.trim().to_ascii_lowercase();
            if !matches!(k.as_str(), "host" | "connection" | "content-length") {
                req = req.header(k, v.trim());
            }
        }
    }
    let resp = match req.send().await {
        Ok(r) => r,
        Err(_) => {
            return s
                .write_all(b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\n\r\n")
                .await;
        }
    };
    let status = resp.status();
    let headers = resp.headers().clone();
    let mut body = resp.bytes().await.unwrap_or_default().to_vec();
    if listing && status.is_success() {
        let xml = String::from_utf8_lossy(&body).to_string();
        let xml = match mode {
            Mode::Loop => {
                let xml = strip_marker(&xml);
                xml.replace(
                    "</PageList>",
                    "<NextMarker>hostile-same-marker</NextMarker></PageList>",
                )
            }
            Mode::PastSize => xml.replace(
                "</PageList>",
                "<PageRange><Start>1099511627776</Start><End>1099511628287</End></PageRange></PageList>",
            ),
            _ => xml,
        };
        body = xml.into_bytes();
    }
    let mut out = format!(
        "HTTP/1.1 {} {}\r\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    );
    for (k, v) in &headers {
        let k = k.as_str();
        if matches!(k, "transfer-encoding" | "connection")
            || (k == "content-length" && method != "HEAD")
        {
            continue;
        }
        out.push_str(&format!("{k}: {}\r\n", v.to_str().unwrap_or("")));
    }
    if method != "HEAD" {
        out.push_str(&format!("content-length: {}\r\n", body.len()));
    }
    out.push_str("connection: close\r\n\r\n");
    s.write_all(out.as_bytes()).await?;
    if method != "HEAD" {
        s.write_all(&body).await?;
    }
    s.shutdown().await
}

fn strip_marker(xml: &str) -> String {
    let xml = xml
        .replace("<NextMarker />", "")
        .replace("<NextMarker/>", "");
    match (xml.find("<NextMarker>"), xml.find("</NextMarker>")) {
        (Some(a), Some(b)) => format!("{}{}", &xml[..a], &xml[b + "</NextMarker>".len()..]),
        _ => xml,
    }
}

/// A page list that does not end: chunked, 1 MiB of ranges per chunk, up to 512 MiB.
async fn endless<S: AsyncWrite + Unpin>(mut s: S, c: &Counters) -> std::io::Result<()> {
    s.write_all(
        b"HTTP/1.1 200 OK\r\ncontent-type: application/xml\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n",
    )
    .await?;
    let open = b"<?xml version=\"1.0\" encoding=\"utf-8\"?><PageList>";
    s.write_all(format!("{:x}\r\n", open.len()).as_bytes())
        .await?;
    s.write_all(open).await?;
    s.write_all(b"\r\n").await?;
    let unit = b"<PageRange><Start>0</Start><End>511</End></PageRange>";
    let chunk: Vec<u8> = unit
        .iter()
        .copied()
        .cycle()
        .take(unit.len() * ((1 << 20) / unit.len()))
        .collect();
    for _ in 0..512 {
        s.write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
            .await?;
        s.write_all(&chunk).await?;
        s.write_all(b"\r\n").await?;
        c.sent.fetch_add(chunk.len() as u64, Ordering::SeqCst);
    }
    s.write_all(b"0\r\n\r\n").await
}

/// A disk blob in Azurite (the non-zero pages of `data`), and its SAS URL pointed at a
/// proxy in `mode`.
fn through_proxy(name: &str, data: &[u8], mode: Mode) -> (Proxy, String) {
    let az = azure();
    let p = az.dir.path().join(format!("{name}.raw"));
    std::fs::write(&p, data).unwrap();
    az.add("disks", name, &p, "Unattached", None);
    let sas = url::Url::parse(&az.sas(name)).unwrap();
    let proxy = start_proxy(&sas, mode);
    let mut via = sas.clone();
    via.set_port(Some(proxy.port)).unwrap();
    (proxy, via.to_string())
}

fn client() -> Client {
    Client::new("azure", &azure().config()).unwrap()
}

/// Runs an export to its end, which must come within 90 s (a listing that never ends would
/// otherwise hang the test).
fn export(source: &str, out: &std::path::Path, file: &str) -> hypersdk::ExportResult {
    let e = client()
        .start_export(source, &opts(out, json!({"file_name": file})), None)
        .unwrap();
    let r = e.wait(Some(Duration::from_secs(90))).unwrap();
    match r {
        Some(r) => r,
        None => {
            e.cancel();
            panic!("the export did not end within 90 s");
        }
    }
}

fn small_disk(seed: u64) -> Vec<u8> {
    let mut d = vec![0u8; 4 << 20];
    d[1 << 20..(1 << 20) + 8192].copy_from_slice(&support::server::pattern(8192, seed));
    d
}

#[test]
fn page_ranges_whose_next_marker_repeats_end_in_an_error_naming_the_blob() {
    let (proxy, src) = through_proxy("hostile-loop", &small_disk(3), Mode::Loop);
    let out = tempfile::tempdir().unwrap();
    let r = export(&src, out.path(), "loop.raw");
    assert_eq!(r.status, "failed", "{}", r.to_json());
    let e = r.error().unwrap();
    assert_eq!(e.kind, ErrorKind::Remote, "{}", e.message);
    assert!(
        e.message.contains("page ranges") && e.message.contains("earlier page"),
        "{}",
        e.message
    );
    assert!(!e.message.contains("sig="), "{}", e.message);
    let n = proxy.pagelists.load(Ordering::SeqCst);
    assert!(n <= 3, "the listing was asked {n} times");
}

#[test]
fn a_page_range_past_the_blob_is_a_remote_error_naming_the_blob() {
    let (_proxy, src) = through_proxy("hostile-past", &small_disk(5), Mode::PastSize);
    let out = tempfile::tempdir().unwrap();
    let r = export(&src, out.path(), "past.raw");
    assert_eq!(r.status, "failed", "{}", r.to_json());
    let e = r.error().unwrap();
    assert_eq!(e.kind, ErrorKind::Remote, "{}", e.message);
    assert!(
        e.message.contains("/abcd") && e.message.contains("outside the blob"),
        "{}",
        e.message
    );
}

#[test]
fn an_endless_page_list_is_refused_at_its_cap_not_read_whole() {
    let (proxy, src) = through_proxy("hostile-endless", &small_disk(7), Mode::Endless);
    let out = tempfile::tempdir().unwrap();
    let r = export(&src, out.path(), "endless.raw");
    assert_eq!(r.status, "failed", "{}", r.to_json());
    let e = r.error().unwrap();
    assert_eq!(e.kind, ErrorKind::Remote, "{}", e.message);
    assert!(
        e.message.contains("page ranges") && e.message.contains("larger than 16 MiB"),
        "{}",
        e.message
    );
    // The client hung up near the cap: far from the 512 MiB the peer would have sent.
    let sent = proxy.endless_sent.load(Ordering::SeqCst);
    assert!(sent < 64 << 20, "{} MiB were taken", sent >> 20);
}

#[test]
fn a_fragmented_disk_is_fetched_in_few_requests_with_its_holes_kept() {
    // 128 written pieces of 4 KiB, one every 128 KiB: 128 page ranges. Fetched one request per
    // range they were 128+ requests; merged over their gaps, a few parts of one extent.
    let mut d = vec![0u8; 16 << 20];
    for i in 0..128usize {
        let at = i * (128 << 10);
        d[at..at + 4096].copy_from_slice(&support::server::pattern(4096, i as u64 + 11));
    }
    let (proxy, src) = through_proxy("fragmented", &d, Mode::Pass);
    let out = tempfile::tempdir().unwrap();
    let r = export(&src, out.path(), "frag.raw");
    assert_eq!(r.status, "done", "{}", r.to_json());
    let file = out.path().join("frag.raw");
    assert!(std::fs::read(&file).unwrap() == d, "the bytes differ");
    // One request per range would be 128 (and a probe); merged, the downloader cuts the one
    // extent into parts as it sees fit (sized for the 64 connections that may come: ~65 on
    // this small disk).
    let gets = proxy.ranged_gets.load(Ordering::SeqCst);
    assert!(gets <= 80, "{gets} ranged requests for 128 small ranges");
    // The clear bytes fetched with the ranges are zeros and stay holes: each piece costs at
    // most its 64 KiB block on disk, not the 128 KiB between pieces.
    let allocated = std::fs::metadata(&file).unwrap().blocks() * 512;
    eprintln!(
        "fragmented: {gets} requests, {} KiB allocated, {} bytes fetched",
        allocated >> 10,
        r.bytes_fetched
    );
    assert!(
        allocated <= (128 * (64 << 10)) + (1 << 20),
        "{} KiB allocated for 512 KiB of data",
        allocated >> 10
    );
}

#[test]
fn an_arm_next_link_pointing_at_itself_ends_in_an_error_naming_the_listing() {
    let az = azure();
    az.faults("list:rg-loop", json!({"next_link_loop": true}));
    let before = az.stats()["list_loop_gets"].as_u64().unwrap_or(0);
    let e = client()
        .list_sources(&json!({"resource_group": "rg-loop"}).to_string())
        .expect_err("a listing that points at itself must fail");
    assert_eq!(e.kind(), ErrorKind::Remote, "{e}");
    assert!(
        e.to_string().contains("resource group rg-loop") && e.to_string().contains("earlier page"),
        "{e}"
    );
    let gets = az.stats()["list_loop_gets"].as_u64().unwrap_or(0) - before;
    assert!(gets <= 3, "the listing was fetched {gets} times");
}
