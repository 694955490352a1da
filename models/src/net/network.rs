//! The network traits: what a space's supernet (and, built from a one-child space, a child's
//! stand-alone network) offers, whatever its skeleton and its module types. [`super::Supernet`]
//! owns the variables, the routing of weight copies and everything the spaces share, and reaches a
//! network only through these traits.
//!
//! A network is made of fixed parts every child uses (stem, reductions, head: *shared*) and of
//! sites ([`OpSite`]), the places that instantiate a choice point, each holding a [`Module`] per op
//! it was built with and per weight copy (`nb201` and `mobile` use [`super::ops::Site`]). The
//! methods take, per choice point, the op(s) a child picks and the copy routing chose
//! (`route[cp]`).
use pwsnas_onnx::{Graph, GraphBuilder, Value};
use tch::{nn, Tensor};

use super::layers::{BatchNorm, Mode, Param};
use super::mix::{Mix, Weighted};
use super::pieces::Piece;
use crate::op::Op;
use crate::vector::{Composition, Segment};

pub trait Network: Send {
    /// Logits for a batch `x` (NCHW) of the ops and weights `mix` picks (see [`Mix`]).
    fn forward(&self, x: &Tensor, mix: &Mix, route: &[usize], mode: Mode) -> Tensor;

    /// [`Network::forward`], and, when `mode` is training and the network offers an auxiliary head
    /// ([`crate::space::SpaceDef::aux_shape`]), the feature map the head reads. By default none.
    fn forward_aux(&self, x: &Tensor, mix: &Mix, route: &[usize], mode: Mode) -> (Tensor, Option<Tensor>) {
        (self.forward(x, mix, route, mode), None)
    }

    /// Lowers the child `ops` to the graph IR from `g`'s input to the logits (BatchNorm not yet
    /// folded), returning the logits.
    fn lower(&self, g: &mut GraphBuilder, ops: &[Op], route: &[usize]) -> Value;

    /// Every piece a latency table times (see [`super::pieces`]).
    fn pieces(&self) -> Vec<Piece>;

    /// The graph of `piece` (one [`Network::pieces`] listed), as a chain of `copies` copies named
    /// `name`; ops use copy 0 of their weights.
    fn piece_graph(&self, piece: &Piece, name: &str, copies: usize) -> Graph;

    /// The segments of the child's weight vector in `composition` (see [`crate::vector`]): the
    /// ops' parts ([`Segment::of_module`], virtual kernels for parameter-free ops); with
    /// [`Composition::Full`], the shared parts' weights too.
    fn segments(&self, ops: &[Op], route: &[usize], composition: Composition, out: &mut Vec<Segment>);

    /// Trainable tensors every child uses.
    fn shared_trainable<'a>(&'a self, out: &mut Vec<&'a Param>);

    /// BatchNorms every child uses.
    fn shared_batch_norms(&self) -> Vec<&BatchNorm>;

    /// Every site, in a fixed order (the same in a supernet and in a child built from it).
    fn sites(&self) -> Box<dyn Iterator<Item = &dyn OpSite> + '_>;

    /// Gives every op with weights at the sites of choice point `cp` `k` weight copies (strategy 2
    /// of docs/method.md), new ones under `root` starting from copy 0's weights and statistics.
    fn grow_copies(&mut self, root: &nn::Path, cp: usize, k: usize);
}

/// One place of a network that instantiates a choice point, as the supernet sees it.
pub trait OpSite {
    /// The choice point it instantiates.
    fn cp(&self) -> usize;

    /// The module of `op`, weight copy `copy` (copy 0 for ops without copies).
    ///
    /// # Panics
    /// If the site was not built with `op`.
    fn module(&self, op: Op, copy: usize) -> &dyn Module;

    /// Magnitude of `op` here: `|w| / sqrt(numel)` of its conv weights ([`conv_magnitude`]), or
    /// that of the virtual kernel of a parameter-free op.
    fn magnitude(&self, op: Op, copy: usize) -> f64;

    /// The site's output for the ops and weights `picks` of its choice point (see [`Mix`]), each
    /// op's copy `copy`: `Σ weight · op(x)`, `None` when nothing contributes (only `none`). One
    /// unweighted op is its module alone, the SPOS fast path: no multiply, no extra kernel. In a
    /// weighted mix, a stride-1 `skip_connect` (an identity) goes through dropout when training asks
    /// for it ([`Mode::skip_dropout`]; PDARTS's `MixedOp` wraps only its `Identity` modules, so a
    /// reduction cell's FactorizedReduce is spared).
    fn forward(&self, x: &Tensor, picks: &[Weighted], copy: usize, mode: Mode) -> Option<Tensor> {
        if let [Weighted { op, weight: None }] = picks {
            return self.module(*op, copy).forward(x, mode);
        }
        let mut sum: Option<Tensor> = None;
        for pick in picks {
            let module = self.module(pick.op, copy);
            let Some(mut y) = module.forward(x, mode) else { continue };
            if pick.op == Op::SkipConnect && mode.train && mode.skip_dropout > 0.0 && module.is_identity() {
                y = y.dropout(mode.skip_dropout, true);
            }
            let y = match &pick.weight {
                Some(w) => y * w,
                None => y,
            };
            sum = Some(match sum {
                Some(s) => s + y,
                None => y,
            });
        }
        sum
    }
}

/// The module of one op at one site, as the supernet sees it.
pub trait Module {
    /// The op's output, or `None` for an op that contributes nothing (`none`).
    fn forward(&self, x: &Tensor, mode: Mode) -> Option<Tensor>;

    /// Whether the module passes its input through unchanged (a stride-1 `skip_connect` or
    /// `identity`; a stride-2 `skip_connect` is a FactorizedReduce and is not).
    fn is_identity(&self) -> bool {
        false
    }

    /// Trainable tensors.
    fn trainable<'a>(&'a self, out: &mut Vec<&'a Param>);

    /// BatchNorms (what BN recalibration resets).
    fn batch_norms(&self) -> Vec<&BatchNorm>;

    /// Conv weights in module order: the op's part of a weight vector.
    fn conv_weights(&self) -> Vec<&Param>;

    /// Every variable (weights and BN statistics), for copying one module into another of the
    /// same op.
    fn all_params(&self) -> Vec<&Param>;
}

/// `|w| / sqrt(numel)` over the conv weights of `m`, in f64.
pub fn conv_magnitude(m: &dyn Module) -> f64 {
    let (mut sq, mut n) = (0.0, 0usize);
    for w in m.conv_weights() {
        sq += w.tensor.detach().to_kind(tch::Kind::Double).square().sum(None).double_value(&[]);
        n += w.tensor.numel();
    }
    (sq / n as f64).sqrt()
}
