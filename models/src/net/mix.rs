//! What a forward pass runs: per choice point, a list of (op, weight) — a [`Mix`].
//!
//! One forward serves every weight-sharing method of the paper:
//! - SPOS and FairNAS: one op per choice point and no weight ([`Mix::single`]). The networks take a
//!   fast path there: the op's module alone, with no multiply and no extra kernel, exactly the
//!   single-path forward;
//! - DARTS and PDARTS (Liu et al., ICLR 2019; Chen et al., ICCV 2019): every surviving op weighted
//!   by softmax(α) of its choice point ([`Mix::weighted`]);
//! - ProxylessNAS (Cai et al., ICLR 2019): two sampled ops weighted by their gates.
//!
//! A choice point's output is `Σ weight · op(x)` over its list (an op without a weight counts
//! once, `none` adds nothing), so gradients reach both the ops' weights and whatever the weight
//! tensors were computed from (α). Strategy-2 weight copies are routed by the *first* op of each
//! previous choice point ([`Mix::principal`]): a method lists the op it sampled, or its strongest,
//! first.
use tch::Tensor;

use crate::op::Op;
use crate::space::{Arch, Space};

/// One op of a choice point in a forward pass, and its weight: a tensor broadcastable to the op's
/// output (a scalar for DARTS and ProxylessNAS), or none for weight 1 without a multiply.
#[derive(Debug)]
pub struct Weighted {
    pub op: Op,
    pub weight: Option<Tensor>,
}

/// Per choice point, the ops a forward pass runs and their weights.
#[derive(Debug)]
pub struct Mix {
    choices: Vec<Vec<Weighted>>,
}

impl Mix {
    /// The ops and weights of every choice point, in the space's order.
    ///
    /// # Panics
    /// If a choice point has no op.
    pub fn new(choices: Vec<Vec<Weighted>>) -> Mix {
        if let Some(cp) = choices.iter().position(Vec::is_empty) {
            panic!("a mix needs at least one op per choice point; choice point {cp} has none");
        }
        Mix { choices }
    }

    /// The single path `arch`: its op at each choice point, unweighted (SPOS).
    pub fn single(arch: &Arch) -> Mix {
        Mix { choices: arch.ops.iter().map(|&op| vec![Weighted { op, weight: None }]).collect() }
    }

    /// Every op `space` allows, weighted: op `k` of choice point `cp` by `weights[cp][k]` (e.g.
    /// `weights[cp] = α[cp].softmax(0)`, DARTS's continuous relaxation).
    ///
    /// # Panics
    /// If `weights` does not hold one 1-D tensor per choice point with one value per allowed op.
    pub fn weighted(space: &Space, weights: &[Tensor]) -> Mix {
        assert_eq!(weights.len(), space.choices.len(), "one weight tensor per choice point");
        let choices = space
            .choices
            .iter()
            .zip(weights)
            .map(|(cp, w)| {
                assert_eq!(w.size(), [cp.ops.len() as i64], "weights of choice point {}", cp.name);
                cp.ops
                    .iter()
                    .enumerate()
                    .map(|(k, &op)| Weighted { op, weight: Some(w.get(k as i64)) })
                    .collect()
            })
            .collect();
        Mix { choices }
    }

    /// The ops and weights of choice point `cp`.
    pub fn at(&self, cp: usize) -> &[Weighted] {
        &self.choices[cp]
    }

    pub fn len(&self) -> usize {
        self.choices.len()
    }

    pub fn is_empty(&self) -> bool {
        self.choices.is_empty()
    }

    /// The first op of every choice point: what strategy-2 routing reads.
    pub fn principal(&self) -> Arch {
        Arch { ops: self.choices.iter().map(|c| c[0].op).collect() }
    }
}
