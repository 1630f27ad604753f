//! Graph construction: the HNSW paper's insertion with the neighbour-selection heuristic on
//! every layer and for every pruned backlink, nodes inserted in parallel, then a reachability
//! pass that links any node the entry point cannot reach.
//!
//! Why each piece is there (`../shared/REFERENCE.md`, "HNSW construction"):
//! - Keeping the `M` closest candidates splits clustered data (near-duplicate chunks, tight
//!   topics) into islands: every link stays inside the cluster. The heuristic (paper Algorithm 4,
//!   hnswlib `getNeighborsByHeuristic2`) keeps a candidate only if it is closer to the new node
//!   than to every neighbour kept so far, so some links leave the cluster.
//! - Layer 0 holds `2·M` links (hnswlib `maxM0_`), and a full list that takes a backlink is
//!   pruned by the same heuristic, not cut to the nearest, which could drop a newcomer's only
//!   way in.
//! - Even so, reachability is not guaranteed; as Lucene's `HnswGraphBuilder` does, each layer is
//!   walked from the entry point after the build and every node not reached gets a link from
//!   its nearest reached node.
//!
//! Levels are drawn up front from a seeded generator, and the node with the highest level is
//! inserted first, so the entry point never changes during the parallel phase and no global
//! lock is needed.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};

use rayon::prelude::*;

use super::graph::{
    Adjacency, BuildGraph, FrozenGraph, Scored, ScratchPool, Shape, descend, search_layer,
};
use super::space::Nodes;

/// The highest level a node may get (hnswlib caps by probability; 16 layers is far above what
/// any segment reaches with M ≥ 4).
const MAX_LEVEL: u8 = 15;

/// Layer-0 slots beyond `2·m` that only the repair passes fill, so a hub whose list is full can
/// still take a link to a node searches miss without dropping one it has.
pub(crate) const SPARE: usize = 4;

/// The breadth of the check that every node is found by its own vector: a quarter of the
/// engine's default search `ef` (64), so a node that passes is found with room to spare, and
/// the check costs a fraction of the build.
const CHECK_EF: usize = 16;

/// What the build produced.
pub(crate) struct Built {
    pub entry: u32,
    pub max_level: u8,
    pub levels: Vec<u8>,
    pub upper_offsets: Vec<u32>,
    pub layer0: Vec<u32>,
    pub upper: Vec<u32>,
    /// Links added by the reachability pass.
    pub repaired: usize,
}

/// Levels for `n` nodes: ⌊−ln(U)·mL⌋ with mL = 1/ln(M), from a fixed seed.
fn draw_levels(n: usize, m: usize) -> Vec<u8> {
    let ml = 1.0 / (m.max(2) as f64).ln();
    let mut s: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..n)
        .map(|_| {
            // splitmix64
            s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = s;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            let u = ((z >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
            ((-u.ln() * ml).floor() as u64).min(u64::from(MAX_LEVEL)) as u8
        })
        .collect()
}

/// Builds the graph over every node of `space` with `m` links (`2·m` on layer 0) and a
/// candidate list of `ef_construction`. `progress` gets the number of nodes inserted so far.
pub(crate) fn build<S: Nodes>(
    space: &S,
    m: usize,
    ef_construction: usize,
    progress: &(dyn Fn(u64) + Sync),
) -> Built {
    let n = space.nodes();
    let shape = Shape {
        m,
        m0: 2 * m,
        spare: SPARE,
    };
    let levels = draw_levels(n, m);
    let entry = levels
        .iter()
        .enumerate()
        .max_by_key(|(i, l)| (**l, std::cmp::Reverse(*i)))
        .map_or(0, |(i, _)| i as u32);
    let max_level = levels.get(entry as usize).copied().unwrap_or(0);
    let graph = BuildGraph::new(shape, levels);
    let pool = ScratchPool::new(n);
    let ctx = Ctx {
        space,
        graph: &graph,
        pool: &pool,
        entry,
        max_level: max_level as usize,
        ef: ef_construction.max(m),
    };
    let done = AtomicU64::new(u64::from(n > 0));
    let step = (n as u64 / 100).clamp(1_000, 50_000);
    // Workers take the next node from one counter, as hnswlib's ParallelFor does, so the
    // graph grows in insertion order on every thread (splitting the range instead lets each
    // thread build its half against a graph that lacks the other's).
    let next = AtomicU64::new(0);
    (0..rayon::current_num_threads().max(1))
        .into_par_iter()
        .for_each(|_| {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n as u64 {
                    break;
                }
                if i as u32 == entry {
                    continue;
                }
                ctx.insert(i as u32);
                let d = done.fetch_add(1, Ordering::Relaxed) + 1;
                if d.is_multiple_of(step) {
                    progress(d);
                }
            }
        });
    let repaired = if n == 0 {
        0
    } else {
        (0..=max_level as usize)
            .map(|level| ctx.connect_orphans(level))
            .sum::<usize>()
            + ctx.reinforce_weakly_linked()
    };
    let (levels, upper_offsets, layer0, upper) = graph.into_words();
    Built {
        entry,
        max_level,
        levels,
        upper_offsets,
        layer0,
        upper,
        repaired,
    }
}

struct Ctx<'a, S: Nodes> {
    space: &'a S,
    graph: &'a BuildGraph,
    pool: &'a ScratchPool,
    entry: u32,
    max_level: usize,
    ef: usize,
}

impl<S: Nodes> Ctx<'_, S> {
    fn insert(&self, node: u32) {
        let q = self.space.probe(node);
        let level = self.graph.levels[node as usize] as usize;
        let mut cur = descend(self.space, self.graph, q, self.entry, self.max_level, level);
        for l in (0..=level.min(self.max_level)).rev() {
            let found = self.pool.with(|s| {
                search_layer(self.space, self.graph, q, cur, self.ef, l, s, None);
                s.sorted_results()
            });
            if let Some(best) = found.first() {
                cur = *best;
            }
            let chosen = self.select(&found, self.graph.shape.m, Some(node));
            self.graph.locked(node, || {
                // Others may have linked to this node already (it was reachable from a higher
                // layer): keep their links beside the chosen ones.
                let mut ids: Vec<u32> = Vec::new();
                self.graph.neighbours(node, l, &mut ids);
                if ids.is_empty() {
                    ids = chosen.iter().map(|c| c.id).collect();
                } else {
                    let mut all: Vec<Scored> = ids
                        .iter()
                        .map(|&id| Scored {
                            d: self.space.distance(q, id),
                            id,
                        })
                        .chain(chosen.iter().copied())
                        .collect();
                    all.sort_unstable();
                    all.dedup_by_key(|c| c.id);
                    ids = if all.len() > self.graph.shape.cap(l) {
                        self.select(&all, self.graph.shape.cap(l), Some(node))
                            .iter()
                            .map(|c| c.id)
                            .collect()
                    } else {
                        all.iter().map(|c| c.id).collect()
                    };
                }
                self.graph.set(node, l, &ids);
            });
            for c in &chosen {
                self.link(c.id, node, c.d, l);
            }
        }
    }

    /// The heuristic: walk the candidates nearest first and keep one only if it is nearer to
    /// the base than to every candidate kept. `skip` is left out (the base itself).
    fn select(&self, sorted: &[Scored], keep: usize, skip: Option<u32>) -> Vec<Scored> {
        let mut out: Vec<Scored> = Vec::with_capacity(keep);
        for c in sorted {
            if out.len() >= keep {
                break;
            }
            if Some(c.id) == skip || out.iter().any(|o| o.id == c.id) {
                continue;
            }
            let cq = self.space.probe(c.id);
            if out.iter().all(|o| self.space.distance(cq, o.id) >= c.d) {
                out.push(*c);
            }
        }
        out
    }

    /// Adds `new` (at distance `d`) to `node`'s list on `level`; a full list is pruned by the
    /// heuristic over its old links plus the new one.
    fn link(&self, node: u32, new: u32, d: f32, level: usize) {
        self.graph.locked(node, || {
            if self
                .graph
                .push(node, level, new, self.graph.shape.cap(level))
            {
                return;
            }
            let mut current = Vec::new();
            self.graph.neighbours(node, level, &mut current);
            let base = self.space.probe(node);
            let mut cands: Vec<Scored> = current
                .iter()
                .filter(|&&c| c != new)
                .map(|&c| Scored {
                    d: self.space.distance(base, c),
                    id: c,
                })
                .collect();
            cands.push(Scored { d, id: new });
            cands.sort_unstable();
            let kept = self.select(&cands, self.graph.shape.cap(level), Some(node));
            let ids: Vec<u32> = kept.iter().map(|c| c.id).collect();
            self.graph.set(node, level, &ids);
        });
    }

    /// Walks `level` from the entry point and links every node not reached from its nearest
    /// reached node (a free slot there, else the farthest link of a node that others also
    /// point to). A replaced link can strand its old target, so the walk is repeated until it
    /// reaches every node (a few passes at most). Returns the links added.
    fn connect_orphans(&self, level: usize) -> usize {
        let mut added = 0;
        for _pass in 0..8 {
            let fixed = self.connect_orphans_once(level);
            if fixed.0 == 0 {
                break;
            }
            added += fixed.1;
        }
        added
    }

    /// One pass: (orphans found, links added).
    fn connect_orphans_once(&self, level: usize) -> (usize, usize) {
        let n = self.space.nodes();
        let on_level = |i: usize| self.graph.levels[i] as usize >= level;
        let mut reached = vec![false; n];
        let mut indegree = vec![0u32; n];
        for i in (0..n).filter(|&i| on_level(i)) {
            self.graph
                .for_each_neighbour(i as u32, level, |t| indegree[t as usize] += 1);
        }
        self.flood(self.entry, level, &mut reached);
        let (mut orphans, mut added) = (0, 0);
        let mut protected = HashSet::new();
        for orphan in 0..n {
            if !on_level(orphan) || reached[orphan] {
                continue;
            }
            orphans += 1;
            let q = self.space.probe(orphan as u32);
            let cur = descend(self.space, self.graph, q, self.entry, self.max_level, level);
            let near: Vec<Scored> = self.pool.with(|s| {
                search_layer(self.space, self.graph, q, cur, self.ef, level, s, None);
                s.sorted_results()
            });
            let near: Vec<u32> = near
                .iter()
                .map(|c| c.id)
                .filter(|&c| c as usize != orphan && reached[c as usize])
                .collect();
            let linked = near.iter().any(|&c| {
                self.graph.locked(c, || {
                    self.graph
                        .push(c, level, orphan as u32, self.graph.shape.slots(level))
                })
            }) || near.iter().any(|&c| {
                self.replace_farthest(c, orphan as u32, level, &mut indegree, &mut protected)
            });
            if linked {
                indegree[orphan] += 1;
                added += 1;
                self.flood(orphan as u32, level, &mut reached);
            }
        }
        (orphans, added)
    }

    /// A reachable node can still be missed by a search for its own vector: pruning during
    /// parallel insertion took its links away, or it is one of many near-duplicates, which the
    /// heuristic links sparsely among themselves. Every node is searched for by its own vector
    /// at [`CHECK_EF`], in parallel; where the search does not end on it, its
    /// nearest found nodes with a free slot link to it. Nodes fixed are checked again, a few
    /// rounds at most. Returns the links added.
    fn reinforce_weakly_linked(&self) -> usize {
        let n = self.space.nodes();
        let mut indegree = vec![0u32; n];
        for i in 0..n {
            self.graph
                .for_each_neighbour(i as u32, 0, |t| indegree[t as usize] += 1);
        }
        let mut todo: Vec<u32> = (0..n as u32).filter(|&i| i != self.entry).collect();
        let mut added = 0;
        for _round in 0..4 {
            let missed: Vec<(u32, Vec<u32>)> = todo
                .par_iter()
                .filter_map(|&node| self.missed_by_own_search(node).map(|l| (node, l)))
                .collect();
            if missed.is_empty() {
                break;
            }
            todo = missed.iter().map(|m| m.0).collect();
            for (node, linkers) in missed {
                // Up to four links, from the nearest found nodes with a free slot.
                let mut linked = 0;
                for c in linkers {
                    if linked == 4 {
                        break;
                    }
                    // Only free slots: displacing a link could strand a node checked before.
                    let room = self.graph.shape.slots(0);
                    if self.graph.locked(c, || self.graph.push(c, 0, node, room)) {
                        indegree[node as usize] += 1;
                        added += 1;
                        linked += 1;
                    }
                }
            }
        }
        added
    }

    /// `None` when a search for the node's own vector at [`CHECK_EF`] ends on it (or on a node
    /// as near);
    /// else the nearest nodes it found, which should link to it.
    fn missed_by_own_search(&self, node: u32) -> Option<Vec<u32>> {
        let q = self.space.probe(node);
        let cur = descend(self.space, self.graph, q, self.entry, self.max_level, 0);
        let near = self.pool.with(|s| {
            search_layer(self.space, self.graph, q, cur, CHECK_EF, 0, s, None);
            s.sorted_results()
        });
        let own = self.space.distance(q, node);
        if near.first().is_some_and(|c| c.id == node || c.d <= own) {
            return None;
        }
        Some(near.iter().map(|c| c.id).filter(|&c| c != node).collect())
    }

    /// Replaces `node`'s farthest link whose target has at least two other ways in by `orphan`.
    fn replace_farthest(
        &self,
        node: u32,
        orphan: u32,
        level: usize,
        indegree: &mut [u32],
        protected: &mut HashSet<(u32, u32)>,
    ) -> bool {
        self.graph.locked(node, || {
            let mut links = Vec::new();
            self.graph.neighbours(node, level, &mut links);
            let base = self.space.probe(node);
            let victim = links
                .iter()
                .enumerate()
                .filter(|(_, t)| indegree[**t as usize] > 2 && !protected.contains(&(node, **t)))
                .max_by(|a, b| {
                    self.space
                        .distance(base, *a.1)
                        .total_cmp(&self.space.distance(base, *b.1))
                })
                .map(|(i, t)| (i, *t));
            let Some((i, t)) = victim else {
                return false;
            };
            indegree[t as usize] -= 1;
            links[i] = orphan;
            protected.insert((node, orphan));
            self.graph.set(node, level, &links);
            true
        })
    }

    /// Marks everything reachable from `from` on `level`.
    fn flood(&self, from: u32, level: usize, reached: &mut [bool]) {
        if reached[from as usize] {
            return;
        }
        reached[from as usize] = true;
        let mut stack = vec![from];
        while let Some(x) = stack.pop() {
            self.graph.for_each_neighbour(x, level, |t| {
                if !reached[t as usize] {
                    reached[t as usize] = true;
                    stack.push(t);
                }
            });
        }
    }
}

/// Nodes of each level that the entry point cannot reach (the check tests run on built graphs).
pub(crate) fn unreachable(graph: &FrozenGraph<'_>, levels: &[u8], entry: u32) -> Vec<usize> {
    let max = levels.get(entry as usize).copied().unwrap_or(0) as usize;
    if levels.is_empty() {
        return Vec::new();
    }
    (0..=max)
        .map(|level| {
            let mut reached = vec![false; levels.len()];
            let mut stack = vec![entry];
            reached[entry as usize] = true;
            while let Some(x) = stack.pop() {
                graph.for_each_neighbour(x, level, |t| {
                    if !reached[t as usize] {
                        reached[t as usize] = true;
                        stack.push(t);
                    }
                });
            }
            (0..levels.len())
                .filter(|&i| levels[i] as usize >= level && !reached[i])
                .count()
        })
        .collect()
}
