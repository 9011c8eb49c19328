//! A connection's outbound queue: bounded, one sender (the hub's slot) and one receiver (the
//! connection task), and no allocation while it is empty.
//!
//! It replaces a tokio `mpsc` channel, which allocates a 32-slot block (about 1.3 KiB for
//! [`Outbound`](crate::hub::Outbound)) plus its semaphore state up front for every connection,
//! idle or not: here an idle connection costs one small `Arc`, and the deque grows only while
//! frames wait. Pushing and popping take an uncontended mutex; the receiver is woken only when
//! the queue goes from empty to non-empty.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use futures_util::task::AtomicWaker;

struct Inner<T> {
    state: Mutex<State<T>>,
    waker: AtomicWaker,
    capacity: usize,
}

struct State<T> {
    items: VecDeque<T>,
    /// The sender is gone: the receiver gets what is queued, then `None`.
    sender_gone: bool,
    /// The receiver is gone: sending fails.
    receiver_gone: bool,
    /// Why the sender ended the queue, when it said ([`Sender::end`]).
    ended: Option<Ended>,
}

/// Why the hub ended a connection's queue, other than a full queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ended {
    /// The user's stream can no longer be followed on this connection (its history was lost
    /// and it restarted in a new epoch, or the node missed some of its events): the client
    /// reconnects and resumes, and is answered `resumed` or `reset`.
    StreamInterrupted,
}

impl<T> Inner<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // Nothing panics while holding the lock; if something did, the queue is still
        // consistent.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Creates a queue holding at most `capacity` items.
pub(crate) fn channel<T>(capacity: usize) -> (Sender<T>, Receiver<T>) {
    let inner = Arc::new(Inner {
        state: Mutex::new(State {
            items: VecDeque::new(),
            sender_gone: false,
            receiver_gone: false,
            ended: None,
        }),
        waker: AtomicWaker::new(),
        capacity: capacity.max(1),
    });
    (Sender(Arc::clone(&inner)), Receiver(inner))
}

/// Why [`Sender::try_send`] failed.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum TrySendError {
    /// The queue holds `capacity` items.
    Full,
    /// The receiver is gone.
    Closed,
}

/// The queue is empty (and the sender may still be there).
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Empty;

/// The sending half; dropping it ends the queue once the receiver has drained it.
pub(crate) struct Sender<T>(Arc<Inner<T>>);

impl<T> Sender<T> {
    /// Queues `item` unless the queue is full or the receiver is gone.
    pub(crate) fn try_send(&self, item: T) -> Result<(), TrySendError> {
        let mut state = self.0.lock();
        if state.receiver_gone {
            return Err(TrySendError::Closed);
        }
        if state.items.len() >= self.0.capacity {
            return Err(TrySendError::Full);
        }
        let was_empty = state.items.is_empty();
        state.items.push_back(item);
        drop(state);
        // A non-empty queue has already woken the receiver, which drains it before it waits
        // again.
        if was_empty {
            self.0.waker.wake();
        }
        Ok(())
    }
}

impl<T> Sender<T> {
    /// Ends the queue saying why: the receiver gets what is queued, then `None`, and
    /// [`Receiver::ended`] says `why`.
    pub(crate) fn end(self, why: Ended) {
        self.0.lock().ended = Some(why);
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        self.0.lock().sender_gone = true;
        self.0.waker.wake();
    }
}

/// The receiving half.
pub(crate) struct Receiver<T>(Arc<Inner<T>>);

impl<T> Receiver<T> {
    /// The next item; `None` once the sender is gone and the queue is drained.
    pub(crate) async fn recv(&mut self) -> Option<T> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<T>> {
        if let Some(item) = self.0.lock().items.pop_front() {
            return Poll::Ready(Some(item));
        }
        // Register, then look again: an item queued in between wakes the new waker.
        self.0.waker.register(cx.waker());
        let mut state = self.0.lock();
        match state.items.pop_front() {
            Some(item) => Poll::Ready(Some(item)),
            None if state.sender_gone => Poll::Ready(None),
            None => Poll::Pending,
        }
    }

    /// Forgets the waker registered by the last wait: items queued from now on do not wake
    /// the receiving task until it waits again. For a receiver that is running and will look
    /// at the queue before it waits (e.g. it produces the items itself), so the wake-up would
    /// only poll it once more for nothing.
    pub(crate) fn quiet(&mut self) {
        drop(self.0.waker.take());
    }

    /// Why the sender ended the queue, if it said.
    pub(crate) fn ended(&self) -> Option<Ended> {
        self.0.lock().ended
    }

    /// The next item if one is queued.
    pub(crate) fn try_recv(&mut self) -> Result<T, Empty> {
        self.0.lock().items.pop_front().ok_or(Empty)
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        let items = {
            let mut state = self.0.lock();
            state.receiver_gone = true;
            std::mem::take(&mut state.items)
        };
        // Queued items are dropped outside the lock.
        drop(items);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn delivers_in_order_then_ends_when_the_sender_goes() {
        let (tx, mut rx) = channel(3);
        assert_eq!(tx.try_send(1), Ok(()));
        assert_eq!(tx.try_send(2), Ok(()));
        assert_eq!(tx.try_send(3), Ok(()));
        assert_eq!(tx.try_send(4), Err(TrySendError::Full));
        assert_eq!(rx.recv().await, Some(1));
        assert_eq!(rx.try_recv(), Ok(2));
        drop(tx);
        assert_eq!(rx.recv().await, Some(3));
        assert_eq!(rx.recv().await, None);
        assert_eq!(rx.try_recv(), Err(Empty));
    }

    #[tokio::test]
    async fn a_waiting_receiver_is_woken() {
        let (tx, mut rx) = channel(8);
        let task = tokio::spawn(async move {
            let mut got = Vec::new();
            while let Some(item) = rx.recv().await {
                got.push(item);
            }
            got
        });
        for i in 0..5 {
            tokio::task::yield_now().await;
            assert_eq!(tx.try_send(i), Ok(()));
        }
        drop(tx);
        assert_eq!(task.await.expect("join"), vec![0, 1, 2, 3, 4]);
    }

    #[tokio::test]
    async fn a_quiet_receiver_still_gets_what_was_queued() {
        let (tx, mut rx) = channel(4);
        // Registers the task's waker, then forgets it.
        let waiting = poll_fn(|cx| Poll::Ready(rx.poll_recv(cx).is_pending())).await;
        assert!(waiting);
        rx.quiet();
        assert_eq!(tx.try_send(1), Ok(()));
        assert_eq!(tx.try_send(2), Ok(()));
        assert_eq!(rx.recv().await, Some(1));
        assert_eq!(rx.try_recv(), Ok(2));
        // Waiting again registers again: a later item wakes the waiting task.
        let task = tokio::spawn(async move { rx.recv().await });
        tokio::task::yield_now().await;
        assert_eq!(tx.try_send(3), Ok(()));
        assert_eq!(task.await.expect("join"), Some(3));
    }

    #[test]
    fn sending_to_a_dropped_receiver_fails() {
        let (tx, rx) = channel::<u8>(1);
        drop(rx);
        assert_eq!(tx.try_send(1), Err(TrySendError::Closed));
    }
}
