//! Tiny single-threaded synchronisation primitives for shard-local tasks: a wake-up flag with
//! one waiting task ([`Notify`]) and a one-shot completion slot for append acknowledgements
//! ([`AckSlot`]). Shard-local (`!Send`): they live on the shard that owns the store.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

/// A level-triggered wake-up for one background task.
#[derive(Debug, Default)]
pub struct Notify {
    flag: Cell<bool>,
    waker: RefCell<Option<Waker>>,
}

impl Notify {
    pub fn notify(&self) {
        self.flag.set(true);
        if let Some(w) = self.waker.borrow_mut().take() {
            w.wake();
        }
    }
    /// Completes once `notify` has been called since the last completion.
    pub fn wait(&self) -> NotifyWait<'_> {
        NotifyWait { n: self }
    }
}

pub struct NotifyWait<'a> {
    n: &'a Notify,
}

impl Future for NotifyWait<'_> {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.n.flag.replace(false) {
            return Poll::Ready(());
        }
        *self.n.waker.borrow_mut() = Some(cx.waker().clone());
        Poll::Pending
    }
}

/// Why an append was not acknowledged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AckError {
    /// The log failed for good ([`crate::StoreError::LogFailed`]).
    Failed(String),
    /// The log stalled on a transient fault ([`crate::StoreError::Stalled`]); the record may
    /// still be stored once it clears.
    Stalled(String),
}

impl From<AckError> for crate::StoreError {
    fn from(e: AckError) -> Self {
        match e {
            AckError::Failed(why) => crate::StoreError::LogFailed(why),
            AckError::Stalled(why) => crate::StoreError::StalledQueued(why),
        }
    }
}

/// Where the flusher posts the outcome of one append.
#[derive(Debug, Default)]
pub struct AckSlot {
    result: RefCell<Option<Result<(), AckError>>>,
    waker: RefCell<Option<Waker>>,
}

impl AckSlot {
    pub fn complete(&self, r: Result<(), AckError>) {
        *self.result.borrow_mut() = Some(r);
        if let Some(w) = self.waker.borrow_mut().take() {
            w.wake();
        }
    }
}

/// Future of one acknowledgement.
pub struct AckWait(pub Rc<AckSlot>);

impl Future for AckWait {
    type Output = Result<(), AckError>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if let Some(r) = self.0.result.borrow_mut().take() {
            return Poll::Ready(r);
        }
        *self.0.waker.borrow_mut() = Some(cx.waker().clone());
        Poll::Pending
    }
}
