//! The darts space behind the space trait: the registry's `darts` (see [`SpaceDef`] for the
//! vocabulary).
//!
//! - Choice points: `normal/j<-i` then `reduce/j<-i`, the 14 edges of each cell type.
//! - Operator candidates: the op set without `none`. A single-path supernet step (SPOS, as ABS
//!   trains the DARTS supernet; Hu et al., ECCV 2020) runs one op on *every* edge, so `none` is never
//!   a candidate an edge trains, scores or loses; it is the marker of an edge a stand-alone child
//!   does not keep, which every darts choice point accepts ([`SpaceDef::allows`]).
//! - Linked choice points (`linked_cells`, default true): the edge `j<-i` of the normal and of the
//!   reduction cell share one op list, so shrinking drops an op from both at once. This is ABS's
//!   setting (it shrinks one op list per edge, shared by both cell types), and it gives every
//!   shrinking decision the children of both cells. `--separate-cells` shrinks the 28 lists apart.
//! - Paths and children: a *path* (what a supernet step trains and the angle scores) has an
//!   operator candidate on every edge; a *child* is a genotype: every intermediate node keeps
//!   exactly two of its incoming edges, each with a candidate, and every other edge is `none`.
//!   [`SpaceDef::sample_child`], [`SpaceDef::mutate`] and [`SpaceDef::crossover`] work node by
//!   node, so the search only ever meets genotypes.
//! - Arch text: genotype text ([`super::genotype`]) for children, the edge form ([`super::arch`])
//!   for paths; published genotype names are read too.
//! - Latency pieces ([`super::pieces`]): those of a child's evaluation network, the one `pwsnas
//!   export` writes.
//! - Not supported: weight copies (strategy 2; every edge holds one module per op), refused with an
//!   error where asked for.
use rand::seq::{index, IndexedRandom};
use rand::{Rng, RngCore};
use tch::nn;

use super::cell::{self, INPUTS, LAST};
use super::net::{DartsNet, Role};
use super::{darts_op_names, is_darts_op, CellKind, DartsParams, Genotype};
use crate::cost::Cost;
use crate::drawing::{CellDrawing, CellEdge, CellNode, Drawing, NodeRole};
use crate::error::{ModelError, Result};
use crate::net::aux_head::AuxShape;
use crate::net::pieces::PieceKey;
use crate::net::Network;
use crate::op::Op;
use crate::space::{Arch, ShrinkDefaults, Space, SpaceDef, SpaceKind, SpaceParams};

/// The largest sep_conv/dil_conv kernel a space may list (DARTS uses 3 and 5).
const MAX_KERNEL: u8 = 11;

impl SpaceParams for DartsParams {
    const NAME: &'static str = "darts";
}

/// The choice points of node `j`'s incoming edges in the `kind` cell.
fn node_edges(kind: CellKind, j: usize) -> impl Iterator<Item = (usize, usize)> {
    (0..j).map(move |i| (i, kind.offset() + cell::edge_index(j, i)))
}

/// Gives node `j` of the `kind` cell two inputs drawn uniformly, each with an op drawn from its
/// edge's allowed ops, and cuts its other edges.
fn draw_node(space: &Space, ops: &mut [Op], kind: CellKind, j: usize, rng: &mut dyn RngCore) {
    let kept = index::sample(rng, j, 2);
    for (i, cp) in node_edges(kind, j) {
        ops[cp] = if kept.iter().any(|k| k == i) {
            *space.choices[cp].ops.choose(rng).expect("a choice point allows an op")
        } else {
            Op::None
        };
    }
}

/// The nodes of every cell: `(kind, j)`.
fn nodes() -> impl Iterator<Item = (CellKind, usize)> {
    CellKind::BOTH.into_iter().flat_map(|k| (INPUTS..=LAST).map(move |j| (k, j)))
}

impl SpaceDef for DartsParams {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn params_json(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("darts parameters serialise")
    }

    fn validate(&self) -> Result<()> {
        let bad = |field: &str, reason: String| {
            Err(ModelError::InvalidParam { space: "darts".into(), field: field.into(), reason })
        };
        if self.layers < 3 {
            return bad(
                "layers",
                format!(
                    "need at least 3 cells (--layers; DARTS puts reduction cells at layers/3 and 2·layers/3), got {}",
                    self.layers
                ),
            );
        }
        // Upper bounds far above any real network, so that a damaged or mistyped file is an error
        // instead of a network that never finishes building or exhausts the memory.
        for (field, value, max) in [
            ("channels", self.channels, 4096),
            ("layers", self.layers, 256),
            ("classes", self.classes, 100_000),
            ("input_channels", self.input_channels, 64),
            ("input_size", self.input_size, 4096),
        ] {
            if value > max {
                return bad(field, format!("{value} is more than the largest supported, {max}"));
            }
        }
        if self.channels == 0 {
            return bad("channels", "must be at least 1".into());
        }
        for (i, op) in self.ops.iter().enumerate() {
            if !is_darts_op(*op) {
                return bad("ops", format!("'{op}' is not a darts op (expected among {})", darts_op_names()));
            }
            if let Op::SepConv { kernel } | Op::DilConv { kernel } = op {
                if *kernel > MAX_KERNEL {
                    return bad("ops", format!("'{op}': kernels above {MAX_KERNEL} are not supported"));
                }
            }
            if self.ops[..i].contains(op) {
                return bad("ops", format!("'{op}' appears twice"));
            }
        }
        if self.ops.iter().all(|op| *op == Op::None) {
            return bad("ops", "the op set has no op other than none (none is no operator candidate: children cut the edges they do not keep)".into());
        }
        if self.classes < 2 {
            return bad("classes", format!("need at least 2 classes, got {}", self.classes));
        }
        if self.input_channels == 0 {
            return bad("input_channels", "must be at least 1".into());
        }
        if self.input_size < 4 || !self.input_size.is_multiple_of(4) {
            return bad(
                "input_size",
                format!(
                    "the two reduction cells halve the size and FactorizedReduce needs an even size at each, so it must be a multiple of 4, got {}",
                    self.input_size
                ),
            );
        }
        Ok(())
    }

    fn classes(&self) -> usize {
        self.classes
    }

    fn input_shape(&self) -> [usize; 3] {
        [self.input_channels, self.input_size, self.input_size]
    }

    fn for_data(&self, channels: usize, size: usize, classes: usize) -> SpaceKind {
        SpaceKind::new(DartsParams { input_channels: channels, input_size: size, classes, ..self.clone() })
    }

    /// Depth is L, the cells in all, as DARTS and PDARTS count them.
    fn with_depth(&self, depth: usize) -> Option<SpaceKind> {
        Some(SpaceKind::new(DartsParams { layers: depth, ..self.clone() }))
    }

    /// `normal/2<-0`, …, `normal/5<-4`, `reduce/2<-0`, …, `reduce/5<-4`.
    fn choice_point_names(&self) -> Vec<String> {
        CellKind::BOTH
            .iter()
            .flat_map(|k| cell::edges().into_iter().map(move |(j, i)| format!("{}/{j}<-{i}", k.name())))
            .collect()
    }

    /// The op set without `none` on every edge (see the module docs).
    fn full_ops(&self) -> Vec<Vec<Op>> {
        let candidates: Vec<Op> = self.ops.iter().copied().filter(|op| *op != Op::None).collect();
        vec![candidates; self.choice_points()]
    }

    /// None: the darts network has no weight copies ([`SpaceDef::weight_copies`]).
    fn previous_choices(&self, _cp: usize) -> Vec<usize> {
        Vec::new()
    }

    fn linked(&self, cp: usize) -> Vec<usize> {
        self.linked_choice(cp).into_iter().collect()
    }

    /// The allowed ops, and `none` anywhere: the edges a child does not keep.
    fn allows(&self, allowed: &[Op], op: Op) -> bool {
        op == Op::None || allowed.contains(&op)
    }

    fn weight_copies(&self) -> bool {
        false
    }

    fn drop_path(&self) -> bool {
        true
    }

    /// The output of the second reduction cell ([`DartsParams::aux_cell`]): `4·4C` channels at a
    /// quarter of the input size (8×8 on CIFAR-10's 32×32, as DARTS's `AuxiliaryHeadCIFAR` assumes).
    fn aux_shape(&self) -> Option<AuxShape> {
        let cell = self.cells()[self.aux_cell()];
        Some(AuxShape { channels: cell.output_channels(), size: cell.output_size, classes: self.classes })
    }

    /// The normal cell's edges: PDARTS caps the skips of the normal cell only (its reduction cell
    /// halves the size on every edge, so a skip there is a FactorizedReduce, not an identity).
    fn skip_capped(&self, cp: usize) -> bool {
        cp < CellKind::Reduce.offset()
    }

    fn format_arch(&self, arch: &Arch) -> String {
        DartsParams::format_arch(self, &arch.ops)
    }

    /// The normal and the reduction cell as DARTS's `visualize.py` draws them: inputs `c_{k-2}` and
    /// `c_{k-1}`, intermediate nodes 0–3, and the output `c_{k}` concatenating them; each edge the
    /// arch keeps labelled with its op (`none` edges are left out, so a child shows two inputs per
    /// node and a path every edge).
    fn drawing(&self, arch: &Arch) -> Drawing {
        let cells = CellKind::BOTH
            .iter()
            .map(|&kind| {
                let node = |label: String, role| CellNode { label, role };
                let mut nodes =
                    vec![node("c_{k-2}".into(), NodeRole::Input), node("c_{k-1}".into(), NodeRole::Input)];
                nodes.extend((0..cell::NODES).map(|n| node(n.to_string(), NodeRole::Inner)));
                nodes.push(node("c_{k}".into(), NodeRole::Output));
                let output = nodes.len() - 1;
                let mut edges: Vec<CellEdge> = cell::edges()
                    .into_iter()
                    .map(|(to, from)| CellEdge {
                        from,
                        to,
                        op: Some(arch.ops[kind.offset() + cell::edge_index(to, from)]),
                    })
                    .collect();
                edges.extend(cell::CONCAT.iter().map(|&from| CellEdge { from, to: output, op: None }));
                let title = match kind {
                    CellKind::Normal => "normal cell",
                    CellKind::Reduce => "reduction cell",
                };
                CellDrawing { title: title.into(), nodes, edges }
            })
            .collect();
        Drawing::Cells(cells)
    }

    fn read_arch(&self, s: &str) -> Result<Arch> {
        Ok(Arch { ops: self.parse_arch(s)? })
    }

    /// Every node keeps exactly two inputs other than `none` (a genotype).
    fn check_child(&self, arch: &Arch) -> Result<()> {
        if arch.ops.len() != self.choice_points() {
            return Err(ModelError::MalformedArch {
                arch: format!("{:?}", arch.ops),
                reason: format!("a darts arch has {} ops, got {}", self.choice_points(), arch.ops.len()),
            });
        }
        Genotype::from_ops(&arch.ops).map(|_| ())
    }

    fn children_are_paths(&self) -> bool {
        false
    }

    /// Every node keeps its two latest inputs (node 2 the cell inputs, node `j` nodes `j - 2` and
    /// `j - 1`) with `path`'s ops, so that both strides of a reduction cell keep ops; every other edge
    /// is `none`.
    fn child_of_path(&self, path: &Arch) -> Arch {
        let mut ops = path.ops.clone();
        for (kind, j) in nodes() {
            for (i, cp) in node_edges(kind, j) {
                if i + 2 < j {
                    ops[cp] = Op::None;
                }
            }
        }
        Arch { ops }
    }

    /// Genotypes of `space`: per node, the sum over its pairs of inputs of the product of their
    /// edges' op counts, multiplied over the nodes of both cells.
    fn child_count(&self, space: &Space) -> u128 {
        nodes().fold(1u128, |acc, (kind, j)| {
            let counts: Vec<u128> =
                node_edges(kind, j).map(|(_, cp)| space.choices[cp].ops.len() as u128).collect();
            let mut pairs = 0u128;
            for a in 0..counts.len() {
                for b in a + 1..counts.len() {
                    pairs += counts[a] * counts[b];
                }
            }
            acc.saturating_mul(pairs)
        })
    }

    /// A genotype: every node's two inputs drawn uniformly among its incoming edges, each with an op
    /// drawn uniformly from its edge's allowed ops.
    fn sample_child(&self, space: &Space, rng: &mut dyn RngCore) -> Arch {
        let mut ops = vec![Op::None; self.choice_points()];
        for (kind, j) in nodes() {
            draw_node(space, &mut ops, kind, j, rng);
        }
        Arch { ops }
    }

    /// Node by node: with probability `prob` the node's two inputs and their ops are drawn anew,
    /// else each kept edge's op is redrawn with probability `prob`. A node of `parent` that is not
    /// a genotype node of `space` (not two kept inputs, or an op the space no longer allows) is drawn
    /// anew, so the result is always a child of `space`.
    fn mutate(&self, space: &Space, parent: &Arch, prob: f64, rng: &mut dyn RngCore) -> Arch {
        let mut ops = parent.ops.clone();
        for (kind, j) in nodes() {
            let kept: Vec<usize> =
                node_edges(kind, j).map(|(_, cp)| cp).filter(|&cp| ops[cp] != Op::None).collect();
            let fits = kept.len() == 2 && kept.iter().all(|&cp| space.choices[cp].ops.contains(&ops[cp]));
            if !fits || rng.random::<f64>() < prob {
                draw_node(space, &mut ops, kind, j, rng);
                continue;
            }
            for cp in kept {
                if rng.random::<f64>() < prob {
                    ops[cp] = *space.choices[cp].ops.choose(rng).expect("a choice point allows an op");
                }
            }
        }
        Arch { ops }
    }

    /// Node by node: each node's two inputs and ops from one parent or the other, with equal chance.
    fn crossover(&self, _space: &Space, a: &Arch, b: &Arch, rng: &mut dyn RngCore) -> Arch {
        let mut ops = a.ops.clone();
        for (kind, j) in nodes() {
            if rng.random::<bool>() {
                for (_, cp) in node_edges(kind, j) {
                    ops[cp] = b.ops[cp];
                }
            }
        }
        Arch { ops }
    }

    /// DARTS's derivation (Liu et al., ICLR 2019, `model_search.py`'s `genotype()`), node by node
    /// in both cells: an edge's strength is the largest strength of its ops other than `none`; the
    /// node keeps its two strongest incoming edges (the earlier input on a tie), each with its
    /// strongest op other than `none`, and cuts the others. The result is a genotype of `space`.
    fn derive_child(&self, space: &Space, strengths: &[Vec<f64>]) -> Arch {
        // The strongest op of an edge other than `none`, and its strength.
        let best = |cp: usize| {
            space.choices[cp].ops.iter().zip(&strengths[cp]).filter(|(op, _)| **op != Op::None).fold(
                None,
                |acc: Option<(Op, f64)>, (&op, &w)| match acc {
                    Some((_, a)) if a >= w => acc,
                    _ => Some((op, w)),
                },
            )
        };
        let mut ops = vec![Op::None; self.choice_points()];
        for (kind, j) in nodes() {
            let mut edges: Vec<(usize, Op, f64)> =
                node_edges(kind, j).filter_map(|(_, cp)| best(cp).map(|(op, w)| (cp, op, w))).collect();
            // Stable: on equal strength the earlier input stays first.
            edges.sort_by(|a, b| b.2.total_cmp(&a.2));
            for &(cp, op, _) in edges.iter().take(2) {
                ops[cp] = op;
            }
        }
        Arch { ops }
    }

    fn cost(&self, arch: &Arch) -> Cost {
        DartsParams::cost(self, &arch.ops)
    }

    /// The pieces of the child's evaluation network (see [`super::pieces`]).
    fn composition(&self, arch: &Arch) -> Vec<(PieceKey, usize)> {
        super::pieces::composition(self, &arch.ops)
    }

    /// ABS's rule for DARTS: every round drops the lowest-scored op of every edge (one per op list:
    /// 14 with linked cells, 28 without), until every edge keeps 2 candidates (2^28 paths).
    fn shrink_defaults(&self, _candidates: usize) -> ShrinkDefaults {
        let lists = if self.linked_cells { cell::EDGES } else { self.choice_points() };
        ShrinkDefaults {
            drop_per_round: lists,
            target_size: 2f64.powi(self.choice_points() as i32),
            per_choice_point: true,
        }
    }

    /// The search network for a space of paths; a child's evaluation network (no BN after pools,
    /// DARTS's `model.py`) for the one-child space of a genotype, recognised by its edges that
    /// allow `none` alone.
    fn build(&self, root: &nn::Path, space: &Space) -> Box<dyn Network> {
        let lists: Vec<Vec<Op>> = space.choices.iter().map(|c| c.ops.clone()).collect();
        let child = lists.iter().any(|ops| ops[..] == [Op::None]);
        let role = if child { Role::Standalone } else { Role::Supernet };
        Box::new(DartsNet::new(root, self, &lists, role))
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    fn shrunk(linked: bool) -> Space {
        let mut space =
            Space::full(SpaceKind::new(DartsParams { linked_cells: linked, ..DartsParams::default() }));
        space.remove(0, Op::SepConv { kernel: 3 }).unwrap();
        space.remove(5, Op::MaxPool3x3).unwrap();
        space.remove(5, Op::AvgPool3x3).unwrap();
        space.remove(20, Op::SkipConnect).unwrap();
        space
    }

    #[test]
    fn none_is_no_candidate_but_every_child_may_cut_an_edge() {
        let space = Space::full(SpaceKind::by_name("darts").unwrap());
        assert_eq!(space.choices.len(), 28);
        assert!(space.choices.iter().all(|c| c.ops.len() == 7 && !c.ops.contains(&Op::None)));
        let v2 = space.kind.parse_arch("DARTS_V2").unwrap();
        space.check_child(&v2).unwrap();
        // A path has a candidate on every edge: in the space, but not a child.
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
        let path = space.sample(&mut rng);
        assert!(path.ops.iter().all(|op| *op != Op::None));
        assert!(space.contains(&path));
        let err = space.check_child(&path).unwrap_err().to_string();
        assert!(err.contains("normal, node 3: has 3 inputs other than none"), "{err}");
        // Paths round trip through the edge form.
        assert_eq!(space.kind.read_arch(&space.format_arch(&path)).unwrap(), path);
    }

    #[test]
    fn linked_edges_shrink_together_unless_the_cells_are_separate() {
        let linked = shrunk(true);
        assert!(!linked.choices[14].ops.contains(&Op::SepConv { kernel: 3 }));
        assert_eq!(linked.choices[19].ops.len(), 5);
        assert_eq!(linked.choices[6].ops.len(), 6, "reduce/4<-2 (20) is linked to normal/4<-2 (6)");
        let separate = shrunk(false);
        assert_eq!(separate.choices[14].ops.len(), 7);
        assert_eq!(separate.choices[6].ops.len(), 7);
        // A space file whose linked lists differ does not fit a linked space.
        let mut json = separate.to_json();
        json["params"]["linked_cells"] = true.into();
        let err = Space::from_json(json).unwrap_err().to_string();
        assert!(err.contains("'normal/2<-0' and 'reduce/2<-0' share one op list"), "{err}");
        assert_eq!(Space::from_json(linked.to_json()).unwrap(), linked);
    }

    #[test]
    fn sampling_mutation_and_crossover_only_make_genotypes_of_the_space() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        for space in [shrunk(true), shrunk(false)] {
            let parents: Vec<Arch> = (0..30).map(|_| space.sample_child(&mut rng)).collect();
            crate::space::tests::check_hooks_on(&space, &parents, &mut rng);
            // Every input pair of every node, and every allowed op of every edge, gets drawn.
            let many: Vec<Arch> = (0..400).map(|_| space.sample_child(&mut rng)).collect();
            for (cp, choice) in space.choices.iter().enumerate() {
                for op in &choice.ops {
                    assert!(many.iter().any(|a| a.ops[cp] == *op), "{} {op}", choice.name);
                }
            }
            // A path (not a genotype) mutates into a genotype.
            let path = space.sample(&mut rng);
            space.check_child(&space.mutate(&path, 0.0, &mut rng)).unwrap();
        }
    }

    #[test]
    fn derivation_keeps_each_nodes_two_strongest_edges_with_their_strongest_op() {
        let space = Space::full(SpaceKind::by_name("darts").unwrap());
        let v2 = space.kind.parse_arch("DARTS_V2").unwrap();
        // V2's ops strong on its kept edges; on every cut edge one op nearly as strong, which must
        // not win its edge a place (edge strength is its strongest op: 0.5 < 0.6).
        let strengths: Vec<Vec<f64>> = space
            .choices
            .iter()
            .zip(&v2.ops)
            .map(|(cp, &kept)| {
                cp.ops
                    .iter()
                    .enumerate()
                    .map(|(k, &op)| match kept {
                        Op::None if k == 1 => 0.5,
                        Op::None => 0.1,
                        _ if op == kept => 0.6,
                        _ => 0.05,
                    })
                    .collect()
            })
            .collect();
        assert_eq!(space.derive_child(&strengths), v2);

        // All strengths equal: each node keeps its two earliest inputs, with each edge's first op.
        let flat: Vec<Vec<f64>> = space.choices.iter().map(|cp| vec![1.0; cp.ops.len()]).collect();
        let child = space.derive_child(&flat);
        for (kind, j) in nodes() {
            for (i, cp) in node_edges(kind, j) {
                let expected = if i < 2 { space.choices[cp].ops[0] } else { Op::None };
                assert_eq!(child.ops[cp], expected, "{kind:?} {j}<-{i}");
            }
        }

        // Any strengths on a shrunk space: a genotype of that space.
        let shrunk = shrunk(false);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        for _ in 0..20 {
            let w: Vec<Vec<f64>> = shrunk
                .choices
                .iter()
                .map(|cp| cp.ops.iter().map(|_| rng.random::<f64>()).collect())
                .collect();
            let child = shrunk.derive_child(&w);
            shrunk.check_child(&child).unwrap();
            assert!(shrunk.contains(&child));
        }
    }

    #[test]
    fn children_are_counted_as_genotypes() {
        // Every edge down to one op: each node picks a pair of inputs, (1·3·6·10)² children.
        let mut space = Space::full(SpaceKind::by_name("darts").unwrap());
        for cp in 0..28 {
            space.choices[cp].ops.truncate(1);
        }
        assert_eq!(space.size(), 1);
        assert_eq!(space.kind.child_count(&space), 180 * 180);
        // Node 2 with 7 ops on both inputs: 49 children for it alone.
        let full = Space::full(SpaceKind::by_name("darts").unwrap());
        let node2 = 49u128;
        let node3 = 3 * 49u128;
        assert!(full.kind.child_count(&full).is_multiple_of(node2 * node3));
        assert!(!full.kind.children_are_paths());
    }

    #[test]
    fn the_default_shrinking_drops_one_op_per_edge() {
        let d = SpaceKind::by_name("darts").unwrap().shrink_defaults(7 * 28);
        assert_eq!((d.drop_per_round, d.per_choice_point), (14, true));
        let separate = DartsParams { linked_cells: false, ..DartsParams::default() };
        assert_eq!(separate.shrink_defaults(7 * 28).drop_per_round, 28);
        assert!(!separate.weight_copies());
    }

    #[test]
    fn a_path_becomes_the_child_of_each_nodes_two_latest_inputs() {
        let space = Space::full(SpaceKind::by_name("darts").unwrap());
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let path = space.sample(&mut rng);
        let child = space.kind.child_of_path(&path);
        space.check_child(&child).unwrap();
        for (cp, name) in space.kind.choice_point_names().iter().enumerate() {
            let (j, i) = name.split_once('/').unwrap().1.split_once("<-").unwrap();
            let (j, i): (usize, usize) = (j.parse().unwrap(), i.parse().unwrap());
            let expected = if i + 2 >= j { path.ops[cp] } else { Op::None };
            assert_eq!(child.ops[cp], expected, "{name}");
        }
    }
}
