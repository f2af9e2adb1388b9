//! A stream made from a future that hands items out one at a time: what a pooled `fetch_many`
//! needs, its stream borrowing from a connection the future acquired and owns. The same
//! technique as sqlx's own pool executor (`sqlx_core::ext::async_stream`), in a few lines, so
//! that the adapter does not depend on sqlx-core's internals.

use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use futures_core::Stream;
use futures_core::future::BoxFuture;
use sqlx::Error;

/// Where the future leaves its next item.
type Slot<T> = Arc<Mutex<Option<T>>>;

/// Hands one item at a time from the future to the stream.
pub(crate) struct Yielder<T> {
    slot: Slot<T>,
}

impl<T> Yielder<T> {
    /// Gives `item` to the stream's consumer and suspends the future until the stream is
    /// polled again. Only for the future given to [`FutureStream::new`] (anywhere else it
    /// would suspend its task for good: it registers no waker).
    pub(crate) async fn give(&self, item: T) {
        *self.slot.lock().unwrap_or_else(PoisonError::into_inner) = Some(item);
        let mut given = false;
        poll_fn(|_| {
            if given {
                Poll::Ready(())
            } else {
                given = true;
                Poll::Pending
            }
        })
        .await;
    }
}

/// The stream of the items a future [gives](Yielder::give), ending with the future (its
/// error, if any, as the last item).
pub(crate) struct FutureStream<'a, T> {
    slot: Slot<T>,
    future: Option<BoxFuture<'a, Result<(), Error>>>,
}

impl<'a, T: Send + 'a> FutureStream<'a, T> {
    pub(crate) fn new<F>(make: impl FnOnce(Yielder<T>) -> F) -> Self
    where
        F: Future<Output = Result<(), Error>> + Send + 'a,
    {
        let slot: Slot<T> = Arc::new(Mutex::new(None));
        let future = make(Yielder {
            slot: Arc::clone(&slot),
        });
        Self {
            slot,
            future: Some(Box::pin(future)),
        }
    }
}

impl<T> Stream for FutureStream<'_, T> {
    type Item = Result<T, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        let Some(future) = this.future.as_mut() else {
            return Poll::Ready(None);
        };
        match future.as_mut().poll(cx) {
            Poll::Ready(done) => {
                this.future = None;
                Poll::Ready(done.err().map(Err))
            }
            // Suspended in `give` (the item is there) or waiting on I/O (its waker is set).
            Poll::Pending => match this
                .slot
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take()
            {
                Some(item) => Poll::Ready(Some(Ok(item))),
                None => Poll::Pending,
            },
        }
    }
}
