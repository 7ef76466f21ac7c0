//! What one connection needs that hyper 1's HTTP/1 server does not do itself.
//!
//! hyper runs `header_read_timeout` from the moment it waits for a head: the connection's
//! start, or, on a keep-alive connection, the end of the previous answer, so the wait
//! between requests counts against it (hyperium/hyper#3828). It has no idle timeout
//! (hyperium/hyper#1628). `EYE_HTTP_HEADER_READ_TIMEOUT_MS` and `EYE_HTTP_IDLE_TIMEOUT_MS`
//! keep the two apart: the head timeout runs from a later request's first byte, and a
//! connection that sends nothing is closed by the idle timeout. So each connection gets:
//! - [`Tap`], its socket under a read timeout (the idle timeout, from tokio-io-timeout),
//!   which also notes when the first byte of each head arrives and keeps a copy of the
//!   head's bytes: hyper drops a `Content-Length` sent beside `Transfer-Encoding` before
//!   the service sees the head, and [`crate::conformance`] answers that request itself;
//! - [`HeadTimer`], the timer hyper's head timeout runs on: the first head's deadline is
//!   hyper's own, and a later head's runs from its first byte.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_io_timeout::TimeoutStream;

/// The head hyper is waiting for, as the socket delivers it.
#[derive(Default)]
struct Head {
    /// Between hyper starting to wait for a head and the service taking its copy.
    reading: bool,
    first_byte: Option<Instant>,
    bytes: Vec<u8>,
}

/// What [`Tap`] sees of the head and [`HeadTimer`] and the service read, per connection.
pub(crate) struct Heads {
    head: Mutex<Head>,
    /// A head longer than this is refused by hyper (`max_header_size`), so no more of one
    /// is kept.
    max_bytes: usize,
}

impl Heads {
    pub(crate) fn new(max_bytes: usize) -> Arc<Self> {
        Arc::new(Self {
            head: Mutex::new(Head::default()),
            max_bytes,
        })
    }

    fn lock(&self) -> MutexGuard<'_, Head> {
        self.head.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// hyper starts waiting for a head.
    fn begin(&self) {
        let mut head = self.lock();
        head.reading = true;
        head.first_byte = None;
        head.bytes.clear();
    }

    fn read(&self, bytes: &[u8]) {
        let mut head = self.lock();
        if head.reading {
            head.first_byte.get_or_insert_with(Instant::now);
            let room = self.max_bytes.saturating_sub(head.bytes.len());
            head.bytes
                .extend_from_slice(&bytes[..bytes.len().min(room)]);
        }
    }

    fn first_byte(&self) -> Option<Instant> {
        self.lock().first_byte
    }

    /// The bytes read since hyper began waiting for the head it has just parsed: that
    /// head, what followed it in the same reads, and nothing of a head hyper had already
    /// buffered before it began waiting (a pipelined request).
    pub(crate) fn take(&self) -> Vec<u8> {
        let mut head = self.lock();
        head.reading = false;
        std::mem::take(&mut head.bytes)
    }
}

/// A connection's socket, closed after the idle timeout without a byte while it is read,
/// telling [`Heads`] what it reads.
pub(crate) struct Tap {
    io: Pin<Box<TimeoutStream<TcpStream>>>,
    heads: Arc<Heads>,
}

impl Tap {
    pub(crate) fn new(tcp: TcpStream, idle: Duration, heads: Arc<Heads>) -> Self {
        let mut io = TimeoutStream::new(tcp);
        io.set_read_timeout(Some(idle));
        Self {
            io: Box::pin(io),
            heads,
        }
    }
}

impl AsyncRead for Tap {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = self.io.as_mut().poll_read(cx, buf);
        let read = &buf.filled()[before..];
        if !read.is_empty() {
            self.heads.read(read);
        }
        polled
    }
}

impl AsyncWrite for Tap {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.io.as_mut().poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.io.as_mut().poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.io.as_mut().poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.io.as_mut().poll_shutdown(cx)
    }
}

/// The timer of one connection's head timeout. hyper asks it for a sleep each time it
/// begins waiting for a head, and drops that sleep once the head is parsed.
pub(crate) struct HeadTimer {
    heads: Arc<Heads>,
    timeout: Duration,
    /// Whether hyper has waited for a head on this connection before.
    later: AtomicBool,
    tokio: hyper_util::rt::TokioTimer,
}

impl HeadTimer {
    /// `timeout` must be the `header_read_timeout` hyper is given.
    pub(crate) fn new(heads: Arc<Heads>, timeout: Duration) -> Self {
        Self {
            heads,
            timeout,
            later: AtomicBool::new(false),
            tokio: hyper_util::rt::TokioTimer::new(),
        }
    }
}

impl hyper::rt::Timer for HeadTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn hyper::rt::Sleep>> {
        self.tokio.sleep(duration)
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        self.heads.begin();
        if !self.later.swap(true, Ordering::Relaxed) {
            // The first head: from the connection's start, as hyper counts it.
            return self.tokio.sleep_until(deadline);
        }
        Box::pin(FromFirstByte {
            heads: self.heads.clone(),
            timeout: self.timeout,
            sleep: None,
        })
    }
}

/// A later head's deadline: `timeout` after its first byte. Until that byte the wait is
/// the idle timeout's (see [`Tap`]).
struct FromFirstByte {
    heads: Arc<Heads>,
    timeout: Duration,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl std::future::Future for FromFirstByte {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.sleep.is_none() {
            // hyper polls this each time a read leaves the head unfinished, so the first
            // byte is seen here as soon as it is read.
            let Some(first) = self.heads.first_byte() else {
                return Poll::Pending;
            };
            let deadline = tokio::time::Instant::from_std(first + self.timeout);
            self.sleep = Some(Box::pin(tokio::time::sleep_until(deadline)));
        }
        match self.sleep.as_mut() {
            Some(sleep) => sleep.as_mut().poll(cx),
            None => Poll::Pending,
        }
    }
}

impl hyper::rt::Sleep for FromFirstByte {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_bytes_of_a_head_being_waited_for_are_kept_and_at_most_the_limit() {
        let heads = Heads::new(8);
        heads.read(b"body of the previous request");
        assert_eq!(heads.first_byte(), None);
        heads.begin();
        assert_eq!(heads.first_byte(), None);
        heads.read(b"GET ");
        let first = heads.first_byte().expect("the first byte");
        heads.read(b"/ HTTP/1.1");
        assert_eq!(heads.first_byte(), Some(first));
        assert_eq!(heads.take(), b"GET / HT");
        heads.read(b"its body");
        assert_eq!(heads.take(), b"");
        heads.begin();
        assert_eq!(heads.first_byte(), None);
    }
}
