//! The `nb201` network: stem, three stages of cells with ResNet reductions, head. The same code is
//! the supernet (sites built with every op of the space) and a child's stand-alone network (sites
//! built with one op each), which is what makes copying a child's weights out of the supernet exact.
use std::collections::HashMap;

use pwsnas_onnx::{Graph, GraphBuilder, Value};
use tch::{nn, Tensor};

use super::Nb201Params;
use crate::net::layers::{Act, BatchNorm, Conv, ConvBn, Linear, Mode, Param};
use crate::net::ops::{OpModule, Site, SiteShape};
use crate::net::pieces::{chain_graph, Piece, PieceKey};
use crate::net::{Mix, Network, OpSite};
use crate::op::Op;
use crate::space::Space;
use crate::vector::{Composition, Segment};

/// NB201's `ResNetBasicblock` with stride 2: ReLU-Conv-BN (stride 2) → ReLU-Conv-BN, plus a shortcut
/// of 2×2 average pooling and a 1×1 conv.
pub struct Reduction {
    pub conv_a: ConvBn,
    pub conv_b: ConvBn,
    pub downsample: Conv,
}

impl Reduction {
    fn new(p: &nn::Path, c_in: usize, c_out: usize) -> Reduction {
        Reduction {
            conv_a: ConvBn::new(&(p / "conv_a"), Act::Relu, c_in, c_out, 3, 2, 1, Act::None),
            conv_b: ConvBn::new(&(p / "conv_b"), Act::Relu, c_out, c_out, 3, 1, 1, Act::None),
            downsample: Conv::new(&(p / "downsample"), c_in, c_out, 1, 1, 1),
        }
    }

    fn forward(&self, x: &Tensor, mode: Mode) -> Tensor {
        let b = self.conv_b.forward(&self.conv_a.forward(x, mode), mode);
        let r = self.downsample.forward(&x.avg_pool2d([2, 2], [2, 2], [0, 0], false, true, None));
        r + b
    }

    fn lower(&self, g: &mut GraphBuilder, x: &Value) -> Value {
        let a = self.conv_a.lower(g, x);
        let b = self.conv_b.lower(g, &a);
        let pooled = g.avg_pool(x, 2, 2, 0, true);
        let r = self.downsample.lower(g, &pooled);
        g.add(&r, &b)
    }
}

/// Zeros shaped like `x` (finite `x`), with a shape ONNX Runtime knows before running: `Clip(x, 0, 0)`.
fn zeros(g: &mut GraphBuilder, x: &Value) -> Value {
    g.clip(x, 0.0, 0.0)
}

/// One cell: a site per edge.
pub struct Cell {
    pub sites: Vec<Site>,
    pub channels: usize,
}

pub struct Nb201Net {
    pub params: Nb201Params,
    pub stem: ConvBn,
    /// Cells of all stages in order.
    pub cells: Vec<Cell>,
    /// `reductions[s-1]` sits before stage `s`.
    pub reductions: Vec<Reduction>,
    pub lastact: BatchNorm,
    pub classifier: Linear,
}

impl Nb201Net {
    pub fn new(root: &nn::Path, params: &Nb201Params, space: &Space) -> Nb201Net {
        let stages = params.stages();
        let stem = ConvBn::new(
            &(root / "stem"),
            Act::None,
            params.input_channels,
            params.channels,
            3,
            1,
            1,
            Act::None,
        );
        let mut cells = Vec::new();
        let mut reductions = Vec::new();
        for (s, &(c, _)) in stages.iter().enumerate() {
            if s > 0 {
                reductions.push(Reduction::new(&(root / "reductions" / (s - 1)), stages[s - 1].0, c));
            }
            for _ in 0..params.cells_per_stage {
                let p = root / "cells" / cells.len();
                let shape = SiteShape { c_in: c, c_out: c, stride: 1 };
                let sites = (0..space.choices.len())
                    .map(|e| Site::new(&(&p / format!("e{e}")), e, &space.choices[e].ops, shape))
                    .collect();
                cells.push(Cell { sites, channels: c });
            }
        }
        let c_last = stages[2].0;
        Nb201Net {
            params: params.clone(),
            stem,
            cells,
            reductions,
            lastact: BatchNorm::new(&(root / "lastact"), c_last),
            classifier: Linear::new(&(root / "classifier"), c_last, params.classes),
        }
    }

    /// Cells in order, with the reduction (if any) that precedes each.
    fn blocks(&self) -> impl Iterator<Item = (Option<&Reduction>, &Cell)> {
        let n = self.params.cells_per_stage;
        self.cells.iter().enumerate().map(move |(k, cell)| {
            let red = (k > 0 && k % n == 0).then(|| &self.reductions[k / n - 1]);
            (red, cell)
        })
    }

    fn cell_forward(&self, cell: &Cell, x: &Tensor, mix: &Mix, route: &[usize], mode: Mode) -> Tensor {
        let p = &self.params;
        let mut nodes: Vec<Tensor> = vec![x.shallow_clone()];
        for j in 1..p.nodes {
            let mut sum: Option<Tensor> = None;
            for (i, node) in nodes.iter().enumerate() {
                let e = p.edge_index(j, i);
                if let Some(y) = cell.sites[e].forward(node, mix.at(e), route[e], mode) {
                    sum = Some(match sum {
                        Some(s) => s + y,
                        None => y,
                    });
                }
            }
            nodes.push(sum.unwrap_or_else(|| x.zeros_like()));
        }
        nodes.pop().expect("a cell has an output node")
    }

    /// One cell. Nothing is computed twice: an op without weights applied to a value it was already
    /// applied to in this cell (e.g. `avg_pool_3x3` on node 0 and on node 1 = `skip_connect` of node
    /// 0), the ReLU of a `nor_conv` on a value another `nor_conv` already activated, a second zeros
    /// node and a second sum of the same terms reuse the first one's output.
    /// [`super::pieces`] counts exactly what this emits.
    ///
    /// A node whose inputs are all `none` is [`zeros`]: `Clip(x, 0, 0)` of the cell input rather
    /// than `Shape` + `ConstantOfShape`, whose data-dependent output shape stops ONNX Runtime from
    /// planning the memory of everything downstream (measured: whole models about 20% slower).
    fn lower_cell(&self, g: &mut GraphBuilder, cell: &Cell, x: &Value, ops: &[Op], route: &[usize]) -> Value {
        let p = &self.params;
        let mut done: HashMap<String, Value> = HashMap::new();
        let mut nodes = vec![x.clone()];
        for j in 1..p.nodes {
            let mut terms = Vec::new();
            for (i, node) in nodes.iter().enumerate() {
                let e = p.edge_index(j, i);
                let module = cell.sites[e].module(ops[e], route[e]);
                let y = if let OpModule::ReluConvBn(cb) = module {
                    let key = format!("relu({})", node.name());
                    let relu = done.entry(key).or_insert_with(|| g.relu(node)).clone();
                    Some(cb.lower_body(g, &relu))
                } else if ops[e].has_weights() {
                    module.lower(g, node)
                } else {
                    let key = format!("{}({})", ops[e], node.name());
                    match done.get(&key) {
                        Some(y) => Some(y.clone()),
                        None => module.lower(g, node).inspect(|y| {
                            done.insert(key, y.clone());
                        }),
                    }
                };
                terms.extend(y);
            }
            let key = format!("sum({})", terms.iter().map(Value::name).collect::<Vec<_>>().join(","));
            let node = match done.get(&key) {
                Some(node) => node.clone(),
                None if terms.is_empty() => zeros(g, x),
                None => g.sum(&terms),
            };
            done.insert(key, node.clone());
            nodes.push(node);
        }
        nodes.pop().expect("a cell has an output node")
    }

    /// BN-ReLU, global average pooling, flatten, classifier.
    fn lower_head(&self, g: &mut GraphBuilder, x: &Value) -> Value {
        let x = self.lastact.lower(g, x);
        let x = g.relu(&x);
        let x = g.global_avg_pool(&x);
        let x = g.flatten(&x);
        self.classifier.lower(g, &x)
    }

    /// `[channels, height, width]` of the tensors inside stage `s`.
    fn stage_shape(&self, s: usize) -> [usize; 3] {
        let (c, size) = self.params.stages()[s];
        [c, size, size]
    }
}

impl Network for Nb201Net {
    fn forward(&self, x: &Tensor, mix: &Mix, route: &[usize], mode: Mode) -> Tensor {
        let mut x = self.stem.forward(x, mode);
        for (red, cell) in self.blocks() {
            if let Some(r) = red {
                x = r.forward(&x, mode);
            }
            x = self.cell_forward(cell, &x, mix, route, mode);
        }
        let x = self.lastact.forward(&x, mode).relu();
        let x = x.adaptive_avg_pool2d([1, 1]).flatten(1, -1);
        self.classifier.forward(&x)
    }

    fn lower(&self, g: &mut GraphBuilder, ops: &[Op], route: &[usize]) -> Value {
        let input = g.input();
        let mut x = self.stem.lower(g, &input);
        for (red, cell) in self.blocks() {
            if let Some(r) = red {
                x = r.lower(g, &x);
            }
            x = self.lower_cell(g, cell, &x, ops, route);
        }
        self.lower_head(g, &x)
    }

    /// Every piece of the network (see [`crate::net::pieces`]): the stem, the reductions, the head, each
    /// op (that emits nodes) the cells of a stage were built with, the ReLU in front of `nor_conv`
    /// ops, and every node sum a cell can have.
    fn pieces(&self) -> Vec<Piece> {
        let p = &self.params;
        let input = [p.input_channels, p.input_size, p.input_size];
        let mut out = vec![Piece { key: PieceKey::Stem, input, chainable: input == self.stage_shape(0) }];
        for s in 0..3 {
            let shape = self.stage_shape(s);
            if s > 0 {
                out.push(Piece {
                    key: PieceKey::Reduction(s),
                    input: self.stage_shape(s - 1),
                    chainable: false,
                });
            }
            let mut ops: Vec<Op> = Vec::new();
            for site in &self.cells[s * p.cells_per_stage].sites {
                for c in site.candidates.iter().filter(|c| PieceKey::op_emits_nodes(c.op)) {
                    if !ops.contains(&c.op) {
                        ops.push(c.op);
                    }
                }
            }
            for op in ops {
                out.push(Piece { key: PieceKey::Op { at: s, op }, input: shape, chainable: true });
            }
            out.push(Piece { key: PieceKey::Relu { stage: s }, input: shape, chainable: true });
            for terms in std::iter::once(0).chain(2..p.nodes) {
                out.push(Piece { key: PieceKey::Merge { stage: s, terms }, input: shape, chainable: true });
            }
        }
        out.push(Piece { key: PieceKey::Head, input: self.stage_shape(2), chainable: false });
        out
    }

    /// The graph of `piece` (one this network listed), as a chain of `copies` copies named `name`
    /// (see [`crate::net::pieces`]).
    fn piece_graph(&self, piece: &Piece, name: &str, copies: usize) -> Graph {
        let key = piece.key;
        match key {
            PieceKey::Stem => {
                chain_graph(name, piece.input, &self.stage_shape(0), copies, |g, x| self.stem.lower(g, x))
            }
            PieceKey::Reduction(s) => chain_graph(name, piece.input, &self.stage_shape(s), copies, |g, x| {
                self.reductions[s - 1].lower(g, x)
            }),
            PieceKey::Head => {
                chain_graph(name, piece.input, &[self.params.classes], copies, |g, x| self.lower_head(g, x))
            }
            PieceKey::Op { at, op } => {
                let cell = &self.cells[at * self.params.cells_per_stage];
                let site = cell.sites.iter().find(|s| s.candidate(op).is_some()).expect("listed by pieces()");
                chain_graph(name, piece.input, &piece.input, copies, |g, x| match site.module(op, 0) {
                    OpModule::ReluConvBn(cb) => cb.lower_body(g, x),
                    m => m.lower(g, x).expect("pieces() lists only ops that emit nodes"),
                })
            }
            PieceKey::Relu { .. } => chain_graph(name, piece.input, &piece.input, copies, |g, x| g.relu(x)),
            PieceKey::Merge { terms, .. } => chain_graph(name, piece.input, &piece.input, copies, |g, x| {
                if terms == 0 {
                    zeros(g, x)
                } else {
                    g.sum(&vec![x.clone(); terms])
                }
            }),
            PieceKey::Reduce { .. } | PieceKey::Preprocess { .. } | PieceKey::Concat { .. } => {
                unreachable!("not listed by pieces()")
            }
        }
    }

    /// The child's weight vector (docs/method.md, strategy 1): per cell, the concatenation over every path
    /// from the cell input to its output of the weights along the path; `none` removes the path,
    /// `avg_pool_3x3` adds a constant `[C, 3, 3]` kernel of `1/9`, `skip_connect` adds nothing, or
    /// with [`Composition::Pwsnas`] an identity kernel of the cell's channels (and the convs' BN
    /// γ, β follow their weights). With [`Composition::Full`], the stem, reductions and classifier
    /// weights are added in network order.
    fn segments(&self, ops: &[Op], route: &[usize], composition: Composition, out: &mut Vec<Segment>) {
        let paths = self.params.paths();
        let full = composition == Composition::Full;
        if full {
            out.push(Segment::of(&self.stem.conv.weight));
        }
        for (red, cell) in self.blocks() {
            if let (Some(r), true) = (red, full) {
                for w in [&r.conv_a.conv.weight, &r.conv_b.conv.weight, &r.downsample.weight] {
                    out.push(Segment::of(w));
                }
            }
            for path in &paths {
                if path.iter().any(|&e| ops[e] == Op::None) {
                    continue;
                }
                for &e in path {
                    match ops[e] {
                        Op::AvgPool3x3 => {
                            out.push(Segment::Constant { len: cell.channels * 9, value: 1.0 / 9.0 })
                        }
                        Op::SkipConnect if composition == Composition::Pwsnas => {
                            out.push(Segment::identity(cell.channels))
                        }
                        op => out.extend(Segment::of_module(&cell.sites[e], op, route[e], composition)),
                    }
                }
            }
        }
        if full {
            out.push(Segment::of(&self.classifier.weight));
        }
    }

    /// Trainable tensors every child uses.
    fn shared_trainable<'a>(&'a self, out: &mut Vec<&'a Param>) {
        self.stem.trainable(out);
        for r in &self.reductions {
            r.conv_a.trainable(out);
            r.conv_b.trainable(out);
            out.push(&r.downsample.weight);
        }
        self.lastact.trainable(out);
        self.classifier.trainable(out);
    }

    fn shared_batch_norms(&self) -> Vec<&BatchNorm> {
        let mut v = vec![&self.stem.bn];
        for r in &self.reductions {
            v.push(&r.conv_a.bn);
            v.push(&r.conv_b.bn);
        }
        v.push(&self.lastact);
        v
    }

    fn sites(&self) -> Box<dyn Iterator<Item = &dyn OpSite> + '_> {
        Box::new(self.cells.iter().flat_map(|c| c.sites.iter().map(|s| s as &dyn OpSite)))
    }

    fn grow_copies(&mut self, root: &nn::Path, cp: usize, k: usize) {
        for site in self.cells.iter_mut().flat_map(|c| c.sites.iter_mut()).filter(|s| s.cp == cp) {
            site.grow_copies(root, k);
        }
    }
}
