//! What a search space is, as a trait: [`SpaceDef`].
//!
//! A space is a type of parameters (`Nb201Params`, `MobileParams`, ...) that implements
//! [`SpaceDef`]; [`super::registry`] lists the spaces by name, and [`SpaceKind`] is the cheap handle
//! the rest of pwsnas passes around. Everything pwsnas asks of a space goes through this trait, so
//! adding a space is its own module plus one line in the registry.
//!
//! The required methods say what the space *is*: its choice points and their full op sets, its
//! arch text, the cost and latency pieces of a child, its network. The provided ones are policies
//! most spaces share, which a space with topology rules (a DARTS cell, whose nodes each take
//! exactly two of their incoming edges in a stand-alone child) overrides:
//!
//! - a *path* is one allowed op per choice point: what a single-path supernet step trains and what
//!   the angle metric scores. Every edge of a cell is active in a path.
//! - a *child* is a path that is also a stand-alone network of the space ([`SpaceDef::check_child`]):
//!   what the search evaluates, retraining trains and export lowers. In `nb201` and `mobile` every
//!   path is a child.
//!
//! The sampling, mutation and crossover hooks only produce what they promise (paths, children) in
//! the (possibly shrunk) [`Space`] they are given, so the search never has to repair a child.
use std::any::Any;
use std::fmt;

use rand::seq::IndexedRandom;
use rand::{Rng, RngCore};
use tch::nn;

use super::{Arch, Space, SpaceKind};
use crate::cost::Cost;
use crate::drawing::{ChainDrawing, Drawing};
use crate::error::Result;
use crate::net::aux_head::AuxShape;
use crate::net::pieces::PieceKey;
use crate::net::Network;
use crate::op::Op;

/// A search space: its skeleton, its choice points and how children of it are written, costed,
/// sampled and built. Implemented by the space's parameter type; see the module docs.
pub trait SpaceDef: Any + Send + Sync + fmt::Debug {
    /// The name used in settings, `space.json` and the CLI (`--space`). Equal to
    /// [`SpaceParams::NAME`] for registered spaces.
    fn name(&self) -> &'static str;

    /// Every parameter, as the `params` object of `space.json` (two kinds are equal when their names
    /// and these are).
    fn params_json(&self) -> serde_json::Value;

    /// Checks the parameters; the error names the field and what was expected.
    fn validate(&self) -> Result<()>;

    /// Number of classes of the classifier.
    fn classes(&self) -> usize;

    /// `[channels, height, width]` of one input image.
    fn input_shape(&self) -> [usize; 3];

    /// The same space for images of `channels` × `size` × `size` and `classes` classes (not yet
    /// validated: [`SpaceKind::with_data`] validates).
    fn for_data(&self, channels: usize, size: usize, classes: usize) -> SpaceKind;

    /// The choice points' names, in the order of an [`Arch`]'s ops.
    fn choice_point_names(&self) -> Vec<String>;

    /// The full op set of every choice point.
    fn full_ops(&self) -> Vec<Vec<Op>>;

    /// The choice points whose op may pick the weight copy of `cp` (strategy 2 of docs/method.md), in
    /// order of preference; never `cp` itself.
    fn previous_choices(&self, cp: usize) -> Vec<usize>;

    /// The other choice points whose op lists are tied to `cp`'s: dropping an op from one drops it
    /// from all (e.g. a DARTS edge's op list shared by its normal and its reduction cell). None by
    /// default.
    fn linked(&self, _cp: usize) -> Vec<usize> {
        Vec::new()
    }

    /// Whether a child or path may pick `op` at a choice point that still allows `allowed`. By
    /// default exactly the allowed ops; a space whose children cut edges (DARTS: an edge a node does
    /// not keep is `none`, which is no operator candidate) accepts that marker everywhere too.
    fn allows(&self, allowed: &[Op], op: Op) -> bool {
        allowed.contains(&op)
    }

    /// Whether the space's network supports weight copies (strategy 2 of docs/method.md,
    /// `--copies` above 1). True by default.
    fn weight_copies(&self) -> bool {
        true
    }

    /// The feature map an auxiliary classifier may read while a stand-alone child trains
    /// ([`crate::net::aux_head`]); `None` (the default) where the network offers none.
    fn aux_shape(&self) -> Option<AuxShape> {
        None
    }

    /// Whether PDARTS's final rule (Chen et al., ICCV 2019: at most `max_skip` `skip_connect` in the
    /// derived child) counts choice point `cp`. True for every choice point by default; a cell space
    /// counts its normal cell only, as PDARTS does.
    fn skip_capped(&self, _cp: usize) -> bool {
        true
    }

    /// The same space at depth `depth`, for PDARTS's stages of growing depth (Chen et al., ICCV
    /// 2019: 5 → 11 → 17 cells), with the same choice points and arch text; `None` (the default)
    /// where the space has no depth apart from its choice points (a chain of blocks). Not yet
    /// validated ([`SpaceDef::validate`] does).
    fn with_depth(&self, _depth: usize) -> Option<SpaceKind> {
        None
    }

    /// Whether the space's stand-alone network applies DARTS's drop-path when training asks for it
    /// ([`crate::Mode::drop_path`]). False by default: on a chain of blocks (mobile) or in a space
    /// without a cell's sum of edges, dropping an op's output has no such meaning.
    fn drop_path(&self) -> bool {
        false
    }

    /// The child's text form (the space's arch string).
    fn format_arch(&self, arch: &Arch) -> String;

    /// What the child looks like, for reports and `pwsnas arch info --svg` ([`crate::drawing`]): by
    /// default a chain of the choice points and the op each picks; a space with a cell or a layer
    /// sequence of its own draws that instead.
    fn drawing(&self, arch: &Arch) -> Drawing {
        Drawing::Chain(ChainDrawing::of_choices(self.name(), &self.choice_point_names(), &arch.ops))
    }

    /// Reads the text form, checking its syntax and op names only (membership in a space and the
    /// topology of a child are [`SpaceKind::parse_arch`]'s).
    fn read_arch(&self, s: &str) -> Result<Arch>;

    /// Checks the topology of a stand-alone child beyond one op of its full set per choice point
    /// (e.g. a DARTS node taking exactly two inputs). Every path is a child by default.
    fn check_child(&self, _arch: &Arch) -> Result<()> {
        Ok(())
    }

    /// A path drawn uniformly from `space`: each choice point's op independently.
    fn sample_path(&self, space: &Space, rng: &mut dyn RngCore) -> Arch {
        Arch { ops: space.choices.iter().map(|cp| cp.ops[rng.random_range(0..cp.ops.len())]).collect() }
    }

    /// Whether every path of a space of this kind is a child (true by default), so that
    /// [`Space::enumerate`] lists the children and [`Space::size`] counts them.
    fn children_are_paths(&self) -> bool {
        true
    }

    /// The child that keeps `path`'s op at every choice point its topology lets it keep, for what
    /// makes children from chosen ops (the latency table's probe and calibration children): the
    /// path itself by default (every path is a child); a space with topology rules keeps a fixed
    /// subset of the choice points and cuts the others (e.g. a DARTS node its two latest inputs).
    /// `path` has an op other than `none` at every choice point.
    fn child_of_path(&self, path: &Arch) -> Arch {
        path.clone()
    }

    /// Number of children of `space` (saturating at `u128::MAX`): [`Space::size`] by default.
    fn child_count(&self, space: &Space) -> u128 {
        space.size()
    }

    /// A child drawn from `space`. By default every path is a child.
    fn sample_child(&self, space: &Space, rng: &mut dyn RngCore) -> Arch {
        self.sample_path(space, rng)
    }

    /// A child of `space` near `parent` (SPOS's mutation): by default, each choice point redrawn
    /// from its allowed ops with probability `prob`.
    fn mutate(&self, space: &Space, parent: &Arch, prob: f64, rng: &mut dyn RngCore) -> Arch {
        let ops = parent
            .ops
            .iter()
            .zip(&space.choices)
            .map(
                |(&op, cp)| {
                    if rng.random::<f64>() < prob {
                        *cp.ops.choose(rng).expect("non-empty")
                    } else {
                        op
                    }
                },
            )
            .collect();
        Arch { ops }
    }

    /// A child of `space` mixing two children of it (SPOS's crossover): by default, each choice
    /// point's op from one parent or the other with equal chance.
    fn crossover(&self, _space: &Space, a: &Arch, b: &Arch, rng: &mut dyn RngCore) -> Arch {
        Arch {
            ops: a.ops.iter().zip(&b.ops).map(|(&x, &y)| if rng.random::<bool>() { x } else { y }).collect(),
        }
    }

    /// The child a gradient-based method (DARTS, PDARTS, ProxylessNAS) derives from op strengths:
    /// `strengths[cp][k]` for op `k` of `space.choices[cp]` (e.g. softmax(α)). By default the
    /// strongest op of every choice point, `none` left out where another op survives (DARTS's rule,
    /// Liu et al., ICLR 2019, as NAS-Bench-201's DARTS baseline applies it, Dong & Yang, ICLR
    /// 2020). A space with topology rules overrides it so that the result passes
    /// [`SpaceDef::check_child`] (e.g. a DARTS node keeping its two strongest incoming edges).
    fn derive_child(&self, space: &Space, strengths: &[Vec<f64>]) -> Arch {
        let ops = space
            .choices
            .iter()
            .zip(strengths)
            .map(|(cp, w)| {
                let candidates = cp.ops.iter().zip(w);
                let real = candidates.clone().filter(|(op, _)| **op != Op::None);
                let best = |it: &mut dyn Iterator<Item = (&Op, &f64)>| {
                    it.max_by(|a, b| a.1.total_cmp(b.1)).map(|(op, _)| *op)
                };
                best(&mut real.clone()).or_else(|| best(&mut candidates.clone())).expect("non-empty")
            })
            .collect();
        Arch { ops }
    }

    /// FLOPs and parameters of a child, layer by layer.
    fn cost(&self, arch: &Arch) -> Cost;

    /// The pieces of the graph the export lowers for `arch` (see [`crate::net::pieces`]), each
    /// with the number of times it occurs, in network order (stem first, head last).
    fn composition(&self, arch: &Arch) -> Vec<(PieceKey, usize)>;

    /// The shrinking this space gets when the settings leave it open; `candidates` is the number
    /// of operator candidates of the space being shrunk.
    fn shrink_defaults(&self, candidates: usize) -> ShrinkDefaults;

    /// The network holding a module for every op `space` allows at every site, its variables under
    /// `root`. `space` is a space of this kind.
    fn build(&self, root: &nn::Path, space: &Space) -> Box<dyn Network>;
}

/// A registered space's parameter type: what the registry needs to build it from its name and a
/// JSON object of parameters (missing ones take the defaults).
pub trait SpaceParams: SpaceDef + Default + serde::de::DeserializeOwned {
    const NAME: &'static str;
}

/// A space's default shrinking (ABS's settings for it, Hu et al., ECCV 2020).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ShrinkDefaults {
    /// Operator candidates dropped per round.
    pub drop_per_round: usize,
    /// Shrinking stops once the space has at most this many children.
    pub target_size: f64,
    /// Whether a round drops the lowest-scored op of every choice point (ABS's rule for DARTS)
    /// rather than the `drop_per_round` lowest overall.
    pub per_choice_point: bool,
}
