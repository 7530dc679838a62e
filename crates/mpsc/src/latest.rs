//! A slot that holds only the latest value sent, taken once by its receiver: Engine.IO's
//! volatile packets (a newer one replaces one not yet written), in place of the
//! `tokio::sync::watch` channel engineioxide used. A watch channel's shared state carries nine
//! `Notify`s for its many receivers, about 0.5 KiB per socket whether or not anything volatile
//! is ever sent; this slot has one receiver and one waker.
use std::fmt;
use std::future::poll_fn;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

/// Creates an empty slot.
pub fn channel<T>() -> (Sender<T>, Receiver<T>) {
    let shared = Arc::new(Mutex::new(State {
        value: None,
        waker: None,
        tx_alive: true,
        rx_alive: true,
    }));
    (
        Sender {
            shared: shared.clone(),
        },
        Receiver { shared },
    )
}

struct State<T> {
    value: Option<T>,
    waker: Option<Waker>,
    tx_alive: bool,
    rx_alive: bool,
}

fn lock<T>(shared: &Mutex<State<T>>) -> MutexGuard<'_, State<T>> {
    // No code path panics while holding the lock; a poisoned state is still consistent.
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The sending half.
pub struct Sender<T> {
    shared: Arc<Mutex<State<T>>>,
}

impl<T> Sender<T> {
    /// Puts `value` in the slot, replacing one the receiver has not taken yet; gives it back
    /// when the receiver is gone.
    pub fn send(&self, value: T) -> Result<(), T> {
        let (replaced, waker) = {
            let mut state = lock(&self.shared);
            if !state.rx_alive {
                return Err(value);
            }
            (state.value.replace(value), state.waker.take())
        };
        // Outside the lock: a waker or a value's destructor may do anything.
        drop(replaced);
        if let Some(waker) = waker {
            waker.wake();
        }
        Ok(())
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let waker = {
            let mut state = lock(&self.shared);
            state.tx_alive = false;
            state.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

impl<T> fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = lock(&self.shared);
        f.debug_struct("latest::Sender")
            .field("full", &state.value.is_some())
            .field("receiver", &state.rx_alive)
            .finish()
    }
}

/// The receiving half.
pub struct Receiver<T> {
    shared: Arc<Mutex<State<T>>>,
}

impl<T> Receiver<T> {
    /// The value sent since the last take; `None` once the slot is empty and the sender gone.
    pub async fn take(&mut self) -> Option<T> {
        poll_fn(|cx| self.poll_take(cx)).await
    }

    /// Polls for a value, registering the task to be woken when one is sent.
    pub fn poll_take(&mut self, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let mut state = lock(&self.shared);
        if let Some(value) = state.value.take() {
            return Poll::Ready(Some(value));
        }
        if !state.tx_alive {
            return Poll::Ready(None);
        }
        match &state.waker {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            _ => state.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        let value = {
            let mut state = lock(&self.shared);
            state.rx_alive = false;
            state.waker = None;
            state.value.take()
        };
        drop(value);
    }
}

impl<T> fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = lock(&self.shared);
        f.debug_struct("latest::Receiver")
            .field("full", &state.value.is_some())
            .field("sender", &state.tx_alive)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_newer_value_replaces_one_not_taken() {
        let (tx, mut rx) = channel();
        assert!(tx.send(1).is_ok());
        assert!(tx.send(2).is_ok());
        assert_eq!(rx.take().await, Some(2));
        // Taken once: the slot is empty until the next send.
        let waiting = tokio::time::timeout(Duration::from_millis(20), rx.take()).await;
        assert!(waiting.is_err(), "an empty slot waits");
    }

    #[tokio::test]
    async fn a_waiting_receiver_is_woken_by_a_send() {
        let (tx, mut rx) = channel();
        let taken = tokio::spawn(async move { rx.take().await });
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(tx.send("volatile").is_ok());
        assert_eq!(taken.await.unwrap(), Some("volatile"));
    }

    #[tokio::test]
    async fn the_sender_gone_ends_the_receiver_after_the_last_value() {
        let (tx, mut rx) = channel();
        assert!(tx.send(7).is_ok());
        let waiting = tokio::spawn(async move { (rx.take().await, rx.take().await) });
        drop(tx);
        assert_eq!(waiting.await.unwrap(), (Some(7), None));
    }

    #[test]
    fn a_send_without_a_receiver_gives_the_value_back() {
        let (tx, rx) = channel();
        drop(rx);
        assert_eq!(tx.send(3), Err(3));
    }
}
