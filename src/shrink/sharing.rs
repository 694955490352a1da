//! Strategy 2 of docs/method.md: lower the degree of weight sharing by spending the capacity that dropped
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

#[cfg(test)]
mod tests {
    use super::*;
    use pwsnas_models::SpaceKind;

    #[test]
    fn copies_split_the_children_of_a_weight_by_the_previous_choice() {
        let space = Space::full(SpaceKind::by_name("nb201").unwrap());
        let one = degree(&space, &[1; 6]);
        // Every weighted op (conv 1x1, conv 3x3) of every edge is used by 15625 / 5 children.
        assert_eq!(one.mean_children_per_weight, 3125.0);
        assert_eq!(one.weight_units, 12);
        // Two copies on edge 1<-0, routed by 3<-2 (op indices 0..5): copy 0 gets 3 of 5 previous ops, copy 1 gets 2.
        let two = degree(&space, &[2, 1, 1, 1, 1, 1]);
        assert_eq!(two.weight_units, 14);
        assert_eq!(two.max_children_per_weight, 3125.0);
        let expected = (10.0 * 3125.0 + 2.0 * 1875.0 + 2.0 * 1250.0) / 14.0;
        assert!((two.mean_children_per_weight - expected).abs() < 1e-9);
        assert!(two.mean_children_per_weight < one.mean_children_per_weight);
    }

    #[test]
    fn planned_copies_respect_the_parameter_budget() {
        let kind = SpaceKind::new(pwsnas_models::Nb201Params {
            channels: 4,
            cells_per_stage: 1,
            ..Default::default()
        });
        let full = Space::full(kind);
        let net = Supernet::new(&full, tch::Device::Cpu);
        let budget = effective_params(&net, &full, &[1; 6]);
        // Nothing dropped: no spare capacity, no copies.
        assert_eq!(plan_copies(&net, &full, &[1; 6], 2, budget), vec![1; 6]);
        // Drop both convs from three edges: the freed capacity pays for copies elsewhere.
        let mut shrunk = full.clone();
        for cp in 0..3 {
            shrunk.remove(cp, pwsnas_models::Op::NorConv1x1).unwrap();
            shrunk.remove(cp, pwsnas_models::Op::NorConv3x3).unwrap();
        }
        let copies = plan_copies(&net, &shrunk, &[1; 6], 2, budget);
        assert!(copies.contains(&2), "{copies:?}");
        assert!(effective_params(&net, &shrunk, &copies) <= budget);
        assert!(
            degree(&shrunk, &copies).mean_children_per_weight
                < degree(&shrunk, &[1; 6]).mean_children_per_weight
        );
    }
}
