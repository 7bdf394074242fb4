//! A byte trie over vocabulary tokens for WordPiece's longest-match search.
//!
//! HF tries every end position from the longest down and looks each slice
//! up in a hash map; the trie walks the word once from `start` and keeps the
//! last token end it passed, which is the same longest match in one pass.
//! Token ends are always char boundaries (tokens are valid UTF-8).

/// Marks "no token ends here".
const NONE: u32 = u32::MAX;

#[derive(Clone, Copy, Debug)]
struct Node {
    /// Id of the token ending at this node, or `NONE`.
    id: u32,
    /// This node's children: `labels[first..first + count]`, sorted.
    first: u32,
    count: u32,
}

/// A byte trie mapping tokens to ids.
#[derive(Clone, Debug)]
pub struct Trie {
    nodes: Vec<Node>,
    labels: Vec<u8>,
    targets: Vec<u32>,
    /// Child of the root per first byte (`NONE` if none): one load, no search.
    root: Box<[u32; 256]>,
}

impl Default for Trie {
    fn default() -> Self {
        Trie::new(std::iter::empty())
    }
}

impl Trie {
    /// Build from (token, id) pairs (the empty token is ignored).
    pub fn new<'a>(tokens: impl Iterator<Item = (&'a str, u32)>) -> Self {
        // A first trie with child lists, flattened below.
        let mut ids: Vec<u32> = vec![NONE];
        let mut children: Vec<Vec<(u8, u32)>> = vec![Vec::new()];
        for (token, id) in tokens {
            let mut node = 0usize;
            for &byte in token.as_bytes() {
                let existing = children
                    .get(node)
                    .and_then(|list| list.iter().find(|&&(label, _)| label == byte));
                node = match existing {
                    Some(&(_, child)) => child as usize,
                    None => {
                        let child = ids.len();
                        ids.push(NONE);
                        children.push(Vec::new());
                        if let Some(list) = children.get_mut(node) {
                            list.push((byte, child as u32));
                        }
                        child
                    }
                };
            }
            if node != 0 {
                if let Some(slot) = ids.get_mut(node) {
                    *slot = id;
                }
            }
        }
        let mut nodes = Vec::with_capacity(ids.len());
        let mut labels = Vec::with_capacity(ids.len());
        let mut targets = Vec::with_capacity(ids.len());
        let mut root = Box::new([NONE; 256]);
        for (index, (id, mut list)) in ids.into_iter().zip(children).enumerate() {
            list.sort_unstable_by_key(|&(label, _)| label);
            if index == 0 {
                for &(label, child) in &list {
                    root[label as usize] = child;
                }
            }
            nodes.push(Node {
                id,
                first: labels.len() as u32,
                count: list.len() as u32,
            });
            for (label, child) in list {
                labels.push(label);
                targets.push(child);
            }
        }
        Trie {
            nodes,
            labels,
            targets,
            root,
        }
    }

    #[inline]
    fn child(&self, node: &Node, byte: u8) -> Option<u32> {
        let first = node.first as usize;
        let end = first + node.count as usize;
        let labels = self.labels.get(first..end)?;
        let index = if labels.len() <= 8 {
            labels.iter().position(|&label| label == byte)?
        } else {
            labels.binary_search(&byte).ok()?
        };
        self.targets.get(first + index).copied()
    }

    /// The longest token that `bytes` starts with: (id, length in bytes).
    #[inline]
    pub fn longest_prefix(&self, bytes: &[u8]) -> Option<(u32, usize)> {
        let (&first, rest) = bytes.split_first()?;
        let mut index = self.root[first as usize];
        let mut best = None;
        let mut length = 1;
        let mut rest = rest.iter();
        loop {
            let node = self.nodes.get(index as usize)?;
            if node.id != NONE {
                best = Some((node.id, length));
            }
            let Some(&byte) = rest.next() else {
                return best;
            };
            match self.child(node, byte) {
                Some(child) => {
                    index = child;
                    length += 1;
                }
                None => return best,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longest_prefix_matches() {
        let tokens = [("a", 1), ("ab", 2), ("abcd", 3), ("é", 4), ("b", 5)];
        let trie = Trie::new(tokens.iter().copied());
        assert_eq!(trie.longest_prefix(b"abc"), Some((2, 2)));
        assert_eq!(trie.longest_prefix(b"abcde"), Some((3, 4)));
        assert_eq!(trie.longest_prefix(b"ax"), Some((1, 1)));
        assert_eq!(trie.longest_prefix(b"x"), None);
        assert_eq!(trie.longest_prefix(b""), None);
        assert_eq!(trie.longest_prefix("éa".as_bytes()), Some((4, 2)));
    }

    #[test]
    fn many_children_use_binary_search() {
        let names: Vec<String> = (0u8..60)
            .map(|i| format!("x{}", (b'0' + i) as char))
            .collect();
        let trie = Trie::new(names.iter().map(String::as_str).zip(0u32..));
        for (id, name) in (0u32..).zip(&names) {
            assert_eq!(trie.longest_prefix(name.as_bytes()), Some((id, 2)));
        }
    }
}
