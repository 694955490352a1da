//! Networks on libtorch: the [`Supernet`] of a space, and (the same type built from a one-child
//! space) the stand-alone network of a child.
//!
//! Why one type for both: a child's stand-alone network must have exactly the structure of the
//! supernet restricted to that child, so that its weights can be copied out and its outputs match.
//! Building both from the same code makes that true by construction.
//!
//! Each space builds its own [`Network`] ([`crate::space::SpaceDef::build`]); the supernet holds it
//! with the variables, the weight copies of strategy 2 and their routing, and everything that is
//! the same for every space (which tensors a child uses, copying a child out, loading weights).
use std::collections::HashMap;

use pwsnas_onnx::{Dim, Graph, GraphBuilder};
use serde::{Deserialize, Serialize};
use tch::{nn, Device, Tensor};

pub mod aux_head;
pub mod init;
pub mod layers;
pub mod mix;
pub mod network;
pub mod ops;
pub mod pieces;

use crate::error::{ModelError, Result};
use crate::op::Op;
use crate::space::{Arch, Space, SpaceKind};
use crate::vector::{Composition, Segment};
pub use init::Init;
pub use layers::{BatchNorm, Mode, Param};
pub use mix::{Mix, Weighted};
pub use network::{Module, Network, OpSite};
use pieces::{Piece, PieceKey};

/// How a choice point with weight copies picks one for a child (strategy 2, see `docs/method.md`):
/// by the rank of the child's op at choice point `by` among `ops`, modulo the copies. `ops` are the
/// ops `by` allowed when the route was set (its surviving ops), so every copy up to `ops.len()` is
/// used by some child.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    /// The choice point whose op picks the copy (one of [`SpaceKind::previous_choices`]).
    pub by: usize,
    /// Its ops in rank order.
    pub ops: Vec<Op>,
}

impl Route {
    /// The copy a child whose op at `by` is `op` uses among `copies`: its rank mod `copies`; copy 0
    /// for an op outside `ops` (a child outside the space the route was set for).
    pub fn copy_for(&self, op: Op, copies: usize) -> usize {
        self.ops.iter().position(|o| *o == op).map_or(0, |rank| rank % copies.max(1))
    }
}

/// Copies every variable of `vs` from `tensors` (by name); fails, naming the `what` and the name,
/// if one is missing or has another shape. Names `vs` does not have are ignored.
pub(crate) fn load_variables(vs: &nn::VarStore, tensors: &HashMap<String, Tensor>, what: &str) -> Result<()> {
    for (name, var) in vs.variables() {
        let src =
            tensors.get(&name).ok_or_else(|| ModelError::Weights(format!("{what} '{name}' is missing")))?;
        if src.size() != var.size() {
            return Err(ModelError::Weights(format!(
                "{what} '{name}' has shape {:?}, expected {:?}",
                src.size(),
                var.size()
            )));
        }
        tch::no_grad(|| var.shallow_clone().copy_(src));
    }
    Ok(())
}

/// A supernet (or stand-alone network) with its variables.
pub struct Supernet {
    vs: nn::VarStore,
    space: Space,
    net: Box<dyn Network>,
    copies: Vec<usize>,
    routes: Vec<Option<Route>>,
}

impl Supernet {
    /// Builds a network holding a module for every op `space` allows at every site.
    pub fn new(space: &Space, device: Device) -> Supernet {
        let vs = nn::VarStore::new(device);
        let root = vs.root();
        let net = space.kind.build(&root, space);
        Supernet {
            vs,
            space: space.clone(),
            net,
            copies: vec![1; space.choices.len()],
            routes: vec![None; space.choices.len()],
        }
    }

    /// [`Supernet::new`] with its conv weights drawn by `init`, from libtorch's generator (seed it
    /// first): how every stage builds a network it is going to train.
    pub fn initialised(space: &Space, device: Device, init: Init) -> Supernet {
        let net = Supernet::new(space, device);
        init.apply(&net.vs);
        net
    }

    /// The stand-alone network of a child (freshly initialised).
    pub fn standalone(kind: &SpaceKind, arch: &Arch, device: Device) -> Supernet {
        Supernet::new(&Space::single(kind.clone(), arch), device)
    }

    /// The space whose ops this network holds modules for.
    pub fn built_space(&self) -> &Space {
        &self.space
    }

    pub fn kind(&self) -> &SpaceKind {
        &self.space.kind
    }

    pub fn device(&self) -> Device {
        self.vs.device()
    }

    pub fn var_store(&self) -> &nn::VarStore {
        &self.vs
    }

    /// Weight copies per choice point (strategy 2; 1 = shared).
    pub fn copies(&self) -> &[usize] {
        &self.copies
    }

    /// How each choice point picks its copy (`None`: it has one copy).
    pub fn routes(&self) -> &[Option<Route>] {
        &self.routes
    }

    /// Raises the copies of choice point `cp` to `k` (never lowers them: weights are kept for a later
    /// resume) and routes children to them by `route` (`None`: every child uses copy 0). New copies
    /// start from copy 0's weights.
    pub fn grow_copies(&mut self, cp: usize, k: usize, route: Option<Route>) {
        if k > self.copies[cp] {
            self.net.grow_copies(&self.vs.root(), cp, k);
            self.copies[cp] = k;
        }
        self.routes[cp] = route;
    }

    /// The copy each choice point uses for this child (see [`Route`]).
    pub fn route(&self, arch: &Arch) -> Vec<usize> {
        self.copies
            .iter()
            .zip(&self.routes)
            .map(|(&k, route)| match route {
                Some(r) if k > 1 => r.copy_for(arch.ops[r.by], k),
                _ => 0,
            })
            .collect()
    }

    /// Checks that every op of `arch` has a module here.
    pub fn check(&self, arch: &Arch) -> Result<()> {
        self.space.check(arch)
    }

    /// Logits of the child `arch` for a batch `x` (NCHW): the single-path forward.
    pub fn forward(&self, x: &Tensor, arch: &Arch, mode: Mode) -> Tensor {
        self.net.forward(x, &Mix::single(arch), &self.route(arch), mode)
    }

    /// [`Supernet::forward`], and the feature map an auxiliary head reads when the network offers
    /// one ([`crate::space::SpaceDef::aux_shape`]) and `mode` is training.
    pub fn forward_with_aux(&self, x: &Tensor, arch: &Arch, mode: Mode) -> (Tensor, Option<Tensor>) {
        self.net.forward_aux(x, &Mix::single(arch), &self.route(arch), mode)
    }

    /// Logits of the ops and weights `mix` picks at every choice point (see [`Mix`]), weight
    /// copies routed by [`Mix::principal`].
    pub fn forward_mix(&self, x: &Tensor, mix: &Mix, mode: Mode) -> Tensor {
        self.net.forward(x, mix, &self.route(&mix.principal()), mode)
    }

    /// The modules `mix` uses, site by site.
    fn modules_for(&self, mix: &Mix) -> Vec<&dyn Module> {
        let route = self.route(&mix.principal());
        let mut out = Vec::new();
        for s in self.net.sites() {
            out.extend(mix.at(s.cp()).iter().map(|pick| s.module(pick.op, route[s.cp()])));
        }
        out
    }

    /// Trainable tensors the child uses (shared parts + its modules): what one SPOS step updates.
    pub fn trainable_for(&self, arch: &Arch) -> Vec<&Param> {
        self.trainable_for_mix(&Mix::single(arch))
    }

    /// Trainable tensors a forward of `mix` uses (shared parts + the modules of every op it lists):
    /// what a step of a weighted method updates.
    pub fn trainable_for_mix(&self, mix: &Mix) -> Vec<&Param> {
        let mut out = Vec::new();
        self.net.shared_trainable(&mut out);
        for m in self.modules_for(mix) {
            m.trainable(&mut out);
        }
        out
    }

    /// BatchNorms the child uses: the ones BN recalibration resets and re-estimates.
    pub fn batch_norms_for(&self, arch: &Arch) -> Vec<&BatchNorm> {
        let mix = Mix::single(arch);
        let mut out = self.net.shared_batch_norms();
        out.extend(self.modules_for(&mix).into_iter().flat_map(|m| m.batch_norms()));
        out
    }

    /// Number of trainable parameters the child uses.
    pub fn param_count_for(&self, arch: &Arch) -> i64 {
        self.trainable_for(arch).iter().map(|p| p.tensor.numel() as i64).sum()
    }

    /// Number of trainable parameters every child uses (stem, fixed blocks, head).
    pub fn shared_param_count(&self) -> i64 {
        let mut out = Vec::new();
        self.net.shared_trainable(&mut out);
        out.iter().map(|p| p.tensor.numel() as i64).sum()
    }

    /// Number of trainable parameters held (every op, every copy).
    pub fn param_count(&self) -> i64 {
        self.vs.trainable_variables().iter().map(|t| t.numel() as i64).sum()
    }

    /// Trainable parameters of one copy of `op` summed over the sites of choice point `cp`.
    pub fn op_param_count(&self, cp: usize, op: Op) -> i64 {
        let mut v = Vec::new();
        for s in self.net.sites().filter(|s| s.cp() == cp) {
            s.module(op, 0).trainable(&mut v);
        }
        v.iter().map(|p| p.tensor.numel() as i64).sum()
    }

    /// The segments of the child's weight vector in `composition` (see [`crate::vector`]).
    pub fn segments(&self, arch: &Arch, composition: Composition) -> Vec<Segment> {
        let route = self.route(arch);
        let mut out = Vec::new();
        self.net.segments(&arch.ops, &route, composition, &mut out);
        out
    }

    /// Magnitude of the child's op at every site ([`OpSite::magnitude`]): `|w| / sqrt(numel)` of
    /// the op's conv weights, with the virtual kernels of parameter-free ops (pool `1/k²`,
    /// skip/identity an identity kernel, none 0).
    pub fn op_magnitudes(&self, arch: &Arch) -> Vec<f64> {
        let route = self.route(arch);
        self.net.sites().map(|s| s.magnitude(arch.ops[s.cp()], route[s.cp()])).collect()
    }

    /// The child as an inference graph (BatchNorm not yet folded), with the weights it uses.
    pub fn graph(&self, arch: &Arch, name: &str) -> Graph {
        let route = self.route(arch);
        let [c, h, w] = self.kind().input_shape();
        let shape = vec![Dim::Batch, Dim::Fixed(c), Dim::Fixed(h), Dim::Fixed(w)];
        let mut g = GraphBuilder::new(name, "input", shape);
        let out = self.net.lower(&mut g, &arch.ops, &route);
        g.finish(&out, vec![Dim::Batch, Dim::Fixed(self.kind().classes())])
    }

    /// Every piece of the network a latency table times (see [`pieces`]).
    pub fn pieces(&self) -> Vec<Piece> {
        self.net.pieces()
    }

    /// One piece as an inference graph (BatchNorm not yet folded) with input `[batch] + piece.input`:
    /// a chain of `copies` copies of it, each reading the previous one's output, for pieces that keep
    /// their shape. The ops use copy 0 of their weights.
    ///
    /// # Panics
    /// If the network has no such piece (see [`Supernet::pieces`]), or `copies` is 0, or above 1 for a
    /// piece that changes its shape.
    pub fn piece_graph(&self, key: PieceKey, copies: usize) -> Graph {
        let piece = self.pieces().into_iter().find(|pc| pc.key == key);
        let piece = piece.unwrap_or_else(|| panic!("this {} network has no piece {key}", self.kind().name()));
        assert!(copies == 1 || piece.chainable, "piece {key} changes its shape: it cannot be chained");
        let name = format!("pwsnas_piece_{key}");
        self.net.piece_graph(&piece, &name, copies)
    }

    /// Every variable (trainable and BN statistics) by name, sorted by name.
    pub fn named_tensors(&self) -> Vec<(String, Tensor)> {
        let mut v: Vec<(String, Tensor)> = self.vs.variables().into_iter().collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// Loads every variable from `tensors` (by name). Fails, naming the variable, if one is missing
    /// or has another shape; names this network does not have are ignored.
    pub fn load(&self, tensors: &HashMap<String, Tensor>) -> Result<()> {
        load_variables(&self.vs, tensors, "variable")
    }

    /// The stand-alone network of `arch` with the weights (and BN statistics) this supernet gives it.
    pub fn extract_child(&self, arch: &Arch) -> Result<Supernet> {
        self.check(arch)?;
        let child = Supernet::standalone(self.kind(), arch, self.device());
        let src_vars = self.vs.variables();
        let mut renamed: HashMap<String, Tensor> = HashMap::new();
        let route = self.route(arch);
        for (src_site, dst_site) in self.net.sites().zip(child.net.sites()) {
            let op = arch.ops[src_site.cp()];
            let src = src_site.module(op, route[src_site.cp()]).all_params();
            let dst = dst_site.module(op, 0).all_params();
            for (d, s) in dst.iter().zip(src) {
                renamed.insert(d.name.clone(), s.tensor.shallow_clone());
            }
        }
        for (name, t) in child.vs.variables() {
            if let std::collections::hash_map::Entry::Vacant(slot) = renamed.entry(name) {
                let src = src_vars.get(slot.key()).ok_or_else(|| {
                    ModelError::Weights(format!("supernet has no variable '{}'", slot.key()))
                })?;
                debug_assert_eq!(src.size(), t.size());
                slot.insert(src.shallow_clone());
            }
        }
        child.load(&renamed)?;
        Ok(child)
    }
}
