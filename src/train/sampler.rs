//! Which children a supernet training step uses.
//!
//! - `uniform` (SPOS, Guo et al. 2020): one child drawn uniformly from the current space.
//! - `fair` (FairNAS, Chu et al. 2021, strict fairness): `m` children such that every op of every
//!   choice point is used exactly once (for each choice point, a random permutation of its ops); the
//!   gradients of the `m` children are accumulated before one update. When choice points have
//!   different numbers of ops (a shrunk space), `m` is the largest count and the shorter
//!   permutations are continued with a fresh permutation, so every op is used at least once.
use pwsnas_models::{Arch, Space};
use rand::seq::SliceRandom;
use rand::Rng;

use crate::settings::Sampler;

pub fn sample<R: Rng>(sampler: Sampler, space: &Space, rng: &mut R) -> Vec<Arch> {
    match sampler {
        Sampler::Uniform => vec![space.sample(rng)],
        Sampler::Fair => fair(space, rng),
    }
}

fn fair<R: Rng>(space: &Space, rng: &mut R) -> Vec<Arch> {
    let m = space.choices.iter().map(|cp| cp.ops.len()).max().unwrap_or(1);
    let columns: Vec<Vec<_>> = space
        .choices
        .iter()
        .map(|cp| {
            let mut col = Vec::with_capacity(m);
            while col.len() < m {
                let mut perm = cp.ops.clone();
                perm.shuffle(rng);
                col.extend(perm);
            }
            col.truncate(m);
            col
        })
        .collect();
    (0..m).map(|k| Arch { ops: columns.iter().map(|col| col[k]).collect() }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use pwsnas_models::{Op, SpaceKind};
    use rand::SeedableRng;

    #[test]
    fn fair_children_cover_every_op_exactly_once() {
        let space = Space::full(SpaceKind::by_name("nb201").unwrap());
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
        let children = sample(Sampler::Fair, &space, &mut rng);
        assert_eq!(children.len(), 5);
        for cp in 0..space.choices.len() {
            let mut used: Vec<Op> = children.iter().map(|a| a.ops[cp]).collect();
            used.sort();
            let mut all = space.choices[cp].ops.clone();
            all.sort();
            assert_eq!(used, all);
        }
        assert_eq!(sample(Sampler::Uniform, &space, &mut rng).len(), 1);
    }
}
