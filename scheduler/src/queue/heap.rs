//! A binary heap ordered by a caller-given `less`, with removal and update by key (upstream
//! `backend/heap`), for the active queue whose order comes from the QueueSort plugin.

use std::collections::HashMap;
use std::hash::Hash;

/// A keyed min-heap under `less`.
pub struct KeyedHeap<K, V> {
    items: Vec<(K, V)>,
    index: HashMap<K, usize>,
}

impl<K: Clone + Eq + Hash, V> Default for KeyedHeap<K, V> {
    fn default() -> Self {
        Self {
            items: Vec::new(),
            index: HashMap::new(),
        }
    }
}

impl<K: Clone + Eq + Hash, V> KeyedHeap<K, V> {
    /// How many items there are.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether `key` is in the heap.
    pub fn contains(&self, key: &K) -> bool {
        self.index.contains_key(key)
    }

    /// The item under `key`.
    pub fn get(&self, key: &K) -> Option<&V> {
        self.index.get(key).map(|i| &self.items[*i].1)
    }

    /// Inserts or replaces the item under `key`.
    pub fn push(&mut self, key: K, value: V, less: &impl Fn(&V, &V) -> bool) {
        if let Some(&i) = self.index.get(&key) {
            self.items[i].1 = value;
            self.fix(i, less);
            return;
        }
        self.items.push((key.clone(), value));
        let i = self.items.len() - 1;
        self.index.insert(key, i);
        self.up(i, less);
    }

    /// Removes and returns the least item.
    pub fn pop(&mut self, less: &impl Fn(&V, &V) -> bool) -> Option<V> {
        let key = self.items.first()?.0.clone();
        self.remove(&key, less)
    }

    /// Removes the item under `key`.
    pub fn remove(&mut self, key: &K, less: &impl Fn(&V, &V) -> bool) -> Option<V> {
        let i = self.index.remove(key)?;
        let last = self.items.len() - 1;
        self.items.swap(i, last);
        let (_, value) = self.items.pop()?;
        if i < self.items.len() {
            self.index.insert(self.items[i].0.clone(), i);
            self.fix(i, less);
        }
        Some(value)
    }

    fn fix(&mut self, i: usize, less: &impl Fn(&V, &V) -> bool) {
        if !self.up(i, less) {
            self.down(i, less);
        }
    }

    fn swap(&mut self, a: usize, b: usize) {
        self.items.swap(a, b);
        self.index.insert(self.items[a].0.clone(), a);
        self.index.insert(self.items[b].0.clone(), b);
    }

    fn up(&mut self, mut i: usize, less: &impl Fn(&V, &V) -> bool) -> bool {
        let start = i;
        while i > 0 {
            let parent = (i - 1) / 2;
            if !less(&self.items[i].1, &self.items[parent].1) {
                break;
            }
            self.swap(i, parent);
            i = parent;
        }
        i != start
    }

    fn down(&mut self, mut i: usize, less: &impl Fn(&V, &V) -> bool) {
        loop {
            let (left, right) = (2 * i + 1, 2 * i + 2);
            let mut smallest = i;
            if left < self.items.len() && less(&self.items[left].1, &self.items[smallest].1) {
                smallest = left;
            }
            if right < self.items.len() && less(&self.items[right].1, &self.items[smallest].1) {
                smallest = right;
            }
            if smallest == i {
                return;
            }
            self.swap(i, smallest);
            i = smallest;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pops_in_order_with_updates_and_removals() {
        let less = |a: &i32, b: &i32| a < b;
        let mut heap = KeyedHeap::default();
        for (key, value) in [("a", 5), ("b", 3), ("c", 8), ("d", 1), ("e", 9)] {
            heap.push(key, value, &less);
        }
        heap.push("c", 0, &less);
        assert_eq!(heap.remove(&"b", &less), Some(3));
        assert_eq!(heap.get(&"a"), Some(&5));
        let order: Vec<i32> = std::iter::from_fn(|| heap.pop(&less)).collect();
        assert_eq!(order, [0, 1, 5, 9]);
        assert_eq!(heap.len(), 0);
    }
}
