//! Resources (bistro-scheduling §3): slots defined per level, charged on a task's node
//! and every ancestor, all or nothing.
//!
//! The resources are defined by the settings ([`ResourceDefs`]). [`ResourceBlocks`]
//! is one scheduling pass's ledger of free slots per (level, node name); replicas (the
//! same name twice on one level) share one block.

use crate::foundation::config::{Levels, ResourceDefs};
use crate::model::nodes::Nodes;

/// One node's resource charge: amounts by resource name on a (level, node) pair.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NodeCharge {
    /// Level name of the node.
    pub level: String,
    /// Node name.
    pub node: String,
    /// `(resource name, amount)` pairs.
    pub amounts: Vec<(String, i64)>,
}

/// Free slots for one scheduling pass, one block per distinct (level, node name).
/// The blocks of a level lie together, so the few nodes of the upper levels, which
/// every task checks, share a little memory.
#[derive(Debug, Clone)]
pub struct ResourceBlocks {
    /// Free amounts, blocks laid end to end; a block holds its level's resources in order.
    free: Vec<i64>,
    /// Block offset of each node (by node index), or `NO_BLOCK` for levels without resources.
    block_of_node: Vec<u32>,
    /// Per level, per resource of the level (in order): the free slots of all its
    /// blocks together, counting none for an overdrawn block. Below what a task needs,
    /// no block of the level has room for it.
    room: Vec<Vec<i64>>,
}

/// Why a task did not fit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shortage {
    /// Index of the node that lacks slots.
    pub node: usize,
    /// Resource id.
    pub resource: usize,
    /// What the job needs.
    pub need: i64,
    /// What is free.
    pub free: i64,
    /// The level's limit.
    pub limit: i64,
}

/// The block of a node whose level has no resources.
pub const NO_BLOCK: u32 = u32::MAX;

impl ResourceBlocks {
    /// Allocates full blocks for the nodes of the first `levels` levels; replicas share
    /// the block of the first of them.
    pub fn new(defs: &ResourceDefs, nodes: &Nodes, levels: usize) -> Self {
        let tables = nodes.tables();
        let roots = &tables.replica_roots;
        // Each level's limits, none past the first `levels` levels.
        let limits: Vec<Vec<i64>> = (0..defs.by_level.len().max(tables.level_sizes.len()))
            .map(|level| match defs.by_level.get(level) {
                Some(resources) if level < levels => resources.iter().map(|r| r.limit).collect(),
                _ => Vec::new(),
            })
            .collect();
        let widths: Vec<u32> = limits.iter().map(|l| l.len() as u32).collect();
        let mut blocks_per_level = vec![0usize; limits.len()];
        for (i, (&level, &root)) in tables.levels.iter().zip(roots).enumerate() {
            if widths[level as usize] > 0 && root as usize == i {
                blocks_per_level[level as usize] += 1;
            }
        }
        let total = limits
            .iter()
            .zip(&blocks_per_level)
            .map(|(l, &count)| l.len() * count)
            .sum();
        let mut free = Vec::with_capacity(total);
        let mut next = Vec::with_capacity(limits.len());
        let mut room = Vec::with_capacity(limits.len());
        for (limits, &count) in limits.iter().zip(&blocks_per_level) {
            next.push(free.len() as u32);
            match limits[..] {
                [limit] => free.resize(free.len() + count, limit),
                _ => (0..count).for_each(|_| free.extend_from_slice(limits)),
            }
            room.push(limits.iter().map(|l| l.max(&0) * count as i64).collect());
        }
        let mut block_of_node: Vec<u32> = Vec::with_capacity(tables.levels.len());
        for (i, (&level, &root)) in tables.levels.iter().zip(roots).enumerate() {
            let w = widths[level as usize];
            let block = if w == 0 {
                NO_BLOCK
            } else if root as usize == i {
                let offset = next[level as usize];
                next[level as usize] += w;
                offset
            } else {
                block_of_node[root as usize]
            };
            block_of_node.push(block);
        }
        Self {
            free,
            block_of_node,
            room,
        }
    }

    /// Takes `amount` of the resource at `pos` of a block of `level` at `offset`.
    #[inline]
    fn take_at(&mut self, level: usize, offset: u32, pos: usize, amount: i64) {
        let free = &mut self.free[offset as usize + pos];
        let before = (*free).max(0);
        *free -= amount;
        self.room[level][pos] -= before - (*free).max(0);
    }

    /// Is every block of `level` short of `need` (so no task needing it fits anywhere
    /// on the level until slots are released)? Only a cheap sufficient test: false
    /// when in doubt.
    #[inline]
    pub fn level_is_short(&self, defs: &ResourceDefs, level: usize, need: &[i64]) -> bool {
        defs.by_level[level]
            .iter()
            .zip(&self.room[level])
            .any(|(r, &room)| need[r.resource] > room)
    }

    /// Subtracts a running task's recorded charges; unknown nodes and resources are ignored.
    pub fn subtract(
        &mut self,
        defs: &ResourceDefs,
        levels: &Levels,
        nodes: &Nodes,
        charges: &[NodeCharge],
    ) {
        for charge in charges {
            let Some(level) = levels.id(&charge.level) else {
                continue;
            };
            let Some(offset) = nodes
                .named(level, &charge.node)
                .next()
                .map(|node| self.block_of_node[node])
                .filter(|&offset| offset != NO_BLOCK)
            else {
                continue;
            };
            for (name, amount) in &charge.amounts {
                let Some(id) = defs.id(name) else { continue };
                if let Some(pos) = defs.by_level[level].iter().position(|r| r.resource == id) {
                    self.take_at(level, offset, pos, *amount);
                }
            }
        }
    }

    /// The block of a node (by index), or [`NO_BLOCK`] if its level has no resources.
    pub fn block_of(&self, node: usize) -> u32 {
        self.block_of_node[node]
    }

    /// Does the block at `offset` (of a node of `level`) have room for `need`?
    #[inline]
    pub fn has_room(&self, defs: &ResourceDefs, level: usize, offset: u32, need: &[i64]) -> bool {
        offset == NO_BLOCK
            || defs.by_level[level]
                .iter()
                .enumerate()
                .all(|(pos, r)| need[r.resource] <= self.free[offset as usize + pos])
    }

    /// Checks that every node on `path` has room for `need`; the first shortage otherwise.
    pub fn check(
        &self,
        defs: &ResourceDefs,
        path: &[(usize, usize)],
        need: &[i64],
    ) -> Result<(), Shortage> {
        self.check_blocks(
            defs,
            path.iter()
                .map(|&(node, level)| (node, level, self.block_of_node[node])),
            need,
        )
    }

    /// [`check`](Self::check) over `(node, level, block)` triples, for a caller that
    /// already knows the blocks (see [`block_of`](Self::block_of)).
    pub fn check_blocks(
        &self,
        defs: &ResourceDefs,
        path: impl IntoIterator<Item = (usize, usize, u32)>,
        need: &[i64],
    ) -> Result<(), Shortage> {
        for (node, level, offset) in path {
            if offset == NO_BLOCK {
                continue;
            }
            for (pos, r) in defs.by_level[level].iter().enumerate() {
                let free = self.free[offset as usize + pos];
                if need[r.resource] > free {
                    return Err(Shortage {
                        node,
                        resource: r.resource,
                        need: need[r.resource],
                        free,
                        limit: r.limit,
                    });
                }
            }
        }
        Ok(())
    }

    /// Takes `need` from every node on `path` (after a successful [`check`](Self::check)).
    pub fn take(&mut self, defs: &ResourceDefs, path: &[(usize, usize)], need: &[i64]) {
        for &(node, level) in path {
            let offset = self.block_of_node[node];
            self.take_block(defs, level, offset, need);
        }
    }

    /// Takes `need` from the `(node, level, block)` triples of a path (after a
    /// successful [`check_blocks`](Self::check_blocks)).
    pub fn take_blocks(
        &mut self,
        defs: &ResourceDefs,
        path: impl IntoIterator<Item = (usize, usize, u32)>,
        need: &[i64],
    ) {
        for (_, level, offset) in path {
            self.take_block(defs, level, offset, need);
        }
    }

    fn take_block(&mut self, defs: &ResourceDefs, level: usize, offset: u32, need: &[i64]) {
        if offset == NO_BLOCK {
            return;
        }
        for (pos, r) in defs.by_level[level].iter().enumerate() {
            self.take_at(level, offset, pos, need[r.resource]);
        }
    }
}
