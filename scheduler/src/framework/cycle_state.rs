//! Data plugins share within one scheduling cycle (upstream `framework.CycleState`).

use std::any::Any;
use std::collections::{HashMap, HashSet};

/// A value a plugin stores in the cycle state. Cloneable, because preemption simulates removals on a copy.
pub trait StateData: Any + Send + Sync {
    /// A boxed copy.
    fn clone_data(&self) -> Box<dyn StateData>;
    /// Upcast for downcasting to the concrete type.
    fn as_any(&self) -> &dyn Any;
    /// Mutable upcast for downcasting to the concrete type.
    fn as_any_mut(&mut self) -> &mut dyn Any;
}

impl<T: Any + Clone + Send + Sync> StateData for T {
    fn clone_data(&self) -> Box<dyn StateData> {
        Box::new(self.clone())
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

/// Per-cycle storage keyed by plugin-chosen names, written in PreFilter/PreScore and read by Filter/Score
/// (which run on many nodes at once, so reads take `&self`).
#[derive(Default)]
pub struct CycleState {
    data: HashMap<&'static str, Box<dyn StateData>>,
    /// Plugins whose PreFilter returned Skip: their Filter is not run.
    pub skip_filter_plugins: HashSet<&'static str>,
    /// Plugins whose PreScore returned Skip: their Score is not run.
    pub skip_score_plugins: HashSet<&'static str>,
}

impl Clone for CycleState {
    fn clone(&self) -> Self {
        Self {
            data: self
                .data
                .iter()
                .map(|(key, value)| (*key, value.as_ref().clone_data()))
                .collect(),
            skip_filter_plugins: self.skip_filter_plugins.clone(),
            skip_score_plugins: self.skip_score_plugins.clone(),
        }
    }
}

impl CycleState {
    /// Stores `value` under `key`, replacing what was there.
    pub fn write<T: StateData>(&mut self, key: &'static str, value: T) {
        self.data.insert(key, Box::new(value));
    }

    /// The value under `key`, if it is there and of type `T`.
    pub fn read<T: 'static>(&self, key: &'static str) -> Option<&T> {
        self.data.get(key)?.as_ref().as_any().downcast_ref()
    }

    /// The value under `key` for changing in place.
    pub fn read_mut<T: 'static>(&mut self, key: &'static str) -> Option<&mut T> {
        self.data.get_mut(key)?.as_mut().as_any_mut().downcast_mut()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Debug, PartialEq)]
    struct Counter(u32);

    #[test]
    fn written_values_read_back_by_type_and_clones_are_independent() {
        let mut state = CycleState::default();
        state.write("counter", Counter(1));
        assert_eq!(state.read::<Counter>("counter"), Some(&Counter(1)));
        assert_eq!(state.read::<String>("counter"), None);
        assert_eq!(state.read::<Counter>("missing"), None);

        let mut copy = state.clone();
        if let Some(counter) = copy.read_mut::<Counter>("counter") {
            counter.0 = 2;
        }
        assert_eq!(state.read::<Counter>("counter"), Some(&Counter(1)));
        assert_eq!(copy.read::<Counter>("counter"), Some(&Counter(2)));
    }
}
