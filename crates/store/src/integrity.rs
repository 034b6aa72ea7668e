//! The read-side rule every store goes through ([`crate::Stores::get`]): the data served for an
//! image is exactly the data recorded for it. A store whose data is not the recorded size is
//! refused before any byte is sent, and a stream that ends early or runs long (data that
//! shrank or grew during the transfer) ends with an error instead of cleanly, so a client sees
//! a failed download and never a short or padded one.
//!
//! This module decides nothing about HTTP: it only turns a backend's [`Fetched`] into one
//! whose sizes are the recorded ones, or into [`StoreError::SizeChanged`].

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use futures_util::{Stream, StreamExt};

use crate::{ByteRange, ByteStream, Fetched, StoreError};

/// Holds `fetched` to the recorded size `recorded` of the data at `url` (shown in
/// messages without credentials): its whole size, when the store knows it, must be
/// `recorded`; its offset and length become the ones `range` names within `recorded`; and its
/// stream must carry exactly that many bytes.
pub(crate) fn hold_to_record(
    mut fetched: Fetched,
    url: &str,
    recorded: u64,
    range: Option<ByteRange>,
) -> Result<Fetched, StoreError> {
    if let Some(found) = fetched.total_size
        && found != recorded
    {
        return Err(size_changed(url, recorded, found));
    }
    let (offset, length) = crate::resolve_range(range, recorded)?;
    if fetched.offset != offset || fetched.length.is_some_and(|l| l != length) {
        // A backend that could not honour the range as asked cannot serve this body.
        return Err(StoreError::RemoteUnavailable(format!(
            "{} returned bytes {}+{:?} where bytes {offset}+{length} were asked for",
            crate::http::strip_credentials(url),
            fetched.offset,
            fetched.length
        )));
    }
    fetched.total_size = Some(recorded);
    fetched.length = Some(length);
    fetched.file = fetched
        .file
        .filter(|r| r.offset == offset && r.length == length);
    fetched.stream = exact_length(fetched.stream, length);
    Ok(fetched)
}

/// Maps a backend's refusal of a range to the size check: a range that fits the recorded size
/// but not the stored data means the stored data is not the recorded size.
pub(crate) fn range_refusal(err: StoreError, url: &str, recorded: u64) -> StoreError {
    match err {
        StoreError::RangeNotSatisfiable { size, .. } if size != recorded => {
            size_changed(url, recorded, size)
        }
        other => other,
    }
}

fn size_changed(url: &str, recorded: u64, found: u64) -> StoreError {
    StoreError::SizeChanged {
        location: crate::http::strip_credentials(url),
        recorded,
        found,
    }
}

/// Passes on `stream`, failing it if it ends before `length` bytes or carries more. The only
/// work per chunk is one counter.
pub(crate) fn exact_length(stream: ByteStream, length: u64) -> ByteStream {
    Box::pin(ExactLength {
        inner: stream,
        length,
        left: length,
        done: false,
    })
}

/// See [`exact_length`].
struct ExactLength {
    inner: ByteStream,
    length: u64,
    left: u64,
    /// Set after the last item: nothing follows an error or the end.
    done: bool,
}

impl Stream for ExactLength {
    type Item = Result<Bytes, StoreError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        let item = match ready!(self.inner.poll_next_unpin(cx)) {
            Some(Ok(chunk)) if chunk.len() as u64 <= self.left => {
                self.left -= chunk.len() as u64;
                return Poll::Ready(Some(Ok(chunk)));
            }
            Some(Ok(_)) => Some(Err(StoreError::RemoteUnavailable(format!(
                "the image data grew during the transfer, past its recorded {} bytes",
                self.length
            )))),
            Some(Err(e)) => Some(Err(e)),
            None if self.left > 0 => Some(Err(StoreError::Truncated {
                expected: self.length,
                delivered: self.length - self.left,
            })),
            None => None,
        };
        self.done = true;
        Poll::Ready(item)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(chunks: &[&'static [u8]]) -> ByteStream {
        let items: Vec<Result<Bytes, StoreError>> =
            chunks.iter().map(|c| Ok(Bytes::from_static(c))).collect();
        Box::pin(futures_util::stream::iter(items))
    }

    async fn drain(s: ByteStream) -> (Vec<u8>, Option<StoreError>) {
        let mut out = Vec::new();
        let mut s = s;
        while let Some(item) = s.next().await {
            match item {
                Ok(b) => out.extend_from_slice(&b),
                Err(e) => {
                    assert!(s.next().await.is_none(), "nothing follows an error");
                    return (out, Some(e));
                }
            }
        }
        (out, None)
    }

    #[tokio::test]
    async fn a_stream_of_the_right_length_passes_unchanged() {
        let (got, err) = drain(exact_length(stream(&[b"abc", b"de"]), 5)).await;
        assert_eq!(got, b"abcde");
        assert!(err.is_none(), "{err:?}");
    }

    #[tokio::test]
    async fn a_short_stream_ends_with_an_error() {
        let (got, err) = drain(exact_length(stream(&[b"abc"]), 5)).await;
        assert_eq!(got, b"abc");
        assert!(
            matches!(
                err,
                Some(StoreError::Truncated {
                    expected: 5,
                    delivered: 3
                })
            ),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn a_long_stream_fails_before_the_extra_bytes() {
        let (got, err) = drain(exact_length(stream(&[b"abc", b"def"]), 5)).await;
        assert_eq!(got, b"abc");
        assert!(err.is_some());
    }

    fn fetched(total: Option<u64>, offset: u64, length: Option<u64>) -> Fetched {
        Fetched {
            total_size: total,
            offset,
            length,
            stream: stream(&[]),
            file: None,
        }
    }

    #[test]
    fn the_stored_size_must_be_the_recorded_one() {
        let err = hold_to_record(fetched(Some(4), 0, Some(4)), "file:///x", 5, None)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("4 bytes") && err.contains("5 bytes"), "{err}");
        let ok = hold_to_record(fetched(Some(5), 2, Some(3)), "x", 5, Some(range(2, None)))
            .map(|f| (f.total_size, f.offset, f.length));
        assert_eq!(ok.ok(), Some((Some(5), 2, Some(3))));
        // A store that cannot tell the size: the recorded one is used, the stream is held to it.
        let ok = hold_to_record(fetched(None, 0, None), "x", 5, None).map(|f| f.length);
        assert_eq!(ok.ok(), Some(Some(5)));
    }

    fn range(offset: u64, length: Option<u64>) -> ByteRange {
        ByteRange { offset, length }
    }

    #[test]
    fn a_range_refused_by_smaller_data_is_a_size_change() {
        let refused = StoreError::RangeNotSatisfiable {
            offset: 10,
            size: 4,
        };
        assert!(matches!(
            range_refusal(refused, "x", 20),
            StoreError::SizeChanged {
                recorded: 20,
                found: 4,
                ..
            }
        ));
        let refused = StoreError::RangeNotSatisfiable {
            offset: 30,
            size: 20,
        };
        assert!(matches!(
            range_refusal(refused, "x", 20),
            StoreError::RangeNotSatisfiable { .. }
        ));
    }
}
