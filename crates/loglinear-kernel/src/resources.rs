//! Per-program resource accounting: how many bytes of tiles one grid program holds live at once, checked
//! against a target's budget ([`crate::target::Capabilities::tile_memory`], e.g. 48 KiB of workgroup memory
//! under Vulkan on NVIDIA, 32 KiB on lavapipe).
//!
//! Liveness is over the kernel's statements in program order: a tile is live from its first to its last
//! reference; a tile referenced both inside and outside a loop, or carried around it ([`loop_carried`]), is
//! live for the whole loop. Tiles are counted at the accumulation type's size.

use std::fmt;

use crate::analysis::{loop_carried, op_reads};
use crate::kernel::{Kernel, Program, Stmt, TileId};
use crate::verify::dim_value;
use crate::SizeEnv;

/// The resources of one kernel's grid program.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KernelResources {
    /// The kernel's name.
    pub kernel: String,
    /// Most bytes of tiles live at once.
    pub peak_bytes: usize,
    /// Bytes of all its tiles together (what a naive backend would allocate).
    pub total_bytes: usize,
    /// Number of tiles.
    pub tiles: usize,
}

impl fmt::Display for KernelResources {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "kernel {}: {} tiles, peak {} B live ({} B in all)",
            self.kernel, self.tiles, self.peak_bytes, self.total_bytes
        )
    }
}

struct Walk {
    pos: usize,
    /// Per tile: (position, loops enclosing the reference).
    refs: Vec<Vec<(usize, Vec<usize>)>>,
    /// Loop ranges in preorder: (first position, last position).
    loops: Vec<(usize, usize)>,
}

impl Walk {
    fn touch(&mut self, t: TileId, stack: &[usize]) {
        if let Some(r) = self.refs.get_mut(t.0 as usize) {
            r.push((self.pos, stack.to_vec()));
        }
    }

    fn body(&mut self, body: &[Stmt], stack: &mut Vec<usize>) {
        for s in body {
            match s {
                Stmt::Assign { dst, op } => {
                    for t in op_reads(op) {
                        self.touch(t, stack);
                    }
                    self.touch(*dst, stack);
                    self.pos += 1;
                }
                Stmt::Store { src, .. } => {
                    self.touch(*src, stack);
                    self.pos += 1;
                }
                Stmt::For { body, .. } => {
                    let id = self.loops.len();
                    self.loops.push((self.pos, self.pos));
                    stack.push(id);
                    self.body(body, stack);
                    stack.pop();
                    self.loops[id].1 = self.pos;
                    self.pos += 1;
                }
                Stmt::If { then, els, .. } => {
                    self.body(then, stack);
                    self.body(els, stack);
                }
            }
        }
    }
}

/// Per tile: its live interval `(first, last)` in statement positions (`None`: never referenced) and its
/// size in elements.
pub fn live_intervals(k: &Kernel, env: &SizeEnv) -> Vec<(Option<(usize, usize)>, usize)> {
    let mut w = Walk { pos: 0, refs: vec![Vec::new(); k.tiles.len()], loops: Vec::new() };
    w.body(&k.body, &mut Vec::new());
    let carried = loop_carried(k);
    w.refs
        .iter()
        .enumerate()
        .map(|(t, refs)| {
            let s = k.tiles[t].shape;
            let size = dim_value(s[0], env) * dim_value(s[1], env);
            let (Some(lo), Some(hi)) = (refs.iter().map(|r| r.0).min(), refs.iter().map(|r| r.0).max()) else {
                return (None, size);
            };
            let (mut lo, mut hi) = (lo, hi);
            for (id, &(a, z)) in w.loops.iter().enumerate() {
                let inside = refs.iter().filter(|r| r.1.contains(&id)).count();
                let carried_here = carried.get(id).is_some_and(|c| c.tiles.contains(&TileId(t as u32)));
                if (inside > 0 && inside < refs.len()) || carried_here {
                    lo = lo.min(a);
                    hi = hi.max(z);
                }
            }
            (Some((lo, hi)), size)
        })
        .collect()
}

/// The resources of kernel `k` for sizes `env`, tiles counted at `elem_bytes` each.
pub fn kernel_resources(k: &Kernel, env: &SizeEnv, elem_bytes: usize) -> KernelResources {
    let iv = live_intervals(k, env);
    let ends = iv.iter().filter_map(|x| x.0.map(|(_, z)| z)).max().unwrap_or(0);
    let peak = (0..=ends)
        .map(|p| iv.iter().filter(|(i, _)| i.is_some_and(|(a, z)| a <= p && p <= z)).map(|x| x.1 * elem_bytes).sum())
        .max()
        .unwrap_or(0);
    KernelResources {
        kernel: k.name.clone(),
        peak_bytes: peak,
        total_bytes: iv.iter().map(|x| x.1 * elem_bytes).sum(),
        tiles: k.tiles.len(),
    }
}

/// Where one tile of a grid program lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TileHome {
    /// In fast tile memory (GPU workgroup memory), at this element offset.
    Fast(usize),
    /// In the program's spill region (global memory), at this element offset.
    Spill(usize),
    /// Never referenced: no memory.
    Unused,
}

/// A grid program's tile memory: every tile's home, tiles whose live ranges do not overlap sharing memory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TileArena {
    /// Per tile (by [`TileId`]).
    pub homes: Vec<TileHome>,
    /// Elements of fast memory used (at most the capacity).
    pub fast: usize,
    /// Elements of spill memory per grid program.
    pub spill: usize,
}

/// Lays out kernel `k`'s tiles for sizes `env` in `fast_capacity` elements of fast memory and, for what does
/// not fit, a spill region: tiles in increasing size (then first reference), each at the lowest offset free of
/// every placed tile whose live range overlaps its own (first fit), in fast memory when it fits there.
pub fn tile_arena(k: &Kernel, env: &SizeEnv, fast_capacity: usize) -> TileArena {
    let iv = live_intervals(k, env);
    let mut order: Vec<usize> = (0..iv.len()).filter(|&t| iv[t].0.is_some()).collect();
    order.sort_by_key(|&t| (iv[t].1, iv[t].0.map(|x| x.0), t));
    let mut homes = vec![TileHome::Unused; iv.len()];
    // Placed tiles per arena: (interval, offset, size).
    let mut placed: [Vec<((usize, usize), usize, usize)>; 2] = [Vec::new(), Vec::new()];
    let first_fit = |placed: &[((usize, usize), usize, usize)], (a, z): (usize, usize), size: usize| {
        let mut busy: Vec<(usize, usize)> =
            placed.iter().filter(|((pa, pz), _, _)| *pa <= z && a <= *pz).map(|(_, o, n)| (*o, *n)).collect();
        busy.sort_unstable();
        let mut off = 0;
        for (o, n) in busy {
            if off + size <= o {
                break;
            }
            off = off.max(o + n);
        }
        off
    };
    for t in order {
        let (Some(range), size) = iv[t] else { continue };
        let off = first_fit(&placed[0], range, size);
        if off + size <= fast_capacity {
            placed[0].push((range, off, size));
            homes[t] = TileHome::Fast(off);
        } else {
            let off = first_fit(&placed[1], range, size);
            placed[1].push((range, off, size));
            homes[t] = TileHome::Spill(off);
        }
    }
    let extent = |p: &[((usize, usize), usize, usize)]| p.iter().map(|(_, o, n)| o + n).max().unwrap_or(0);
    TileArena { homes, fast: extent(&placed[0]), spill: extent(&placed[1]) }
}

/// The resources of every kernel of `program`, at the program's accumulation type.
pub fn program_resources(program: &Program, env: &SizeEnv) -> Vec<KernelResources> {
    program.kernels.iter().map(|k| kernel_resources(k, env, program.accum.size())).collect()
}

/// Checks every kernel of `program` against `budget` bytes of live tiles per grid program.
///
/// # Errors
/// One line per kernel over budget: its name, its peak and the budget.
pub fn check_budget(program: &Program, env: &SizeEnv, budget: usize) -> Result<(), Vec<String>> {
    let over: Vec<String> = program_resources(program, env)
        .into_iter()
        .filter(|r| r.peak_bytes > budget)
        .map(|r| {
            format!("kernel `{}` holds {} B of tiles live at once; the budget is {budget} B", r.kernel, r.peak_bytes)
        })
        .collect();
    if over.is_empty() {
        Ok(())
    } else {
        Err(over)
    }
}

/// Bytes of the scratch buffers of `program` for sizes `env` (what a run allocates beyond its inputs, output and
/// states), each at its element type (the accumulation type when the program is not yet typed).
pub fn scratch_bytes(program: &Program, env: &SizeEnv) -> u128 {
    program
        .buffers
        .iter()
        .filter(|b| b.kind == crate::kernel::BufKind::Scratch)
        .map(|b| b.shape.iter().fold(b.elem.size() as u128, |a, d| a.saturating_mul(dim_value(*d, env) as u128)))
        .sum()
}
