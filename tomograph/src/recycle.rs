//! Tag vectors handed back from the reporter to the application's threads.
//!
//! A span's tags are allocated on the thread that records it and dropped on a backend's
//! thread. With glibc, freeing memory on another thread than the one that allocated it ends
//! in the arena's lock, which both threads then fight over on every span (it dominated the
//! profile of SQL statement spans, which carry ≈ 8 tags). Instead, once every backend has
//! seen a batch, its spans' tag vectors are cleared and parked here, and new SQL spans take
//! one: no allocation and no cross-thread free on the hot path. Bounded; surplus vectors are
//! simply freed.

use std::sync::LazyLock;

use crossbeam_queue::ArrayQueue;
use thin_vec::ThinVec;

use crate::model::{Span, Tag};

/// Vectors kept at most.
const POOL_SIZE: usize = 4096;
/// Vectors larger than this are not kept (an unusual span should not pin memory).
const MAX_KEPT_CAPACITY: usize = 32;

static TAGS: LazyLock<ArrayQueue<ThinVec<Tag>>> = LazyLock::new(|| ArrayQueue::new(POOL_SIZE));

/// An empty tag vector with room for at least `capacity` tags.
fn tags(capacity: usize) -> ThinVec<Tag> {
    match TAGS.pop() {
        Some(mut tags) => {
            tags.reserve(capacity);
            tags
        }
        None => ThinVec::with_capacity(capacity),
    }
}

/// Room for `wanted` more tags in `tags`: a vector handed back by the reporter when `tags`
/// has none yet, rather than one allocated here and freed on a backend's thread.
pub(crate) fn reserve(tags: &mut ThinVec<Tag>, wanted: usize) {
    if tags.capacity() == 0 {
        *tags = self::tags(wanted);
    } else {
        tags.reserve(wanted);
    }
}

/// Parks the tag vectors of spans every backend is done with, then drops the spans where they
/// lie (moving each 128-byte span out of the batch to drop it costs a copy per span).
pub(crate) fn spans(mut spans: Vec<Span>) {
    for span in &mut spans {
        if span.tags.capacity() > 0 && span.tags.capacity() <= MAX_KEPT_CAPACITY {
            let mut tags = std::mem::take(&mut span.tags);
            tags.clear();
            let _ = TAGS.push(tags);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Endpoint, SpanId, Timestamp, TraceId};

    #[test]
    fn delivered_tag_vectors_come_back_empty() {
        let span = Span::new(
            TraceId::from_u64(1).unwrap(),
            SpanId::from_u64(1).unwrap(),
            "s",
            Endpoint::new("svc"),
            Timestamp::now(),
        )
        .with_tag("a", 1)
        .with_tag("b", "two");
        let storage = span.tags.as_ptr();
        spans(vec![span]);
        let mut parked = Vec::new();
        let mut found = false;
        while let Some(tags) = TAGS.pop() {
            if tags.as_ptr() == storage {
                assert!(tags.is_empty());
                found = true;
            }
            parked.push(tags);
        }
        for tags in parked {
            let _ = TAGS.push(tags);
        }
        assert!(found, "the span's tag vector was parked for reuse");
        assert!(tags(2).capacity() >= 2);
    }
}
