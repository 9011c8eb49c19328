//! Runs in flight, per user, so that `cancel_agent` from any of a user's connections reaches
//! the run, whichever connection started it.
//!
//! Only runs that wait are here: a run that finishes within its first poll (see
//! `connection::start_run`) cannot be cancelled and costs no entry.

use std::hash::BuildHasher;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use hashbrown::{DefaultHashBuilder, HashMap};
use tokio::sync::oneshot;

struct Entry {
    run_id: Arc<str>,
    /// The hub serial of the connection that started it.
    connection: u64,
    cancel: oneshot::Sender<()>,
}

type Shard = Mutex<HashMap<Arc<str>, Vec<Entry>, DefaultHashBuilder>>;

const SHARDS: usize = 16;

/// The runs in flight on this server, by user.
pub(crate) struct RunRegistry {
    shards: Box<[Shard]>,
    hasher: DefaultHashBuilder,
}

impl RunRegistry {
    pub(crate) fn new() -> RunRegistry {
        RunRegistry {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            hasher: DefaultHashBuilder::default(),
        }
    }

    fn shard(
        &self,
        user_id: &str,
    ) -> MutexGuard<'_, HashMap<Arc<str>, Vec<Entry>, DefaultHashBuilder>> {
        let index = (self.hasher.hash_one(user_id) >> 32) as usize % SHARDS;
        // Nothing panics while a shard is locked; if something did, the map is still whole.
        self.shards[index].lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records a run that waits; the returned guard removes it when the run ends (dropped with
    /// the run's task), and counts it in `in_flight` meanwhile.
    pub(crate) fn register(
        self: &Arc<Self>,
        user_id: &Arc<str>,
        run_id: &Arc<str>,
        connection: u64,
        cancel: oneshot::Sender<()>,
        in_flight: &Arc<AtomicUsize>,
    ) -> RunGuard {
        in_flight.fetch_add(1, Ordering::Relaxed);
        self.shard(user_id)
            .entry(Arc::clone(user_id))
            .or_default()
            .push(Entry {
                run_id: Arc::clone(run_id),
                connection,
                cancel,
            });
        RunGuard {
            registry: Arc::clone(self),
            user_id: Arc::clone(user_id),
            run_id: Arc::clone(run_id),
            in_flight: Arc::clone(in_flight),
        }
    }

    /// Cancels `user_id`'s run `run_id`, or, for `None`, every run `connection` started;
    /// whether any run was cancelled.
    pub(crate) fn cancel(&self, user_id: &str, run_id: Option<&str>, connection: u64) -> bool {
        let mut shard = self.shard(user_id);
        let Some(runs) = shard.get_mut(user_id) else {
            return false;
        };
        let mut cancelled = false;
        let mut i = 0;
        while let Some(entry) = runs.get(i) {
            let hit = match run_id {
                Some(id) => &*entry.run_id == id,
                None => entry.connection == connection,
            };
            if hit {
                // A run that is ending as we cancel it has dropped its receiver: it counts as
                // found (the client asked to stop a run that is stopping anyway).
                let _ = runs.swap_remove(i).cancel.send(());
                cancelled = true;
                if run_id.is_some() {
                    break;
                }
            } else {
                i += 1;
            }
        }
        if runs.is_empty() {
            shard.remove(user_id);
        }
        cancelled
    }

    fn finished(&self, user_id: &str, run_id: &str) {
        let mut shard = self.shard(user_id);
        if let Some(runs) = shard.get_mut(user_id) {
            runs.retain(|entry| &*entry.run_id != run_id);
            if runs.is_empty() {
                shard.remove(user_id);
            }
        }
    }

    /// Runs in flight on this server.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| {
                s.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .values()
                    .map(Vec::len)
                    .sum::<usize>()
            })
            .sum()
    }
}

/// Held by a run's task: removes the run from the registry when the task ends.
pub(crate) struct RunGuard {
    registry: Arc<RunRegistry>,
    user_id: Arc<str>,
    run_id: Arc<str>,
    in_flight: Arc<AtomicUsize>,
}

impl Drop for RunGuard {
    fn drop(&mut self) {
        self.registry.finished(&self.user_id, &self.run_id);
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cancel_by_id_reaches_any_connection_of_the_user_and_none_of_another() {
        let registry = Arc::new(RunRegistry::new());
        let (alice, bob): (Arc<str>, Arc<str>) = (Arc::from("alice"), Arc::from("bob"));
        let (run_a, run_b): (Arc<str>, Arc<str>) = (Arc::from("run_a"), Arc::from("run_b"));
        let counter = Arc::new(AtomicUsize::new(0));
        let (tx_a, mut rx_a) = oneshot::channel();
        let (tx_b, mut rx_b) = oneshot::channel();
        let guard_a = registry.register(&alice, &run_a, 1, tx_a, &counter);
        let _guard_b = registry.register(&bob, &run_b, 2, tx_b, &counter);
        assert_eq!(counter.load(Ordering::Relaxed), 2);
        // Bob cannot cancel Alice's run, even knowing its id.
        assert!(!registry.cancel("bob", Some("run_a"), 2));
        assert!(rx_a.try_recv().is_err());
        // Alice can, from another of her connections (7).
        assert!(registry.cancel("alice", Some("run_a"), 7));
        assert_eq!(rx_a.try_recv(), Ok(()));
        assert!(!registry.cancel("alice", Some("run_a"), 7));
        drop(guard_a);
        assert_eq!(counter.load(Ordering::Relaxed), 1);
        assert!(rx_b.try_recv().is_err());
        assert_eq!(registry.len(), 1);
    }

    #[test]
    fn cancel_without_id_stops_only_the_connections_own_runs() {
        let registry = Arc::new(RunRegistry::new());
        let user: Arc<str> = Arc::from("carol");
        let counter = Arc::new(AtomicUsize::new(0));
        let mut receivers = Vec::new();
        let mut guards = Vec::new();
        for (i, connection) in [1, 1, 2].into_iter().enumerate() {
            let (tx, rx) = oneshot::channel();
            let run_id: Arc<str> = Arc::from(format!("run_{i}"));
            guards.push(registry.register(&user, &run_id, connection, tx, &counter));
            receivers.push(rx);
        }
        assert!(registry.cancel("carol", None, 1));
        let got: Vec<bool> = receivers
            .iter_mut()
            .map(|rx| rx.try_recv().is_ok())
            .collect();
        assert_eq!(got, [true, true, false]);
        assert!(!registry.cancel("carol", None, 1));
        drop(guards);
        assert_eq!(registry.len(), 0);
        assert_eq!(counter.load(Ordering::Relaxed), 0);
    }
}
