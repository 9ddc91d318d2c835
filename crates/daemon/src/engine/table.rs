//! The in-memory container table: containers by full id (ordered, so a short id prefix
//! is a range lookup) and a name → id index kept in step with them. Every request that
//! names a container resolves it here in O(log N), and create/rename check a name's
//! owner without walking (or cloning the records of) every container — with a thousand
//! containers running, those walks were what made each request slower than the last.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// The containers the engine knows, by id and by name.
pub(super) struct Table<T> {
    by_id: BTreeMap<String, Arc<T>>,
    by_name: HashMap<String, String>,
}

/// What a lookup by id, name or id prefix found.
#[derive(Debug)]
pub(super) enum Found<T> {
    /// Exactly one container.
    One(Arc<T>),
    /// No container.
    None,
    /// A prefix that more than one id starts with.
    Ambiguous,
}

impl<T> Default for Table<T> {
    fn default() -> Self {
        Table { by_id: BTreeMap::new(), by_name: HashMap::new() }
    }
}

impl<T> Table<T> {
    /// Adds (or replaces) a container under `id`, known as `name`. A name held by another
    /// id moves to this one: the store's unique index, checked before, is the authority.
    pub(super) fn insert(&mut self, id: &str, name: &str, c: Arc<T>) {
        if let Some(old) = self.by_id.insert(id.to_owned(), c) {
            drop(old);
            self.by_name.retain(|_, v| v != id);
        }
        self.by_name.insert(name.to_owned(), id.to_owned());
    }

    /// Removes the container `id` known as `name`; the name is freed only while it still
    /// points at `id`.
    pub(super) fn remove(&mut self, id: &str, name: &str) -> Option<Arc<T>> {
        if self.by_name.get(name).is_some_and(|v| v == id) {
            self.by_name.remove(name);
        }
        self.by_id.remove(id)
    }

    /// Gives back the name index's spare capacity (after a burst of removals: a hash map
    /// never shrinks on its own; the id map frees its nodes as they empty).
    pub(super) fn shrink_to_fit(&mut self) {
        self.by_name.shrink_to_fit();
    }

    /// The id that holds `name`, if any.
    pub(super) fn name_owner(&self, name: &str) -> Option<&str> {
        self.by_name.get(name).map(String::as_str)
    }

    /// Moves `id`'s name from `old` to `new`. Fails with the holder's id when another
    /// container holds `new` (nothing changes then).
    pub(super) fn rename(&mut self, id: &str, old: &str, new: &str) -> Result<(), String> {
        match self.by_name.get(new) {
            Some(holder) if holder != id => return Err(holder.clone()),
            _ => {}
        }
        if self.by_name.get(old).is_some_and(|v| v == id) {
            self.by_name.remove(old);
        }
        self.by_name.insert(new.to_owned(), id.to_owned());
        Ok(())
    }

    /// Docker's lookup order: full id, then name, then unique id prefix. `key` has no
    /// leading `/` and is not empty.
    pub(super) fn find(&self, key: &str) -> Found<T> {
        if let Some(c) = self.by_id.get(key) {
            return Found::One(c.clone());
        }
        if let Some(c) = self.by_name.get(key).and_then(|id| self.by_id.get(id)) {
            return Found::One(c.clone());
        }
        let mut range = self.by_id.range::<str, _>((std::ops::Bound::Included(key), std::ops::Bound::Unbounded));
        match range.next() {
            Some((id, c)) if id.starts_with(key) => match range.next() {
                Some((next, _)) if next.starts_with(key) => Found::Ambiguous,
                _ => Found::One(c.clone()),
            },
            _ => Found::None,
        }
    }

    /// Every container, in id order.
    pub(super) fn all(&self) -> Vec<Arc<T>> {
        self.by_id.values().cloned().collect()
    }

    /// How many containers there are.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.by_id.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(entries: &[(&str, &str)]) -> Table<String> {
        let mut t = Table::default();
        for (id, name) in entries {
            t.insert(id, name, Arc::new((*id).to_owned()));
        }
        t
    }

    fn found(t: &Table<String>, key: &str) -> Option<String> {
        match t.find(key) {
            Found::One(c) => Some((*c).clone()),
            Found::None => None,
            Found::Ambiguous => Some("ambiguous".to_owned()),
        }
    }

    #[test]
    fn finds_by_id_name_and_unique_prefix() {
        let t = table(&[("abc123", "web"), ("abd456", "db"), ("ff0000", "abc")]);
        assert_eq!(found(&t, "abc123").as_deref(), Some("abc123"));
        assert_eq!(found(&t, "web").as_deref(), Some("abc123"));
        // A name wins over an id prefix, as in Docker.
        assert_eq!(found(&t, "abc").as_deref(), Some("ff0000"));
        assert_eq!(found(&t, "abd").as_deref(), Some("abd456"));
        assert_eq!(found(&t, "ab").as_deref(), Some("ambiguous"));
        assert_eq!(found(&t, "f").as_deref(), Some("ff0000"));
        assert_eq!(found(&t, "zz"), None);
        assert_eq!(found(&t, "abc1234"), None);
    }

    #[test]
    fn the_name_index_follows_rename_and_remove() {
        let mut t = table(&[("a1", "one"), ("b2", "two")]);
        assert_eq!(t.rename("a1", "one", "two"), Err("b2".to_owned()));
        assert_eq!(t.name_owner("one"), Some("a1"), "a refused rename changes nothing");
        assert_eq!(t.rename("a1", "one", "uno"), Ok(()));
        assert_eq!(t.name_owner("one"), None);
        assert_eq!(t.name_owner("uno"), Some("a1"));
        assert_eq!(found(&t, "uno").as_deref(), Some("a1"));
        assert_eq!(found(&t, "one"), None);
        // Renaming back (the store refused the new name) restores the old one.
        assert_eq!(t.rename("a1", "uno", "one"), Ok(()));
        assert_eq!(t.name_owner("uno"), None);
        assert_eq!(t.name_owner("one"), Some("a1"));

        assert!(t.remove("b2", "two").is_some());
        assert_eq!(t.name_owner("two"), None);
        assert_eq!(found(&t, "b2"), None);
        assert_eq!(t.len(), 1);
        // Removing with a name that another id holds leaves that id's name alone.
        t.insert("c3", "two", Arc::new("c3".to_owned()));
        assert!(t.remove("a1", "two").is_some());
        assert_eq!(t.name_owner("two"), Some("c3"));
        assert_eq!(t.all().len(), 1);
    }

    #[test]
    fn insert_again_replaces_the_entry_and_its_name() {
        let mut t = table(&[("a1", "one")]);
        t.insert("a1", "uno", Arc::new("a1 again".to_owned()));
        assert_eq!(t.name_owner("one"), None);
        assert_eq!(found(&t, "uno").as_deref(), Some("a1 again"));
        assert_eq!(t.len(), 1);
    }
}
