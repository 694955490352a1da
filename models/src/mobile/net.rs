//! The `mobile` network: stem, one site per searchable layer, 1×1 head conv, classifier. As for
//! `nb201`, the supernet and a stand-alone child are the same code built with different op sets.
use pwsnas_onnx::{Graph, GraphBuilder, Value};
use tch::{nn, Tensor};

use super::MobileParams;
use crate::net::layers::{Act, BatchNorm, ConvBn, Linear, Mode, Param};
use crate::net::ops::{Site, SiteShape};
use crate::net::pieces::{chain_graph, Piece, PieceKey};
use crate::net::{Mix, Network, OpSite};
use crate::op::Op;
use crate::space::Space;
use crate::vector::{Composition, Segment};

pub struct MobileNet {
    pub params: MobileParams,
    pub stem: ConvBn,
    pub layers: Vec<Site>,
    pub head: ConvBn,
    pub classifier: Linear,
}

impl MobileNet {
    pub fn new(root: &nn::Path, params: &MobileParams, space: &Space) -> MobileNet {
        let (stem_c, _) = params.stem_out();
        let layer_shapes = params.layers();
        let stem = ConvBn::new(
            &(root / "stem"),
            Act::None,
            params.input_channels,
            stem_c,
            3,
            params.stem_stride,
            1,
            Act::Relu6,
        );
        let layers = layer_shapes
            .iter()
            .enumerate()
            .map(|(l, s)| {
                let shape = SiteShape { c_in: s.c_in, c_out: s.c_out, stride: s.stride };
                Site::new(&(root / "layers" / l), l, &space.choices[l].ops, shape)
            })
            .collect();
        let c_last = layer_shapes.last().map(|l| l.c_out).unwrap_or(stem_c);
        MobileNet {
            params: params.clone(),
            stem,
            layers,
            head: ConvBn::new(&(root / "head"), Act::None, c_last, params.head_channels, 1, 1, 1, Act::Relu6),
            classifier: Linear::new(&(root / "classifier"), params.head_channels, params.classes),
        }
    }

    /// Head conv, global average pooling, flatten, classifier.
    fn lower_head(&self, g: &mut GraphBuilder, x: &Value) -> Value {
        let x = self.head.lower(g, x);
        let x = g.global_avg_pool(&x);
        let x = g.flatten(&x);
        self.classifier.lower(g, &x)
    }
}

impl Network for MobileNet {
    fn forward(&self, x: &Tensor, mix: &Mix, route: &[usize], mode: Mode) -> Tensor {
        let mut x = self.stem.forward(x, mode);
        for (l, site) in self.layers.iter().enumerate() {
            x = site.forward(&x, mix.at(l), route[l], mode).expect("mobile layers have no zero op");
        }
        let x = self.head.forward(&x, mode);
        self.classifier.forward(&x.adaptive_avg_pool2d([1, 1]).flatten(1, -1))
    }

    fn lower(&self, g: &mut GraphBuilder, ops: &[Op], route: &[usize]) -> Value {
        let input = g.input();
        let mut x = self.stem.lower(g, &input);
        for (l, site) in self.layers.iter().enumerate() {
            x = site.module(ops[l], route[l]).lower(g, &x).expect("mobile layers have no zero op");
        }
        self.lower_head(g, &x)
    }

    /// Every piece of the network (see [`crate::net::pieces`]): the stem, each op (that emits nodes) of
    /// each layer, the head.
    fn pieces(&self) -> Vec<Piece> {
        let p = &self.params;
        let (stem_c, stem_s) = p.stem_out();
        let input = [p.input_channels, p.input_size, p.input_size];
        let mut out =
            vec![Piece { key: PieceKey::Stem, input, chainable: input == [stem_c, stem_s, stem_s] }];
        let shapes = p.layers();
        for (l, (site, shape)) in self.layers.iter().zip(&shapes).enumerate() {
            let input = [shape.c_in, shape.size_in, shape.size_in];
            let chainable = input == [shape.c_out, shape.size_out, shape.size_out];
            for c in site.candidates.iter().filter(|c| PieceKey::op_emits_nodes(c.op)) {
                out.push(Piece { key: PieceKey::Op { at: l, op: c.op }, input, chainable });
            }
        }
        let last = shapes.last().map_or([stem_c, stem_s, stem_s], |l| [l.c_out, l.size_out, l.size_out]);
        out.push(Piece { key: PieceKey::Head, input: last, chainable: false });
        out
    }

    /// The graph of `piece` (one this network listed), as a chain of `copies` copies named `name`
    /// (see [`crate::net::pieces`]).
    fn piece_graph(&self, piece: &Piece, name: &str, copies: usize) -> Graph {
        let key = piece.key;
        match key {
            PieceKey::Stem => {
                let (c, s) = self.params.stem_out();
                chain_graph(name, piece.input, &[c, s, s], copies, |g, x| self.stem.lower(g, x))
            }
            PieceKey::Head => {
                chain_graph(name, piece.input, &[self.params.classes], copies, |g, x| self.lower_head(g, x))
            }
            PieceKey::Op { at, op } => {
                let l = self.params.layers()[at];
                chain_graph(name, piece.input, &[l.c_out, l.size_out, l.size_out], copies, |g, x| {
                    self.layers[at]
                        .module(op, 0)
                        .lower(g, x)
                        .expect("pieces() lists only ops that emit nodes")
                })
            }
            PieceKey::Reduction(_)
            | PieceKey::Relu { .. }
            | PieceKey::Merge { .. }
            | PieceKey::Reduce { .. }
            | PieceKey::Preprocess { .. }
            | PieceKey::Concat { .. } => {
                unreachable!("not listed by pieces()")
            }
        }
    }

    /// The chosen blocks' conv weights in layer order (identity adds nothing, or with
    /// [`Composition::Pwsnas`] an identity kernel of the layer's channels, and the blocks' BN γ, β
    /// follow their weights); with [`Composition::Full`], also the stem, head and classifier weights.
    /// (The identity is only built where a layer keeps its channels and size: elsewhere a layer's
    /// ops are blocks with weights.)
    fn segments(&self, ops: &[Op], route: &[usize], composition: Composition, out: &mut Vec<Segment>) {
        let full = composition == Composition::Full;
        if full {
            out.push(Segment::of(&self.stem.conv.weight));
        }
        for (l, site) in self.layers.iter().enumerate() {
            match ops[l] {
                Op::Identity if composition == Composition::Pwsnas => {
                    debug_assert_eq!(site.shape.c_in, site.shape.c_out);
                    out.push(Segment::identity(site.shape.c_in))
                }
                op => out.extend(Segment::of_module(site, op, route[l], composition)),
            }
        }
        if full {
            out.push(Segment::of(&self.head.conv.weight));
            out.push(Segment::of(&self.classifier.weight));
        }
    }

    fn shared_trainable<'a>(&'a self, out: &mut Vec<&'a Param>) {
        self.stem.trainable(out);
        self.head.trainable(out);
        self.classifier.trainable(out);
    }

    fn shared_batch_norms(&self) -> Vec<&BatchNorm> {
        vec![&self.stem.bn, &self.head.bn]
    }

    fn sites(&self) -> Box<dyn Iterator<Item = &dyn OpSite> + '_> {
        Box::new(self.layers.iter().map(|s| s as &dyn OpSite))
    }

    fn grow_copies(&mut self, root: &nn::Path, cp: usize, k: usize) {
        self.layers[cp].grow_copies(root, k);
    }
}
