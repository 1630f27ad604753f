//! The graph's links and the walk over them.
//!
//! Links live in flat `u32` arrays, as hnswlib keeps them: layer 0 holds `m0 + spare + 1` words
//! per node (a count, then up to `m0` neighbours chosen by the heuristic plus `spare` slots only
//! the repair passes fill), and a node of level `L` has `L` more blocks of `m + 1` words in a
//! second array at `upper_offsets[node]`. While building, the words are atomics:
//! a writer changes a node's list only under that node's lock, and readers walk lists without
//! locking (a list read while it is rewritten yields ids that were or are neighbours, all
//! valid nodes, which the visited set absorbs). A built graph is the same words as plain `u32`
//! slices, mapped from the index file.
//!
//! The walk ([`search_layer`]) is the HNSW paper's Algorithm 2 with hnswlib's details: a
//! generation-stamped visited array reused across searches, two binary heaps that keep their
//! capacity, and, when a filter is given, rejected nodes still expanded but never returned.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering as AtomicOrdering};

use super::space::{Probe, Space};

/// Read access to a graph's neighbour lists.
pub(crate) trait Adjacency: Sync {
    /// Calls `f` with each neighbour of `node` on `level`.
    fn for_each_neighbour(&self, node: u32, level: usize, f: impl FnMut(u32));
}

/// Block sizes and offsets shared by the building and the built graph.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Shape {
    /// Links per node on upper layers.
    pub m: usize,
    /// Links per node on layer 0 (`2·m`).
    pub m0: usize,
    /// Extra layer-0 slots for links the repair passes add.
    pub spare: usize,
}

impl Shape {
    /// Links the heuristic keeps on `level`.
    pub fn cap(&self, level: usize) -> usize {
        if level == 0 { self.m0 } else { self.m }
    }

    /// Room in a list on `level` (repairs may fill the spare slots).
    pub fn slots(&self, level: usize) -> usize {
        if level == 0 {
            self.m0 + self.spare
        } else {
            self.m
        }
    }

    /// Where a node's list on `level` starts, in the layer-0 array (level 0) or the upper one.
    #[inline]
    pub fn start(&self, node: u32, level: usize, upper_offsets: &[u32]) -> usize {
        if level == 0 {
            node as usize * (self.m0 + self.spare + 1)
        } else {
            upper_offsets[node as usize] as usize + (level - 1) * (self.m + 1)
        }
    }
}

/// The graph while it is built: atomic words, one lock per node for writers.
pub(crate) struct BuildGraph {
    pub shape: Shape,
    pub levels: Vec<u8>,
    pub upper_offsets: Vec<u32>,
    pub layer0: Vec<AtomicU32>,
    pub upper: Vec<AtomicU32>,
    locks: Vec<Mutex<()>>,
}

impl BuildGraph {
    /// An empty graph for nodes of the given levels.
    pub fn new(shape: Shape, levels: Vec<u8>) -> BuildGraph {
        let n = levels.len();
        let mut upper_offsets = Vec::with_capacity(n + 1);
        let mut at = 0u32;
        for &l in &levels {
            upper_offsets.push(at);
            at += u32::from(l) * (shape.m as u32 + 1);
        }
        upper_offsets.push(at);
        BuildGraph {
            shape,
            layer0: (0..n * (shape.slots(0) + 1))
                .map(|_| AtomicU32::new(0))
                .collect(),
            upper: (0..at as usize).map(|_| AtomicU32::new(0)).collect(),
            upper_offsets,
            levels,
            locks: (0..n).map(|_| Mutex::new(())).collect(),
        }
    }

    fn block(&self, node: u32, level: usize) -> &[AtomicU32] {
        let s = self.shape.start(node, level, &self.upper_offsets);
        let words = if level == 0 {
            &self.layer0
        } else {
            &self.upper
        };
        &words[s..s + self.shape.slots(level) + 1]
    }

    /// The neighbours of `node` on `level`, copied.
    pub fn neighbours(&self, node: u32, level: usize, out: &mut Vec<u32>) {
        out.clear();
        self.for_each_neighbour(node, level, |n| out.push(n));
    }

    /// Runs `f` with the node's lock held (writers only).
    pub fn locked<R>(&self, node: u32, f: impl FnOnce() -> R) -> R {
        let _guard = self.locks[node as usize]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        f()
    }

    /// Replaces the list of `node` on `level`; the caller holds the node's lock.
    pub fn set(&self, node: u32, level: usize, links: &[u32]) {
        let b = self.block(node, level);
        let n = links.len().min(b.len() - 1);
        for (w, &l) in b[1..].iter().zip(&links[..n]) {
            w.store(l, AtomicOrdering::Relaxed);
        }
        b[0].store(n as u32, AtomicOrdering::Release);
    }

    /// Appends to the list when it holds fewer than `room` links; the caller holds the node's
    /// lock. Insertion passes [`Shape::cap`], repairs [`Shape::slots`].
    pub fn push(&self, node: u32, level: usize, link: u32, room: usize) -> bool {
        let b = self.block(node, level);
        let n = b[0].load(AtomicOrdering::Acquire) as usize;
        if n >= room.min(b.len() - 1) {
            return false;
        }
        b[n + 1].store(link, AtomicOrdering::Relaxed);
        b[0].store(n as u32 + 1, AtomicOrdering::Release);
        true
    }

    /// Plain words for the index file.
    pub fn into_words(self) -> (Vec<u8>, Vec<u32>, Vec<u32>, Vec<u32>) {
        let plain = |v: Vec<AtomicU32>| v.into_iter().map(AtomicU32::into_inner).collect();
        (
            self.levels,
            self.upper_offsets,
            plain(self.layer0),
            plain(self.upper),
        )
    }
}

impl Adjacency for BuildGraph {
    #[inline]
    fn for_each_neighbour(&self, node: u32, level: usize, mut f: impl FnMut(u32)) {
        let b = self.block(node, level);
        let n = (b[0].load(AtomicOrdering::Acquire) as usize).min(b.len() - 1);
        for w in &b[1..=n] {
            f(w.load(AtomicOrdering::Relaxed));
        }
    }
}

/// A built graph over plain words (owned or mapped).
pub(crate) struct FrozenGraph<'a> {
    pub shape: Shape,
    pub upper_offsets: &'a [u32],
    pub layer0: &'a [u32],
    pub upper: &'a [u32],
}

impl FrozenGraph<'_> {
    /// The node's list on `level`.
    #[inline]
    pub fn list(&self, node: u32, level: usize) -> &[u32] {
        let s = self.shape.start(node, level, self.upper_offsets);
        let words = if level == 0 { self.layer0 } else { self.upper };
        let n = (words[s] as usize).min(self.shape.slots(level));
        &words[s + 1..s + 1 + n]
    }
}

impl Adjacency for FrozenGraph<'_> {
    #[inline]
    fn for_each_neighbour(&self, node: u32, level: usize, mut f: impl FnMut(u32)) {
        for &n in self.list(node, level) {
            f(n);
        }
    }
}

/// A node and its distance, ordered by distance (then id) for the heaps.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Scored {
    pub d: f32,
    pub id: u32,
}

impl PartialEq for Scored {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}
impl Eq for Scored {}
impl PartialOrd for Scored {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Scored {
    fn cmp(&self, o: &Self) -> Ordering {
        self.d.total_cmp(&o.d).then(self.id.cmp(&o.id))
    }
}

/// Per-search state, reused: the visited stamps and both heaps.
pub(crate) struct Scratch {
    stamps: Vec<u16>,
    stamp: u16,
    /// Nearest first (a min-heap through `Reverse`).
    candidates: BinaryHeap<std::cmp::Reverse<Scored>>,
    /// The best `ef` so far, farthest on top.
    pub results: BinaryHeap<Scored>,
    /// Unvisited neighbours of the node being expanded.
    fresh: Vec<u32>,
}

impl Scratch {
    fn new(n: usize) -> Scratch {
        Scratch {
            stamps: vec![0; n],
            stamp: 0,
            candidates: BinaryHeap::new(),
            results: BinaryHeap::new(),
            fresh: Vec::new(),
        }
    }

    /// Starts a new search: every node unvisited, heaps empty.
    fn reset(&mut self) {
        self.stamp = self.stamp.wrapping_add(1);
        if self.stamp == 0 {
            self.stamps.fill(0);
            self.stamp = 1;
        }
        self.candidates.clear();
        self.results.clear();
    }

    /// Marks a node visited; false when it already was.
    #[inline]
    fn visit(&mut self, node: u32) -> bool {
        let s = &mut self.stamps[node as usize];
        if *s == self.stamp {
            false
        } else {
            *s = self.stamp;
            true
        }
    }

    /// The results, nearest first.
    pub fn sorted_results(&mut self) -> Vec<Scored> {
        let mut v: Vec<Scored> = self.results.drain().collect();
        v.sort_unstable();
        v
    }
}

/// Scratch spaces for a graph of `n` nodes, one per concurrent search.
pub(crate) struct ScratchPool {
    n: usize,
    free: Mutex<Vec<Scratch>>,
}

impl ScratchPool {
    pub fn new(n: usize) -> ScratchPool {
        ScratchPool {
            n,
            free: Mutex::new(Vec::new()),
        }
    }

    /// Runs `f` with a reset scratch space.
    pub fn with<R>(&self, f: impl FnOnce(&mut Scratch) -> R) -> R {
        let taken = self.free.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let mut s = taken.unwrap_or_else(|| Scratch::new(self.n));
        s.reset();
        let out = f(&mut s);
        self.free.lock().unwrap_or_else(|p| p.into_inner()).push(s);
        out
    }
}

/// From the entry point down to `to_level`: greedy on each layer above it. The starting node
/// for the walk of `to_level`, as insertion, search and the repair passes all begin.
pub(crate) fn descend<S: Space, A: Adjacency>(
    space: &S,
    graph: &A,
    q: Probe<'_, S::Elem>,
    entry: u32,
    top_level: usize,
    to_level: usize,
) -> Scored {
    let mut cur = Scored {
        d: space.distance(q, entry),
        id: entry,
    };
    for level in (to_level + 1..=top_level).rev() {
        cur = greedy(space, graph, q, cur, level);
    }
    cur
}

/// Greedy descent on one upper layer: moves to a nearer neighbour while there is one.
pub(crate) fn greedy<S: Space, A: Adjacency>(
    space: &S,
    graph: &A,
    q: Probe<'_, S::Elem>,
    mut cur: Scored,
    level: usize,
) -> Scored {
    loop {
        let mut moved = false;
        graph.for_each_neighbour(cur.id, level, |n| {
            let d = space.distance(q, n);
            if d < cur.d {
                cur = Scored { d, id: n };
                moved = true;
            }
        });
        if !moved {
            return cur;
        }
    }
}

/// The best `ef` nodes of `level` reachable from `entry`, left in `scratch.results`. With
/// `allow`, nodes it rejects guide the walk but are not kept.
#[expect(
    clippy::too_many_arguments,
    reason = "the walk's inputs, each used on the hot path; a struct would only rename them"
)]
pub(crate) fn search_layer<S: Space, A: Adjacency>(
    space: &S,
    graph: &A,
    q: Probe<'_, S::Elem>,
    entry: Scored,
    ef: usize,
    level: usize,
    scratch: &mut Scratch,
    allow: Option<&dyn Fn(u32) -> bool>,
) {
    scratch.visit(entry.id);
    scratch.candidates.push(std::cmp::Reverse(entry));
    if allow.is_none_or(|a| a(entry.id)) {
        scratch.results.push(entry);
    }
    let mut bound = if scratch.results.is_empty() {
        f32::INFINITY
    } else {
        entry.d
    };
    while let Some(std::cmp::Reverse(c)) = scratch.candidates.pop() {
        if c.d > bound && scratch.results.len() >= ef {
            break;
        }
        // Unvisited neighbours first, their rows prefetched, then measured.
        let mut fresh = std::mem::take(&mut scratch.fresh);
        fresh.clear();
        graph.for_each_neighbour(c.id, level, |n| {
            if scratch.visit(n) {
                space.prefetch(n);
                fresh.push(n);
            }
        });
        for &n in &fresh {
            let d = space.distance(q, n);
            if scratch.results.len() < ef || d < bound {
                scratch
                    .candidates
                    .push(std::cmp::Reverse(Scored { d, id: n }));
                if allow.is_none_or(|a| a(n)) {
                    scratch.results.push(Scored { d, id: n });
                    if scratch.results.len() > ef {
                        scratch.results.pop();
                    }
                    if let Some(top) = scratch.results.peek() {
                        bound = top.d;
                    }
                }
            }
        }
        scratch.fresh = fresh;
    }
}
