//! The darts network on libtorch: DARTS's `NetworkCIFAR` (stand-alone child) and its search network
//! (supernet), from one code path, behind the [`Network`] trait. Each edge of each cell is an
//! [`Edge`] (the [`OpSite`] of its choice point) holding a module for every op its choice point
//! allows, and one for `none` (the edges a child does not keep); a stand-alone network is the same
//! network built from one op per choice point (and without the BN after pools, see [`Role`]).
//!
//! The forward takes a [`Mix`]: one op per edge (SPOS), or every allowed op weighted (DARTS's
//! continuous relaxation), through [`OpSite::forward`]. Weight copies (strategy 2) are not supported:
//! one module per op and edge.
use std::collections::HashMap;

use pwsnas_onnx::{Graph, GraphBuilder, SliceAxis, Value};
use tch::{nn, Tensor};

use super::cell::{self, INPUTS, LAST};
use super::ops::{DartsOp, Pool, Preprocess};
use super::{CellLayout, DartsParams, STEM_MULTIPLIER};
use crate::net::layers::{Act, BatchNorm, ConvBn, Linear, Mode, Param};
use crate::net::mix::{Mix, Weighted};
use crate::net::network::{conv_magnitude, Module, Network, OpSite};
use crate::net::pieces::{chain_graph, Piece, PieceKey};
use crate::op::Op;
use crate::vector::{Composition, Segment};

/// Which network to build.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The search network: a BN without affine parameters after every pool (DARTS's
    /// `model_search.py`), so that pools' outputs are on the scale of the other ops'.
    Supernet,
    /// The evaluation network of a child (DARTS's `model.py`): pools are bare.
    Standalone,
}

/// One edge `j<-i` of one cell: a module per op its choice point allows, and `none`.
pub struct Edge {
    /// The choice point (0..28).
    pub cp: usize,
    pub stride: usize,
    /// Channels of the edge's input and output.
    pub channels: usize,
    pub candidates: Vec<(Op, DartsOp)>,
}

impl Edge {
    /// The module of `op`.
    ///
    /// # Panics
    /// If the edge was not built with `op`.
    pub fn module(&self, op: Op) -> &DartsOp {
        let found = self.candidates.iter().find(|(o, _)| *o == op);
        &found.unwrap_or_else(|| panic!("edge of choice point {} was not built with op {op}", self.cp)).1
    }

    /// Whether `picks` is the identity alone (`skip_connect` at stride 1), which drop-path spares.
    fn is_identity(&self, picks: &[Weighted]) -> bool {
        matches!(picks, [only] if matches!(Edge::module(self, only.op), DartsOp::Identity))
    }
}

/// DARTS's `drop_path`: zeroes `y` for each image with probability `p` and scales the kept images
/// by `1 / (1 - p)`, so the expected output is unchanged. The mask comes from libtorch's generator.
pub fn drop_path(y: Tensor, p: f64) -> Tensor {
    let n = y.size()[0];
    let keep = Tensor::rand([n, 1, 1, 1], (y.kind(), y.device())).lt(1.0 - p).to_kind(y.kind());
    y * keep / (1.0 - p)
}

impl OpSite for Edge {
    fn cp(&self) -> usize {
        self.cp
    }

    fn module(&self, op: Op, _copy: usize) -> &dyn Module {
        Edge::module(self, op)
    }

    /// Parameter-free ops as their virtual kernels: a pool `1/9` everywhere, the identity an
    /// identity kernel, none 0.
    fn magnitude(&self, op: Op, _copy: usize) -> f64 {
        match Edge::module(self, op) {
            DartsOp::Zero => 0.0,
            DartsOp::Identity => 1.0 / (self.channels as f64).sqrt(),
            DartsOp::Pool(_) => 1.0 / 9.0,
            m => conv_magnitude(m),
        }
    }
}

/// One cell: preprocessing of its two inputs and its 14 edges.
pub struct DartsCell {
    pub layout: CellLayout,
    pub preprocess0: Preprocess,
    pub preprocess1: Preprocess,
    /// In [`cell::edges`] order.
    pub edges: Vec<Edge>,
}

pub struct DartsNet {
    pub params: DartsParams,
    pub stem: ConvBn,
    pub cells: Vec<DartsCell>,
    pub classifier: Linear,
}

impl DartsNet {
    /// Builds the network with a module for every op of `lists` (one list per choice point, 28) and
    /// for `none`.
    pub fn new(root: &nn::Path, params: &DartsParams, lists: &[Vec<Op>], role: Role) -> DartsNet {
        assert_eq!(lists.len(), params.choice_points(), "one op list per choice point");
        let stem_c = STEM_MULTIPLIER * params.channels;
        let stem =
            ConvBn::new(&(root / "stem"), Act::None, params.input_channels, stem_c, 3, 1, 1, Act::None);
        let cells = params
            .cells()
            .into_iter()
            .enumerate()
            .map(|(k, layout)| {
                let p = root / "cells" / k;
                let c = layout.channels;
                let edges = cell::edges()
                    .into_iter()
                    .map(|(j, i)| {
                        let cp = layout.kind().offset() + cell::edge_index(j, i);
                        let stride = layout.stride(i);
                        let ep = &p / format!("{j}<-{i}");
                        let mut candidates: Vec<(Op, DartsOp)> = lists[cp]
                            .iter()
                            .map(|&op| {
                                (op, DartsOp::new(&(&ep / op.name()), op, c, stride, role == Role::Supernet))
                            })
                            .collect();
                        if !lists[cp].contains(&Op::None) {
                            candidates.push((Op::None, DartsOp::Zero));
                        }
                        Edge { cp, stride, channels: c, candidates }
                    })
                    .collect();
                DartsCell {
                    layout,
                    preprocess0: Preprocess::new(
                        &(&p / "preprocess0"),
                        layout.c_prev_prev,
                        c,
                        layout.reduction_prev,
                    ),
                    preprocess1: Preprocess::new(&(&p / "preprocess1"), layout.c_prev, c, false),
                    edges,
                }
            })
            .collect();
        DartsNet {
            params: params.clone(),
            stem,
            cells,
            classifier: Linear::new(&(root / "classifier"), params.last_channels(), params.classes),
        }
    }

    /// Every edge of every cell.
    pub fn edges(&self) -> impl Iterator<Item = &Edge> {
        self.cells.iter().flat_map(|c| c.edges.iter())
    }

    /// The forward, keeping the output of cell [`DartsParams::aux_cell`] when `aux` is set.
    fn run(&self, x: &Tensor, mix: &Mix, mode: Mode, aux: bool) -> (Tensor, Option<Tensor>) {
        let s = self.stem.forward(x, mode);
        let (mut s0, mut s1) = (s.shallow_clone(), s);
        let mut features = None;
        for (k, cell) in self.cells.iter().enumerate() {
            let out = cell.forward(&s0, &s1, mix, mode);
            (s0, s1) = (s1, out);
            if aux && k == self.params.aux_cell() {
                features = Some(s1.shallow_clone());
            }
        }
        let pooled = s1.adaptive_avg_pool2d([1, 1]).flatten(1, -1);
        (self.classifier.forward(&pooled), features)
    }

    /// Global average pooling and the classifier on the last cell's output `x`.
    fn lower_head(&self, g: &mut GraphBuilder, x: &Value) -> Value {
        let pooled = g.global_avg_pool(x);
        let flat = g.flatten(&pooled);
        self.classifier.lower(g, &flat)
    }
}

impl Network for DartsNet {
    /// Logits of the ops and weights `mix` picks on every edge for a batch `x` (NCHW).
    fn forward(&self, x: &Tensor, mix: &Mix, _route: &[usize], mode: Mode) -> Tensor {
        self.run(x, mix, mode, false).0
    }

    /// The logits, and in training the output of the second reduction cell (DARTS's
    /// `NetworkCIFAR`: the auxiliary head reads cell `2·layers/3`).
    fn forward_aux(&self, x: &Tensor, mix: &Mix, _route: &[usize], mode: Mode) -> (Tensor, Option<Tensor>) {
        self.run(x, mix, mode, mode.train)
    }

    /// The child `ops` as graph IR from the graph input to the logits.
    fn lower(&self, g: &mut GraphBuilder, ops: &[Op], _route: &[usize]) -> Value {
        let input = g.input();
        let s = self.stem.lower(g, &input);
        let (mut s0, mut s1) = (s.clone(), s);
        for cell in &self.cells {
            let out = cell.lower(g, &s0, &s1, ops);
            (s0, s1) = (s1, out);
        }
        self.lower_head(g, &s1)
    }

    /// Every piece of the network (see [`crate::net::pieces`] and [`super::pieces`]), in network
    /// order: the stem; per cell its two preprocessings, then each op its edges were built with that
    /// emits nodes (at stride 1 keyed by the stage, at stride 2 by the reduction cell), the node sum
    /// and the concatenation of its stage (once per stage); the head.
    fn pieces(&self) -> Vec<Piece> {
        let p = &self.params;
        let input = [p.input_channels, p.input_size, p.input_size];
        let stem = [STEM_MULTIPLIER * p.channels, p.input_size, p.input_size];
        let mut out = vec![Piece { key: PieceKey::Stem, input, chainable: input == stem }];
        let add = |out: &mut Vec<Piece>, key: PieceKey, input: [usize; 3], output: [usize; 3]| {
            if !out.iter().any(|pc| pc.key == key) {
                out.push(Piece { key, input, chainable: input == output });
            }
        };
        for (k, cell) in self.cells.iter().enumerate() {
            let l = cell.layout;
            let node = l.node_shape();
            let pre = [l.channels, l.input_size, l.input_size];
            for input in 0..INPUTS {
                add(&mut out, PieceKey::Preprocess { cell: k, input }, l.input_shape(input), pre);
            }
            for e in &cell.edges {
                for &(op, _) in &e.candidates {
                    match e.stride {
                        1 if PieceKey::op_emits_nodes(op) => {
                            add(&mut out, PieceKey::Op { at: l.stage, op }, node, node)
                        }
                        2 if op != Op::None => {
                            add(&mut out, PieceKey::Reduce { stage: l.stage, op }, pre, node)
                        }
                        _ => {}
                    }
                }
            }
            add(&mut out, PieceKey::Merge { stage: l.stage, terms: 2 }, node, node);
            add(&mut out, PieceKey::Concat { stage: l.stage }, node, [l.output_channels(), node[1], node[2]]);
        }
        let last = self.cells.last().expect("a darts network has at least 3 cells").layout;
        let last = [last.output_channels(), last.output_size, last.output_size];
        out.push(Piece { key: PieceKey::Head, input: last, chainable: false });
        out
    }

    /// The graph of `piece` (one this network listed), as a chain of `copies` copies named `name`
    /// (see [`crate::net::pieces`]). Pools are lowered bare, as in the evaluation network of a child
    /// (the network `pwsnas export` lowers), also where this network is the search network.
    fn piece_graph(&self, piece: &Piece, name: &str, copies: usize) -> Graph {
        let p = &self.params;
        // The module of `op` on an edge at `stride` of the first cell of `stage` that has one.
        let op_module = |stage: usize, stride: usize, op: Op| {
            self.cells
                .iter()
                .filter(|c| c.layout.stage == stage)
                .flat_map(|c| &c.edges)
                .filter(|e| e.stride == stride)
                .find_map(|e| e.candidates.iter().find(|(o, _)| *o == op).map(|(_, m)| m))
                .expect("pieces() lists only ops some edge was built with")
        };
        let lower_op = |g: &mut GraphBuilder, x: &Value, module: &DartsOp| match module {
            DartsOp::Pool(pool) => Pool { kind: pool.kind, stride: pool.stride, bn: None }.lower(g, x),
            m => m.lower(g, x).expect("pieces() lists only ops that emit nodes"),
        };
        let stage_cell = |stage: usize| {
            self.cells.iter().find(|c| c.layout.stage == stage).expect("every stage has a cell").layout
        };
        match piece.key {
            PieceKey::Stem => {
                let stem = [STEM_MULTIPLIER * p.channels, p.input_size, p.input_size];
                chain_graph(name, piece.input, &stem, copies, |g, x| self.stem.lower(g, x))
            }
            PieceKey::Preprocess { cell, input } => {
                let c = &self.cells[cell];
                let l = c.layout;
                let pre = if input == 0 { &c.preprocess0 } else { &c.preprocess1 };
                chain_graph(name, piece.input, &[l.channels, l.input_size, l.input_size], copies, |g, x| {
                    pre.lower(g, x)
                })
            }
            PieceKey::Reduce { stage, op } => {
                let module = op_module(stage, 2, op);
                let node = stage_cell(stage).node_shape();
                chain_graph(name, piece.input, &node, copies, |g, x| lower_op(g, x, module))
            }
            PieceKey::Op { at, op } => {
                let module = op_module(at, 1, op);
                chain_graph(name, piece.input, &piece.input, copies, |g, x| lower_op(g, x, module))
            }
            PieceKey::Merge { terms, .. } => {
                chain_graph(name, piece.input, &piece.input, copies, |g, x| g.sum(&vec![x.clone(); terms]))
            }
            PieceKey::Concat { stage } => {
                let l = stage_cell(stage);
                let output = [l.output_channels(), l.output_size, l.output_size];
                chain_graph(name, piece.input, &output, copies, |g, x| {
                    g.concat(&vec![x.clone(); cell::NODES], 1)
                })
            }
            PieceKey::Head => {
                chain_graph(name, piece.input, &[p.classes], copies, |g, x| self.lower_head(g, x))
            }
            PieceKey::Reduction(_) | PieceKey::Relu { .. } => unreachable!("not listed by pieces()"),
        }
    }

    /// The child's weight vector (docs/method.md, strategy 1): per cell, over its 16 input→output
    /// paths ([`cell::paths`]) in order, the weights along each path; a path through `none` is left
    /// out, a pool adds a constant `[C, 3, 3]` kernel of 1/9, `skip_connect` adds nothing at stride 1
    /// (with [`Composition::Pwsnas`] an identity kernel of the edge's channels) and its
    /// FactorizedReduce's 2 convs at stride 2, a sep_conv its 4 convs, a dil_conv its 2; with
    /// [`Composition::Pwsnas`] each op's affine BN γ, β follow its convs (the affine-free BN after
    /// a pool in the supernet adds nothing). With [`Composition::Full`], the parts every child
    /// shares are added in network order: the stem, each cell's preprocessing (before its paths),
    /// the classifier.
    fn segments(&self, ops: &[Op], _route: &[usize], composition: Composition, out: &mut Vec<Segment>) {
        let paths = cell::paths();
        let full = composition == Composition::Full;
        if full {
            out.push(Segment::of(&self.stem.conv.weight));
        }
        for cell in &self.cells {
            if full {
                for w in cell.preprocess0.conv_weights().into_iter().chain(cell.preprocess1.conv_weights()) {
                    out.push(Segment::of(w));
                }
            }
            for path in &paths {
                let edges: Vec<&Edge> = path.edges.iter().map(|&e| &cell.edges[e]).collect();
                if edges.iter().any(|e| ops[e.cp] == Op::None) {
                    continue;
                }
                for e in edges {
                    let op = ops[e.cp];
                    match e.module(op) {
                        DartsOp::Pool(_) => {
                            out.push(Segment::Constant { len: cell.layout.channels * 9, value: 1.0 / 9.0 })
                        }
                        DartsOp::Identity if composition == Composition::Pwsnas => {
                            out.push(Segment::identity(e.channels))
                        }
                        _ => out.extend(Segment::of_module(e, op, 0, composition)),
                    }
                }
            }
        }
        if full {
            out.push(Segment::of(&self.classifier.weight));
        }
    }

    /// Trainable tensors every child uses: stem, preprocessing, classifier.
    fn shared_trainable<'a>(&'a self, out: &mut Vec<&'a Param>) {
        self.stem.trainable(out);
        for cell in &self.cells {
            cell.preprocess0.trainable(out);
            cell.preprocess1.trainable(out);
        }
        self.classifier.trainable(out);
    }

    fn shared_batch_norms(&self) -> Vec<&BatchNorm> {
        let mut v = vec![&self.stem.bn];
        for cell in &self.cells {
            v.extend(cell.preprocess0.batch_norms());
            v.extend(cell.preprocess1.batch_norms());
        }
        v
    }

    fn sites(&self) -> Box<dyn Iterator<Item = &dyn OpSite> + '_> {
        Box::new(self.edges().map(|e| e as &dyn OpSite))
    }

    /// Never called: the darts space has no weight copies ([`crate::space::SpaceDef::weight_copies`]),
    /// so the settings refuse `shrink.copies` above 1 before a supernet is built.
    fn grow_copies(&mut self, _root: &nn::Path, cp: usize, k: usize) {
        unreachable!("the darts network has no weight copies (asked for {k} at choice point {cp})")
    }
}

impl DartsCell {
    /// Preprocesses `s0` (from two cells back) and `s1` (the previous cell), sums every node's edges
    /// (each edge's ops and weights from `mix`) and concatenates the four intermediate nodes. A node
    /// whose edges all add nothing (`none`) is zeros. In training with [`Mode::drop_path`] above 0,
    /// each edge's output is dropped per image ([`drop_path`]) unless the edge is the identity, as
    /// DARTS's `NetworkCIFAR` does (with a weighted mix, the edge's sum is what is dropped).
    pub fn forward(&self, s0: &Tensor, s1: &Tensor, mix: &Mix, mode: Mode) -> Tensor {
        let mut states = vec![self.preprocess0.forward(s0, mode), self.preprocess1.forward(s1, mode)];
        for j in INPUTS..=LAST {
            let mut sum: Option<Tensor> = None;
            for (i, state) in states.iter().enumerate() {
                let edge = &self.edges[cell::edge_index(j, i)];
                if let Some(y) = edge.forward(state, mix.at(edge.cp), 0, mode) {
                    let y = if mode.train && mode.drop_path > 0.0 && !edge.is_identity(mix.at(edge.cp)) {
                        drop_path(y, mode.drop_path)
                    } else {
                        y
                    };
                    sum = Some(match sum {
                        Some(s) => s + y,
                        None => y,
                    });
                }
            }
            let node = sum.unwrap_or_else(|| {
                let (n, c, s) =
                    (states[1].size()[0], self.layout.channels as i64, self.layout.output_size as i64);
                Tensor::zeros([n, c, s, s], (states[1].kind(), states[1].device()))
            });
            states.push(node);
        }
        Tensor::cat(&states[INPUTS..], 1)
    }
    /// The cell as graph IR. A weight-free op applied twice to the same value (a bare pool) is emitted
    /// once; zeros are `Clip(x, 0, 0)` of the preprocessed input 1 (subsampled by a stride-2 Slice in a
    /// reduction cell), a shape ONNX Runtime knows before running.
    pub fn lower(&self, g: &mut GraphBuilder, s0: &Value, s1: &Value, ops: &[Op]) -> Value {
        let mut states = vec![self.preprocess0.lower(g, s0), self.preprocess1.lower(g, s1)];
        let mut done: HashMap<String, Value> = HashMap::new();
        for j in INPUTS..=LAST {
            let mut terms = Vec::new();
            for (i, state) in states.iter().enumerate() {
                let edge = &self.edges[cell::edge_index(j, i)];
                let op = ops[edge.cp];
                let module = edge.module(op);
                let shareable = matches!(module, DartsOp::Pool(p) if p.bn.is_none());
                let key = format!("{op}/{}({})", edge.stride, state.name());
                let y = match done.get(&key) {
                    Some(y) if shareable => Some(y.clone()),
                    _ => module.lower(g, state).inspect(|y| {
                        if shareable {
                            done.insert(key, y.clone());
                        }
                    }),
                };
                terms.extend(y);
            }
            let node = if terms.is_empty() {
                match done.get("zeros") {
                    Some(z) => z.clone(),
                    None => {
                        let like = if self.layout.reduction {
                            g.slice(&states[1], &[SliceAxis::every(2, 2), SliceAxis::every(3, 2)])
                        } else {
                            states[1].clone()
                        };
                        let z = g.clip(&like, 0.0, 0.0);
                        done.insert("zeros".into(), z.clone());
                        z
                    }
                }
            } else {
                g.sum(&terms)
            };
            states.push(node);
        }
        g.concat(&states[INPUTS..], 1)
    }
}

#[cfg(test)]
mod tests {
    use tch::{Device, Kind};

    use super::*;
    use crate::darts::Genotype;
    use crate::net::Supernet;
    use crate::space::{Arch, Space, SpaceDef, SpaceKind};
    use crate::vector::vector_len;

    fn tiny() -> DartsParams {
        DartsParams {
            channels: 2,
            layers: 4,
            classes: 3,
            input_channels: 1,
            input_size: 8,
            ..DartsParams::default()
        }
    }

    fn trainable_count(vs: &nn::VarStore) -> u64 {
        vs.trainable_variables().iter().map(|t| t.numel() as u64).sum()
    }

    fn mix(ops: &[Op]) -> Mix {
        Mix::single(&Arch { ops: ops.to_vec() })
    }

    #[test]
    fn built_networks_have_the_analytic_parameter_counts() {
        let p = tiny();
        let mut archs: Vec<Vec<Op>> =
            Genotype::NAMES.iter().map(|n| Genotype::named(n).unwrap().to_ops()).collect();
        // Not genotypes: every edge sep_conv_5x5, every edge skip (FactorizedReduce at stride 2).
        archs.push(vec![Op::SepConv { kernel: 5 }; 28]);
        archs.push(vec![Op::SkipConnect; 28]);
        for ops in &archs {
            let arch = Arch { ops: ops.clone() };
            let net = Supernet::standalone(&SpaceKind::new(p.clone()), &arch, Device::Cpu);
            assert_eq!(net.param_count() as u64, p.cost(ops).params(), "{}", p.format_arch(ops));
            assert_eq!(net.param_count_for(&arch) as u64, p.cost(ops).params());
        }
        let vs = nn::VarStore::new(Device::Cpu);
        let net = DartsNet::new(&vs.root(), &p, &p.full_ops(), Role::Supernet);
        assert_eq!(trainable_count(&vs), p.supernet_cost(&p.full_ops()).params());
        // The BN after each pool has statistics but nothing trainable: 2 pools × 14 edges × 4 cells.
        let pools: Vec<&DartsOp> = net
            .edges()
            .flat_map(|e| &e.candidates)
            .filter(|(op, _)| matches!(op, Op::MaxPool3x3 | Op::AvgPool3x3))
            .map(|(_, m)| m)
            .collect();
        assert!(pools.iter().all(|m| m.batch_norms().len() == 1 && !m.batch_norms()[0].affine));
        assert_eq!(pools.len(), 2 * 14 * 4);
    }

    #[test]
    fn forward_gives_logits_and_zero_nodes_are_zeros() {
        let p = tiny();
        let x = Tensor::randn([2, 1, 8, 8], (Kind::Float, Device::Cpu));
        let vs = nn::VarStore::new(Device::Cpu);
        let net = DartsNet::new(&vs.root(), &p, &p.full_ops(), Role::Supernet);
        let v2 = Genotype::named("DARTS_V2").unwrap().to_ops();
        assert_eq!(net.forward(&x, &mix(&v2), &[], Mode::TRAIN).size(), [2, 3]);
        // Every edge none: each cell outputs zeros, and so does its concatenation.
        let none = vec![Op::None; 28];
        let s = net.stem.forward(&x, Mode::EVAL);
        let s1 = net.cells[0].forward(&s, &s, &mix(&none), Mode::EVAL);
        assert_eq!(s1.size(), [2, 8, 8, 8]);
        let out = net.cells[1].forward(&s, &s1, &mix(&none), Mode::EVAL);
        assert_eq!(out.size(), [2, 16, 4, 4]);
        assert_eq!(out.abs().sum(Kind::Float).double_value(&[]), 0.0);
        assert_eq!(net.forward(&x, &mix(&none), &[], Mode::EVAL).size(), [2, 3]);
    }

    #[test]
    fn drop_path_zeroes_whole_images_and_keeps_the_expectation() {
        tch::manual_seed(1);
        let y = Tensor::ones([4000, 2, 3, 3], (Kind::Float, Device::Cpu));
        let out = drop_path(y, 0.25);
        let per_image =
            Vec::<f32>::try_from(out.sum_dim_intlist([1i64, 2, 3].as_slice(), false, Kind::Float)).unwrap();
        // Each image is all zeros or all 1/(1 - p), never a mix.
        let kept = per_image.iter().filter(|&&v| (v - 18.0 / 0.75).abs() < 1e-3).count();
        let dropped = per_image.iter().filter(|&&v| v == 0.0).count();
        assert_eq!(kept + dropped, 4000);
        assert!((900..1100).contains(&dropped), "dropped {dropped} of 4000 at p = 0.25");
        assert!((out.mean(Kind::Float).double_value(&[]) - 1.0).abs() < 0.05);
    }

    #[test]
    fn drop_path_acts_in_training_only_and_spares_the_identity() {
        let p = tiny();
        let x = Tensor::randn([8, 1, 8, 8], (Kind::Float, Device::Cpu));
        // One net for every run: torch's generator is global, and tests run in parallel threads,
        // so two nets built from the same seed need not get the same weights.
        let vs = nn::VarStore::new(Device::Cpu);
        let net = DartsNet::new(&vs.root(), &p, &p.full_ops(), Role::Standalone);
        let s = net.stem.forward(&x, Mode::EVAL);
        let run = |ops: &[Op], mode: Mode| net.cells[0].forward(&s, &s, &mix(ops), mode);
        let dropping = Mode::TRAIN.with_drop_path(0.5);
        let convs: Vec<Op> = vec![Op::SepConv { kernel: 3 }; 28];
        assert!(!run(&convs, dropping).equal(&run(&convs, Mode::TRAIN)), "sep_conv edges are dropped");
        // Eval ignores the probability; identity edges (skip at stride 1, cell 0 is normal) are
        // never dropped.
        assert!(run(&convs, Mode::EVAL.with_drop_path(0.5)).equal(&run(&convs, Mode::EVAL)));
        let skips = vec![Op::SkipConnect; 28];
        assert!(run(&skips, dropping).equal(&run(&skips, Mode::TRAIN)));
    }

    #[test]
    fn a_single_path_step_reaches_exactly_the_childs_weights() {
        let p = tiny();
        let net = Supernet::new(&Space::full(SpaceKind::new(p.clone())), Device::Cpu);
        let vs = net.var_store();
        let arch = Arch { ops: (0..28).map(|cp| Op::DARTS[(cp * 5 + 2) % 8]).collect() };
        let x = Tensor::randn([4, 1, 8, 8], (Kind::Float, Device::Cpu));
        let loss = net
            .forward(&x, &arch, Mode::TRAIN)
            .cross_entropy_for_logits(&Tensor::from_slice(&[0i64, 1, 2, 0]));
        loss.backward();
        let used: std::collections::HashSet<String> =
            net.trainable_for(&arch).iter().map(|t| t.name.clone()).collect();
        for (name, t) in vs.variables() {
            if !t.requires_grad() {
                continue;
            }
            let g = t.grad();
            let moved = g.defined() && g.abs().sum(Kind::Float).double_value(&[]) > 0.0;
            assert_eq!(moved, used.contains(&name), "{name}");
        }
        assert!(used.len() > 20);
    }

    #[test]
    fn weight_vectors_follow_the_sixteen_paths() {
        let p = tiny();
        let vs = nn::VarStore::new(Device::Cpu);
        let net = DartsNet::new(&vs.root(), &p, &p.full_ops(), Role::Supernet);
        let len = |ops: &[Op], full: bool| {
            let mut v = Vec::new();
            let composition = if full { Composition::Full } else { Composition::Ops };
            net.segments(ops, &[], composition, &mut v);
            vector_len(&v)
        };
        // The 16 paths hold 40 edges (each input: 8 paths of 1 to 4 edges).
        let edges_on_paths: usize = cell::paths().iter().map(|pt| pt.edges.len()).sum();
        assert_eq!(edges_on_paths, 40);
        let channels: Vec<usize> = p.cells().iter().map(|l| l.channels).collect();
        let sep3 = |c: usize| 2 * (9 * c + c * c);
        assert_eq!(
            len(&[Op::SepConv { kernel: 3 }; 28], false),
            channels.iter().map(|&c| 40 * sep3(c)).sum::<usize>()
        );
        assert_eq!(len(&[Op::MaxPool3x3; 28], false), channels.iter().map(|&c| 40 * 9 * c).sum::<usize>());
        // Skip: nothing in normal cells; in reduction cells the 16 first edges (out of an input,
        // stride 2) are FactorizedReduces with two c→c/2 convs.
        let reductions: usize =
            p.cells().iter().filter(|l| l.reduction).map(|l| 16 * l.channels * l.channels).sum();
        assert_eq!(len(&[Op::SkipConnect; 28], false), reductions);
        assert_eq!(len(&[Op::None; 28], false), 0);
        // Cutting 5<-4 removes the 8 paths through node 4 (24 of the 40 edges on paths).
        let mut ops = vec![Op::DilConv { kernel: 3 }; 28];
        let dil3 = |c: usize| 9 * c + c * c;
        ops[cell::edge_index(5, 4)] = Op::None;
        ops[14 + cell::edge_index(5, 4)] = Op::None;
        let kept: usize = cell::paths()
            .iter()
            .filter(|pt| !pt.edges.contains(&cell::edge_index(5, 4)))
            .map(|pt| pt.edges.len())
            .sum();
        assert_eq!(kept, 40 - 24);
        assert_eq!(len(&ops, false), channels.iter().map(|&c| kept * dil3(c)).sum::<usize>());
        // `full` adds the stem, the preprocessing and the classifier.
        // (A FactorizedReduce's two c_in→c/2 convs hold as many weights as one c_in→c conv.)
        let preprocessing: usize = p.cells().iter().map(|l| (l.c_prev_prev + l.c_prev) * l.channels).sum();
        let shared = 9 * 6 + preprocessing + 3 * p.last_channels();
        assert_eq!(len(&ops, true) - len(&ops, false), shared);

        // `pwsnas`: an identity kernel (C ones) per stride-1 skip on a path, γ and β after each op's
        // convs (a sep_conv's two BNs, a FactorizedReduce's one); pools' BNs hold no parameters.
        let pw = |ops: &[Op]| {
            let mut v = Vec::new();
            net.segments(ops, &[], Composition::Pwsnas, &mut v);
            vector_len(&v)
        };
        let skip: usize = p
            .cells()
            .iter()
            .map(|l| {
                if l.reduction {
                    16 * (l.channels * l.channels + 2 * l.channels) + 24 * l.channels
                } else {
                    40 * l.channels
                }
            })
            .sum();
        assert_eq!(pw(&[Op::SkipConnect; 28]), skip);
        assert_eq!(pw(&[Op::MaxPool3x3; 28]), len(&[Op::MaxPool3x3; 28], false));
        assert_eq!(
            pw(&[Op::SepConv { kernel: 3 }; 28]),
            channels.iter().map(|&c| 40 * (sep3(c) + 4 * c)).sum::<usize>()
        );
        assert_eq!(pw(&[Op::None; 28]), 0);
    }

    #[test]
    fn an_extracted_genotype_is_the_evaluation_network_with_the_supernets_weights() {
        let p = tiny();
        let kind = SpaceKind::new(p.clone());
        let net = Supernet::new(&Space::full(kind.clone()), Device::Cpu);
        // Non-trivial BN statistics, so that copying them shows.
        tch::no_grad(|| {
            for (name, t) in net.named_tensors() {
                if name.ends_with("running_var") {
                    let _ = t.shallow_clone().g_add_(&(Tensor::rand_like(&t) * 0.5));
                }
            }
        });
        let x = Tensor::randn([3, 1, 8, 8], (Kind::Float, Device::Cpu));
        // DARTS_V2's normal cell with its reduction cell's pools replaced by convs: no pool, so the
        // search network and the evaluation network compute the same.
        let mut ops = Genotype::named("DARTS_V2").unwrap().to_ops();
        for op in ops.iter_mut().filter(|op| **op == Op::MaxPool3x3) {
            *op = Op::DilConv { kernel: 5 };
        }
        let arch = Arch { ops };
        let child = net.extract_child(&arch).unwrap();
        assert_eq!(child.param_count(), net.param_count_for(&arch));
        assert_eq!(child.param_count() as u64, p.cost(&arch.ops).params());
        let a = tch::no_grad(|| net.forward(&x, &arch, Mode::EVAL));
        let b = tch::no_grad(|| child.forward(&x, &arch, Mode::EVAL));
        assert!((a - b).abs().max().double_value(&[]) < 1e-6);
        // With pools the child has no BN after them (DARTS's model.py), the supernet has.
        let v2 = kind.parse_arch("DARTS_V2").unwrap();
        let child = net.extract_child(&v2).unwrap();
        let pool_bns = |n: &Supernet| n.batch_norms_for(&v2).iter().filter(|bn| !bn.affine).count();
        assert_eq!((pool_bns(&net) > 0, pool_bns(&child)), (true, 0));
    }
}
