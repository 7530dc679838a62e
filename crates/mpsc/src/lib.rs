//! A bounded multi-producer, single-consumer queue that holds memory only for what is waiting.
//!
//! It is the outgoing packet queue of each Engine.IO socket (see `vendor/engineioxide`), in
//! place of `tokio::sync::mpsc`. Tokio's channel stores its slots in blocks of 32 and keeps the
//! blocks it has allocated for the life of the channel: for Engine.IO's packet buffers (about
//! 144 bytes each) that is 4.6 KiB per block, and a socket that has carried more than 32 packets
//! keeps two of them, 9 KiB per connection at rest. This queue is a `VecDeque` behind a mutex
//! that gives its buffer back whenever it drains, so a socket at rest holds none.
//!
//! The API is the subset of `tokio::sync::mpsc` that Engine.IO uses, with the same semantics and
//! the same error types, so it drops in: `try_send`, `try_reserve` and [`Permit::send`],
//! `is_closed` and `closed` on the sender; `recv`, `poll_recv`, `try_recv` and `close` on the
//! receiver. Capacity counts queued items and outstanding permits together, as tokio's does.
use std::collections::VecDeque;
use std::fmt;
use std::future::poll_fn;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

use tokio::sync::Notify;

pub mod latest;

pub use tokio::sync::mpsc::error::{SendError, TryRecvError, TrySendError};

/// Creates a queue that holds at most `capacity` items (queued plus reserved).
///
/// # Panics
/// If `capacity` is zero, as `tokio::sync::mpsc::channel` does.
pub fn channel<T>(capacity: usize) -> (Sender<T>, Receiver<T>) {
    assert!(capacity > 0, "mpsc bounded channel requires capacity > 0");
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            queue: VecDeque::new(),
            reserved: 0,
            senders: 1,
            rx_closed: false,
            rx_waker: None,
            send_waiters: 0,
        }),
        capacity,
        closed: Notify::new(),
        space: Notify::new(),
    });
    (
        Sender {
            shared: shared.clone(),
        },
        Receiver { shared },
    )
}

struct Shared<T> {
    state: Mutex<State<T>>,
    capacity: usize,
    /// Woken when the receiver closes or is dropped (`Sender::closed`).
    closed: Notify,
    /// Woken when a slot frees up or the receiver closes, for senders waiting in `send`.
    space: Notify,
}

struct State<T> {
    queue: VecDeque<T>,
    /// Permits handed out and not yet used.
    reserved: usize,
    senders: usize,
    rx_closed: bool,
    rx_waker: Option<Waker>,
    /// Senders waiting in `send` for a slot.
    send_waiters: usize,
}

impl<T> Shared<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // No code path panics while holding the lock; a poisoned state is still consistent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Wakes the senders waiting in `send` when a slot has been freed (lock released first).
    fn freed(&self, state: MutexGuard<'_, State<T>>) {
        let waiting = state.send_waiters > 0;
        drop(state);
        if waiting {
            self.space.notify_waiters();
        }
    }

    /// Queues an item (its slot already counted) and wakes the receiver.
    fn push(&self, mut state: MutexGuard<'_, State<T>>, item: T) {
        state.queue.push_back(item);
        let waker = state.rx_waker.take();
        drop(state);
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

/// The sending half. Cloning it adds a sender; the receiver sees the end of the stream when
/// every sender is gone and the queue is empty.
pub struct Sender<T> {
    shared: Arc<Shared<T>>,
}

impl<T> Sender<T> {
    /// Queues `item` now, or gives it back: `Full` when `capacity` items are queued or reserved,
    /// `Closed` when the receiver is closed or gone.
    pub fn try_send(&self, item: T) -> Result<(), TrySendError<T>> {
        let state = self.shared.lock();
        if state.rx_closed {
            return Err(TrySendError::Closed(item));
        }
        if state.queue.len() + state.reserved >= self.shared.capacity {
            return Err(TrySendError::Full(item));
        }
        self.shared.push(state, item);
        Ok(())
    }

    /// Queues `item`, waiting for a slot while the queue is full; gives it back if the receiver
    /// is closed or gone.
    pub async fn send(&self, item: T) -> Result<(), SendError<T>> {
        let mut item = item;
        // Counted, and the wake-up registered, before each attempt: a slot freed between a
        // failed attempt and the wait is not missed.
        let _waiting = Waiting::new(&self.shared);
        loop {
            let notified = self.shared.space.notified();
            let mut notified = std::pin::pin!(notified);
            notified.as_mut().enable();
            match self.try_send(item) {
                Ok(()) => return Ok(()),
                Err(TrySendError::Closed(back)) => return Err(SendError(back)),
                Err(TrySendError::Full(back)) => item = back,
            }
            notified.await;
        }
    }

    /// Reserves one slot, to be filled by [`Permit::send`] (or given back when the permit drops).
    pub fn try_reserve(&self) -> Result<Permit<'_, T>, TrySendError<()>> {
        let mut state = self.shared.lock();
        if state.rx_closed {
            return Err(TrySendError::Closed(()));
        }
        if state.queue.len() + state.reserved >= self.shared.capacity {
            return Err(TrySendError::Full(()));
        }
        state.reserved += 1;
        Ok(Permit {
            shared: Some(&self.shared),
        })
    }

    /// True once the receiver has been closed or dropped.
    pub fn is_closed(&self) -> bool {
        self.shared.lock().rx_closed
    }

    /// Completes when the receiver is closed or dropped.
    pub async fn closed(&self) {
        loop {
            let notified = self.shared.closed.notified();
            let mut notified = std::pin::pin!(notified);
            // Registered before the check, so a close between the check and the await is seen.
            notified.as_mut().enable();
            if self.is_closed() {
                return;
            }
            notified.await;
        }
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        self.shared.lock().senders += 1;
        Self {
            shared: self.shared.clone(),
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        state.senders -= 1;
        let waker = (state.senders == 0)
            .then(|| state.rx_waker.take())
            .flatten();
        drop(state);
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

impl<T> fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.shared.lock();
        f.debug_struct("Sender")
            .field("queued", &state.queue.len())
            .field("reserved", &state.reserved)
            .field("capacity", &self.shared.capacity)
            .field("closed", &state.rx_closed)
            .finish()
    }
}

/// Counts a sender waiting in `send` while it lives (the count is kept if the future is dropped
/// mid-wait).
struct Waiting<'a, T> {
    shared: &'a Shared<T>,
}

impl<'a, T> Waiting<'a, T> {
    fn new(shared: &'a Shared<T>) -> Self {
        shared.lock().send_waiters += 1;
        Self { shared }
    }
}

impl<T> Drop for Waiting<'_, T> {
    fn drop(&mut self) {
        self.shared.lock().send_waiters -= 1;
    }
}

/// One reserved slot in the queue.
pub struct Permit<'a, T> {
    /// `None` once used.
    shared: Option<&'a Shared<T>>,
}

impl<T> Permit<'_, T> {
    /// Queues `item` in the reserved slot. As with tokio's permits, this succeeds even if the
    /// receiver closed after the reservation: the item waits for it to drain or drop.
    pub fn send(mut self, item: T) {
        if let Some(shared) = self.shared.take() {
            let mut state = shared.lock();
            state.reserved -= 1;
            shared.push(state, item);
        }
    }
}

impl<T> Drop for Permit<'_, T> {
    fn drop(&mut self) {
        if let Some(shared) = self.shared.take() {
            let mut state = shared.lock();
            state.reserved -= 1;
            shared.freed(state);
        }
    }
}

impl<T> fmt::Debug for Permit<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Permit").finish_non_exhaustive()
    }
}

/// The receiving half.
pub struct Receiver<T> {
    shared: Arc<Shared<T>>,
}

impl<T> Receiver<T> {
    /// The next item; `None` once the queue is empty and either closed or without senders.
    pub async fn recv(&mut self) -> Option<T> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// Polls for the next item, registering the task to be woken when one arrives.
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let mut state = self.shared.lock();
        if let Some(item) = pop(&mut state) {
            self.shared.freed(state);
            return Poll::Ready(Some(item));
        }
        if state.rx_closed || state.senders == 0 {
            return Poll::Ready(None);
        }
        match &state.rx_waker {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            _ => state.rx_waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    /// The next item if one is queued: `Empty` when none is, `Disconnected` when none will be.
    pub fn try_recv(&mut self) -> Result<T, TryRecvError> {
        let mut state = self.shared.lock();
        match pop(&mut state) {
            Some(item) => {
                self.shared.freed(state);
                Ok(item)
            }
            None if state.rx_closed || state.senders == 0 => Err(TryRecvError::Disconnected),
            None => Err(TryRecvError::Empty),
        }
    }

    /// Refuses further sends; what is queued can still be received.
    pub fn close(&mut self) {
        self.shared.lock().rx_closed = true;
        self.shared.closed.notify_waiters();
        self.shared.space.notify_waiters();
    }
}

/// Takes the oldest item, and gives the buffer back once the queue is empty: a socket at rest
/// holds nothing (an allocation per burst costs far less than the message it carries).
fn pop<T>(state: &mut State<T>) -> Option<T> {
    let item = state.queue.pop_front()?;
    if state.queue.is_empty() {
        state.queue = VecDeque::new();
    }
    Some(item)
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        let queued = {
            let mut state = self.shared.lock();
            state.rx_closed = true;
            std::mem::take(&mut state.queue)
        };
        self.shared.closed.notify_waiters();
        self.shared.space.notify_waiters();
        // Items are dropped outside the lock: their destructors may do anything.
        drop(queued);
    }
}

impl<T> fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.shared.lock();
        f.debug_struct("Receiver")
            .field("queued", &state.queue.len())
            .field("capacity", &self.shared.capacity)
            .field("closed", &state.rx_closed)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn items_come_out_in_order() {
        let (tx, mut rx) = channel(8);
        for i in 0..5 {
            assert!(tx.try_send(i).is_ok());
        }
        let got: Vec<i32> = std::iter::from_fn(|| rx.try_recv().ok()).collect();
        assert_eq!(got, vec![0, 1, 2, 3, 4]);
        assert!(matches!(rx.try_recv(), Err(TryRecvError::Empty)));
    }

    #[test]
    fn full_counts_queued_items_and_permits() {
        let (tx, mut rx) = channel(3);
        tx.try_send(1).ok();
        let permit = tx.try_reserve().ok();
        assert!(permit.is_some());
        tx.try_send(2).ok();
        assert!(matches!(tx.try_send(3), Err(TrySendError::Full(3))));
        assert!(matches!(tx.try_reserve(), Err(TrySendError::Full(()))));
        // A dropped permit gives its slot back; a used one fills it.
        drop(permit);
        let permit = tx.try_reserve();
        assert!(permit.is_ok());
        if let Ok(p) = permit {
            p.send(9);
        }
        assert!(matches!(tx.try_send(4), Err(TrySendError::Full(4))));
        assert_eq!(rx.try_recv().ok(), Some(1));
        assert_eq!(rx.try_recv().ok(), Some(2));
        assert_eq!(rx.try_recv().ok(), Some(9));
        assert!(tx.try_send(4).is_ok());
    }

    #[test]
    fn close_refuses_sends_and_keeps_what_is_queued() {
        let (tx, mut rx) = channel(4);
        tx.try_send("a").ok();
        let permit = tx.try_reserve().ok();
        assert!(!tx.is_closed());
        rx.close();
        assert!(tx.is_closed());
        assert!(matches!(tx.try_send("b"), Err(TrySendError::Closed("b"))));
        assert!(matches!(tx.try_reserve(), Err(TrySendError::Closed(()))));
        // A permit taken before the close still delivers, as with tokio.
        if let Some(p) = permit {
            p.send("c");
        }
        assert_eq!(rx.try_recv().ok(), Some("a"));
        assert_eq!(rx.try_recv().ok(), Some("c"));
        assert!(matches!(rx.try_recv(), Err(TryRecvError::Disconnected)));
    }

    #[test]
    fn the_buffer_is_given_back_after_a_burst() {
        let (tx, mut rx) = channel(128);
        for i in 0..100 {
            tx.try_send([i; 16]).ok();
        }
        assert!(rx.shared.lock().queue.capacity() >= 100);
        while rx.try_recv().is_ok() {}
        assert_eq!(rx.shared.lock().queue.capacity(), 0);
        // One at a time: each burst of one is allocated and given back.
        for i in 0..10 {
            tx.try_send([i; 16]).ok();
            assert_eq!(rx.try_recv().ok(), Some([i; 16]));
            assert_eq!(rx.shared.lock().queue.capacity(), 0);
        }
    }

    #[tokio::test]
    async fn recv_waits_for_a_send_from_another_task() {
        let (tx, mut rx) = channel(2);
        let sender = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            tx.try_send(7).ok();
            tx
        });
        assert_eq!(rx.recv().await, Some(7));
        // Every sender gone and nothing queued: the end of the stream.
        drop(sender.await);
        assert_eq!(rx.recv().await, None);
    }

    #[tokio::test]
    async fn recv_ends_when_the_last_clone_drops() {
        let (tx, mut rx) = channel::<u8>(2);
        let tx2 = tx.clone();
        drop(tx);
        let ended = tokio::spawn(async move { rx.recv().await });
        tokio::task::yield_now().await;
        drop(tx2);
        assert_eq!(ended.await.ok(), Some(None));
    }

    #[tokio::test]
    async fn closed_completes_on_close_and_on_drop() {
        let (tx, mut rx) = channel::<u8>(1);
        let waiter = {
            let tx = tx.clone();
            tokio::spawn(async move { tx.closed().await })
        };
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        rx.close();
        assert!(
            tokio::time::timeout(Duration::from_secs(5), waiter)
                .await
                .is_ok()
        );
        tx.closed().await;

        let (tx, rx) = channel::<u8>(1);
        let waiter = tokio::spawn(async move { tx.closed().await });
        tokio::task::yield_now().await;
        drop(rx);
        assert!(
            tokio::time::timeout(Duration::from_secs(5), waiter)
                .await
                .is_ok()
        );
    }

    #[tokio::test]
    async fn send_waits_for_a_slot_and_fails_once_closed() {
        let (tx, mut rx) = channel(1);
        assert!(tx.send(1).await.is_ok());
        let tx2 = tx.clone();
        let waiting = tokio::spawn(async move { tx2.send(2).await.is_ok() });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "a full queue makes send wait");
        assert_eq!(rx.recv().await, Some(1));
        assert_eq!(waiting.await.ok(), Some(true));
        assert_eq!(rx.recv().await, Some(2));

        // A sender waiting on a full queue is answered with its item when the receiver closes.
        tx.try_send(3).ok();
        let tx2 = tx.clone();
        let refused = tokio::spawn(async move { tx2.send(4).await.map_err(|e| e.0) });
        tokio::task::yield_now().await;
        rx.close();
        assert_eq!(
            tokio::time::timeout(Duration::from_secs(5), refused)
                .await
                .ok()
                .and_then(Result::ok),
            Some(Err(4))
        );
        // No waiter is left counted.
        assert_eq!(rx.shared.lock().send_waiters, 0);
    }

    #[test]
    fn dropping_the_receiver_drops_what_is_queued() {
        let item = Arc::new(());
        let (tx, rx) = channel(4);
        tx.try_send(item.clone()).ok();
        assert_eq!(Arc::strong_count(&item), 2);
        drop(rx);
        assert_eq!(Arc::strong_count(&item), 1);
        assert!(tx.is_closed());
    }

    #[test]
    #[should_panic(expected = "capacity > 0")]
    fn zero_capacity_is_refused() {
        let _ = channel::<u8>(0);
    }

    /// Many producers on a multi-thread runtime, one consumer: nothing lost, nothing doubled,
    /// and each producer's items arrive in its own order.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_producers_lose_nothing() {
        let (tx, mut rx) = channel::<(usize, usize)>(16);
        let mut producers = Vec::new();
        for p in 0..4 {
            let tx = tx.clone();
            producers.push(tokio::spawn(async move {
                let mut i = 0;
                while i < 500 {
                    match tx.try_reserve() {
                        Ok(permit) => {
                            permit.send((p, i));
                            i += 1;
                        }
                        Err(TrySendError::Full(())) => tokio::task::yield_now().await,
                        Err(TrySendError::Closed(())) => return,
                    }
                }
            }));
        }
        drop(tx);
        let mut next = [0usize; 4];
        while let Some((p, i)) = rx.recv().await {
            assert_eq!(i, next[p], "producer {p} out of order");
            next[p] += 1;
        }
        assert_eq!(next, [500; 4]);
        for producer in producers {
            assert!(producer.await.is_ok());
        }
    }
}
