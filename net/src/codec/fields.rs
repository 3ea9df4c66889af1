//! [`ExtFields`]: a command's custom header (`extFields`, PROTOCOL.md §1.8), stored compactly.
//!
//! A request carries about ten short fields. Kept as a `BTreeMap<String, String>`, each cost two
//! allocations and a tree node, and decoding, looking up and dropping them was the largest
//! single cost of a send in the broker (a third of its instructions, callgrind 2026-12-02).
//! Here every key and value lives back to back in one `String`, with a small index sorted by
//! key: two allocations per header, lookups by binary search, iteration in fastjson's key order
//! (sorted by bytes), which is the order the encoder writes.

use std::fmt;

/// Up to this many fields a lookup scans instead of searching.
const LINEAR_LOOKUP_MAX_FIELDS: usize = 24;

/// `a < b` as bytes, decided by the first bytes where they differ there (the one-letter keys of
/// send headers always do) without a memcmp call.
fn key_less(a: &[u8], b: &[u8]) -> bool {
    match (a.first(), b.first()) {
        (Some(x), Some(y)) if x != y => x < y,
        _ => a < b,
    }
}

/// One field: the key at `text[start..start + key_len]`, its value right after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    start: u32,
    key_len: u32,
    value_len: u32,
}

/// The custom header of a command: text keys to text values, sorted by key.
#[derive(Clone, Default)]
pub struct ExtFields {
    text: String,
    index: Vec<Entry>,
}

impl ExtFields {
    pub fn new() -> ExtFields {
        ExtFields::default()
    }

    /// Room for `fields` fields of `text_bytes` bytes of keys and values in all.
    pub fn with_capacity(fields: usize, text_bytes: usize) -> ExtFields {
        ExtFields { text: String::with_capacity(text_bytes), index: Vec::with_capacity(fields) }
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    fn key_of(&self, entry: &Entry) -> &str {
        let start = entry.start as usize;
        self.text.get(start..start + entry.key_len as usize).unwrap_or_default()
    }

    fn value_of(&self, entry: &Entry) -> &str {
        let start = (entry.start + entry.key_len) as usize;
        self.text.get(start..start + entry.value_len as usize).unwrap_or_default()
    }

    fn position(&self, key: &str) -> Result<usize, usize> {
        self.index.binary_search_by(|e| self.key_of(e).as_bytes().cmp(key.as_bytes()))
    }

    /// The value of `key`, if present. A header has a dozen fields: a scan that compares
    /// lengths first rejects most of them without looking at a byte, and beats a binary search
    /// of string comparisons; long lists are searched.
    pub fn get(&self, key: &str) -> Option<&str> {
        if self.index.len() <= LINEAR_LOOKUP_MAX_FIELDS {
            // Length, then first byte, then the rest: the send headers' keys are one letter
            // each, and comparing every candidate in full (a memcmp call each) cost a handler
            // about 70 calls per send (callgrind 2026-12-06).
            let text = self.text.as_bytes();
            return self
                .index
                .iter()
                .find(|e| {
                    e.key_len as usize == key.len()
                        && key.as_bytes().first().is_none_or(|first| text.get(e.start as usize) == Some(first))
                        && self.key_of(e) == key
                })
                .map(|e| self.value_of(e));
        }
        let at = self.position(key).ok()?;
        self.index.get(at).map(|e| self.value_of(e))
    }

    /// Sets `key` to `value`, replacing an earlier value.
    pub fn insert(&mut self, key: &str, value: &str) {
        let start = self.text.len();
        self.text.push_str(key);
        self.text.push_str(value);
        self.commit(start, key.len(), value.len());
    }

    /// Files the field whose key and value were just appended to `text` at `start`.
    fn commit(&mut self, start: usize, key_len: usize, value_len: usize) {
        let entry = Entry { start: start as u32, key_len: key_len as u32, value_len: value_len as u32 };
        // Java clients (fastjson) send their keys sorted: then each key goes at the end.
        if self.index.last().is_none_or(|last| key_less(self.key_of(last).as_bytes(), self.key_of(&entry).as_bytes())) {
            self.index.push(entry);
            return;
        }
        let found = self.position(self.key_of(&entry));
        match found {
            // A later duplicate wins, as it did in a map; its old text stays unused.
            Ok(at) => {
                if let Some(slot) = self.index.get_mut(at) {
                    *slot = entry;
                }
            }
            Err(at) => self.index.insert(at, entry),
        }
    }

    /// Sets `key` to the `Display` text of `value` (written straight into the shared text).
    pub fn insert_display(&mut self, key: &str, value: impl fmt::Display) {
        use fmt::Write as _;
        let start = self.text.len();
        self.text.push_str(key);
        // Writing into a String cannot fail.
        let _ = write!(self.text, "{value}");
        let value_len = self.text.len() - start - key.len();
        self.commit(start, key.len(), value_len);
    }

    /// Sets `key` to the decimal text of `value` (integers are most fields; no formatting
    /// machinery).
    pub fn insert_int(&mut self, key: &str, value: impl itoa::Integer) {
        let start = self.text.len();
        self.text.push_str(key);
        self.text.push_str(itoa::Buffer::new().format(value));
        let value_len = self.text.len() - start - key.len();
        self.commit(start, key.len(), value_len);
    }

    /// Keeps the fields for which `keep` is true.
    pub fn retain(&mut self, mut keep: impl FnMut(&str, &str) -> bool) {
        let index = std::mem::take(&mut self.index);
        self.index = index.into_iter().filter(|e| keep(self.key_of(e), self.value_of(e))).collect();
    }

    /// The fields in key order (bytes compared, as fastjson sorts).
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> + Clone {
        self.index.iter().map(|e| (self.key_of(e), self.value_of(e)))
    }

    /// Appends a field from its parts, written into the shared text by `write`: the key first,
    /// then (if `write` returns true) the value. A field whose value is absent (`write`
    /// returns false, a JSON `null`) is dropped.
    pub(super) fn push_with<E>(&mut self, write: impl FnOnce(&mut String) -> Result<(usize, bool), E>) -> Result<(), E> {
        let start = self.text.len();
        let (key_len, has_value) = write(&mut self.text)?;
        if !has_value {
            self.text.truncate(start);
            return Ok(());
        }
        let value_len = self.text.len() - start - key_len;
        if u32::try_from(self.text.len()).is_err() {
            // Bounded by the frame limit (far below 4 GiB); never filed past u32 offsets.
            self.text.truncate(start);
            return Ok(());
        }
        self.commit(start, key_len, value_len);
        Ok(())
    }
}

impl PartialEq for ExtFields {
    fn eq(&self, other: &ExtFields) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl Eq for ExtFields {}

impl fmt::Debug for ExtFields {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl<K: AsRef<str>, V: AsRef<str>> FromIterator<(K, V)> for ExtFields {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> ExtFields {
        let mut fields = ExtFields::new();
        for (k, v) in iter {
            fields.insert(k.as_ref(), v.as_ref());
        }
        fields
    }
}

impl<K: AsRef<str>, V: AsRef<str>, const N: usize> From<[(K, V); N]> for ExtFields {
    fn from(pairs: [(K, V); N]) -> ExtFields {
        pairs.into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;

    #[test]
    fn sorted_replacing_and_retained() {
        let mut f = ExtFields::new();
        f.insert("queueId", "3");
        f.insert("b", "topic");
        f.insert("MSG_REGION", "r");
        f.insert("b", "topic2");
        assert_eq!(f.iter().collect::<Vec<_>>(), vec![("MSG_REGION", "r"), ("b", "topic2"), ("queueId", "3")]);
        assert_eq!(f.get("b"), Some("topic2"));
        assert_eq!(f.get("c"), None);
        f.retain(|k, _| k != "b");
        assert_eq!(f.len(), 2);
        assert_eq!(f.get("b"), None);
        assert_eq!(f, ExtFields::from([("queueId", "3"), ("MSG_REGION", "r")]));
    }

    proptest! {
        #[test]
        fn behaves_like_a_sorted_map(ops in proptest::collection::vec(("[a-dA-D_]{0,3}", "[ -~]{0,6}"), 0..40)) {
            let mut map = BTreeMap::new();
            let mut fields = ExtFields::new();
            for (k, v) in &ops {
                map.insert(k.clone(), v.clone());
                fields.insert(k, v);
            }
            let expected: Vec<(&str, &str)> = map.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            prop_assert_eq!(fields.iter().collect::<Vec<_>>(), expected);
            for (k, v) in &map {
                prop_assert_eq!(fields.get(k), Some(v.as_str()));
            }
        }
    }
}
