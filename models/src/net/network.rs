//! The network trait: what a space's supernet (and, built from a one-child space, a child's
//! stand-alone network) does, whatever its skeleton. [`super::Supernet`] owns the variables,
//! routing and everything the spaces share, and reaches the network only through [`Network`].
//!
//! A network is made of fixed parts every child uses (stem, reductions, head: *shared*) and of
//! [`Site`]s, the places that instantiate a choice point, each holding a module per op it was built
//! with and per weight copy. The methods below take, per choice point, the op(s) a child picks and
//! the copy routing chose (`route[cp]`).
use pwsnas_onnx::{Graph, GraphBuilder, Value};
use tch::Tensor;

use super::layers::{BatchNorm, Mode, Param};
use super::mix::Mix;
use super::ops::Site;
use super::pieces::Piece;
use crate::op::Op;
use crate::vector::Segment;

pub trait Network: Send {
    /// Logits for a batch `x` (NCHW) of the ops and weights `mix` picks (see [`Mix`]).
    fn forward(&self, x: &Tensor, mix: &Mix, route: &[usize], mode: Mode) -> Tensor;

    /// Lowers the child `ops` to the graph IR from `g`'s input to the logits (BatchNorm not yet
    /// folded), returning the logits.
    fn lower(&self, g: &mut GraphBuilder, ops: &[Op], route: &[usize]) -> Value;

    /// Every piece a latency table times (see [`super::pieces`]).
    fn pieces(&self) -> Vec<Piece>;

    /// The graph of `piece` (one [`Network::pieces`] listed), as a chain of `copies` copies named
    /// `name`; ops use copy 0 of their weights.
    fn piece_graph(&self, piece: &Piece, name: &str, copies: usize) -> Graph;

    /// The segments of the child's weight vector (see [`crate::vector`]); with `full`, the shared
    /// parts' weights too.
    fn segments(&self, ops: &[Op], route: &[usize], full: bool, out: &mut Vec<Segment>);

    /// Trainable tensors every child uses.
    fn shared_trainable<'a>(&'a self, out: &mut Vec<&'a Param>);

    /// BatchNorms every child uses.
    fn shared_batch_norms(&self) -> Vec<&BatchNorm>;

    /// Every site, in a fixed order (the same in a supernet and in a child built from it).
    fn sites(&self) -> Box<dyn Iterator<Item = &Site> + '_>;

    fn sites_mut(&mut self) -> Box<dyn Iterator<Item = &mut Site> + '_>;
}
