//! Strategy 2 of METHOD.md: lower the degree of weight sharing by spending the capacity that dropped
//! operators free on weight copies of the surviving ones.
//!
//! The *degree of sharing* of a weight tensor is the number of children of the space that use it.
//! With `K` copies at a choice point, a child uses copy `index(previous choice) mod K`, so a copy is
//! shared only by the children whose previous choice maps to it.
use pwsnas_models::{Space, Supernet};
use serde::{Deserialize, Serialize};

/// Sharing statistics over the weighted operator candidates of a space.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SharingDegree {
    /// Mean number of children using each weight copy (copies used by no child are left out).
    pub mean_children_per_weight: f64,
    pub max_children_per_weight: f64,
    /// The mean as a fraction of the space size.
    pub mean_fraction_of_space: f64,
    pub weight_units: usize,
}

/// Degree of sharing of `space` when choice point `cp` has `copies[cp]` copies.
pub fn degree(space: &Space, copies: &[usize]) -> SharingDegree {
    let size = space.size() as f64;
    let full_ops = space.kind.full_ops();
    let mut counts = Vec::new();
    for (cp, choice) in space.choices.iter().enumerate() {
        let per_op = size / choice.ops.len() as f64;
        let k = copies[cp].max(1);
        for _ in choice.ops.iter().filter(|o| o.has_weights()) {
            match space.kind.previous_choice(cp) {
                Some(prev) if k > 1 => {
                    let prev_ops = &space.choices[prev].ops;
                    for h in 0..k {
                        let routed = prev_ops
                            .iter()
                            .filter(|p| full_ops[prev].iter().position(|o| o == *p).unwrap_or(0) % k == h)
                            .count();
                        if routed > 0 {
                            counts.push(per_op * routed as f64 / prev_ops.len() as f64);
                        }
                    }
                }
                _ => counts.push(per_op),
            }
        }
    }
    let n = counts.len();
    let mean = if n == 0 { 0.0 } else { counts.iter().sum::<f64>() / n as f64 };
    SharingDegree {
        mean_children_per_weight: mean,
        max_children_per_weight: counts.iter().cloned().fold(0.0, f64::max),
        mean_fraction_of_space: if size > 0.0 { mean / size } else { 0.0 },
        weight_units: n,
    }
}

/// Parameters of the supernet of `space` with these copies: shared parts plus, per choice point,
/// every surviving op times its copies.
pub fn effective_params(net: &Supernet, space: &Space, copies: &[usize]) -> i64 {
    let mut total = net.shared_param_count();
    for (cp, choice) in space.choices.iter().enumerate() {
        for &op in &choice.ops {
            let k = if op.has_weights() { copies[cp] as i64 } else { 1 };
            total += k * net.op_param_count(cp, op);
        }
    }
    total
}

/// Raises copies towards `k` per choice point while the effective parameter count stays at or below
/// `budget` (the original supernet's). Choice points with the fewest surviving parameters are served
/// first, so the capacity reaches as many choice points as possible. Copies never decrease.
pub fn plan_copies(net: &Supernet, space: &Space, current: &[usize], k: usize, budget: i64) -> Vec<usize> {
    let mut copies = current.to_vec();
    if k <= 1 {
        return copies;
    }
    let mut order: Vec<(i64, usize)> = space
        .choices
        .iter()
        .enumerate()
        .filter(|(_, c)| c.ops.iter().any(|o| o.has_weights()))
        .map(|(cp, c)| (c.ops.iter().map(|&o| net.op_param_count(cp, o)).sum(), cp))
        .collect();
    order.sort();
    for (_, cp) in order {
        if copies[cp] >= k || space.kind.previous_choice(cp).is_none() {
            continue;
        }
        let mut trial = copies.clone();
        trial[cp] = k;
        if effective_params(net, space, &trial) <= budget {
            copies = trial;
        }
    }
    copies
}
