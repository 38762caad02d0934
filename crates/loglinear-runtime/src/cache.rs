//! A cache of compiled kernels keyed by specialisation, so that each specialisation compiles once.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

type Slot<V> = Arc<Mutex<Option<Arc<V>>>>;

/// Compiled kernels by key (e.g. `(variant, K, V, C)`).
///
/// The map sits behind a `Mutex` held only to find or insert a key's slot; each slot has its own lock held while
/// that key compiles. So two threads asking for the same key compile it once, while different keys compile
/// concurrently and already-compiled keys are served without waiting. A failed compile leaves the slot empty
/// (the next lookup retries) and returns the error.
pub struct KernelCache<K, V> {
    map: Mutex<HashMap<K, Slot<V>>>,
    compiles: AtomicU64,
}

impl<K, V> std::fmt::Debug for KernelCache<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KernelCache").field("compiles", &self.compiles.load(Ordering::Relaxed)).finish()
    }
}

impl<K, V> Default for KernelCache<K, V> {
    fn default() -> Self {
        KernelCache { map: Mutex::new(HashMap::new()), compiles: AtomicU64::new(0) }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock cannot leave the map or a slot half-updated (single assignments).
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl<K: Eq + Hash + Clone, V> KernelCache<K, V> {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// The kernel for `key`, compiling it with `compile` when absent. `compile` runs at most once per key
    /// (unless it fails).
    pub fn get_or_compile<E>(&self, key: &K, compile: impl FnOnce(&K) -> Result<V, E>) -> Result<Arc<V>, E> {
        let slot = lock(&self.map).entry(key.clone()).or_default().clone();
        let mut guard = lock(&slot);
        if let Some(v) = guard.as_ref() {
            return Ok(v.clone());
        }
        let v = Arc::new(compile(key)?);
        self.compiles.fetch_add(1, Ordering::Relaxed);
        *guard = Some(v.clone());
        Ok(v)
    }

    /// The kernel for `key` if it is compiled.
    pub fn get(&self, key: &K) -> Option<Arc<V>> {
        let slot = lock(&self.map).get(key).cloned()?;
        let g = lock(&slot);
        g.clone()
    }

    /// Number of successful compiles done through this cache.
    pub fn compile_count(&self) -> u64 {
        self.compiles.load(Ordering::Relaxed)
    }

    /// Number of compiled kernels held.
    pub fn len(&self) -> usize {
        let slots: Vec<Slot<V>> = lock(&self.map).values().cloned().collect();
        slots.iter().filter(|s| lock(s).is_some()).count()
    }

    /// True when no kernel is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops every cached kernel (kernels still referenced elsewhere stay alive until those references drop).
    pub fn clear(&self) {
        lock(&self.map).clear();
    }
}
