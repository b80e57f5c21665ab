//! Reading a body chunk by chunk, the same way for every strategy: a body that yields nothing
//! for the stall timeout is a `Timeout` (retryable), a cancel wins over a waiting read.

use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{Stream, StreamExt as _};
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};

/// The bytes of one request or one local read, in order.
pub(crate) type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes>> + Send>>;

/// The next chunk of `body`; `None` at its end.
pub(crate) async fn next_chunk(
    body: &mut ByteStream,
    stall: Duration,
    cancel: &CancellationToken,
    name: &str,
) -> Result<Option<Bytes>> {
    tokio::select! {
        biased;
        _ = cancel.cancelled() => Err(Error::Cancelled),
        n = tokio::time::timeout(stall, body.next()) => match n {
            Err(_) => Err(Error::Timeout(format!("{name}: no data for {stall:?}"))),
            Ok(None) => Ok(None),
            Ok(Some(r)) => r.map(Some),
        },
    }
}

/// An HTTP response body as a [`ByteStream`], its errors mapped without the URL.
pub(crate) fn http_body(resp: reqwest::Response, name: &str) -> ByteStream {
    let what = format!("reading {name}");
    Box::pin(
        resp.bytes_stream()
            .map(move |r| r.map_err(|e| Error::http(&what, e))),
    )
}
