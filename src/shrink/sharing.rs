//! Strategy 2 of PWSNAS (`docs/method.md`): lower the degree of weight sharing by spending a
//! parameter budget on weight copies of the surviving operators.
//!
//! The *degree of sharing* of a weight tensor is the number of children of the space that use it.
//! A choice point with `K` copies routes each child by the *rank of its op at a previous choice
//! point among that choice point's surviving ops*, mod `K` ([`route_for`]), so the children of an op
//! split evenly over the copies, and every copy up to the previous choice point's number of
//! surviving ops is used by some child. Copies beyond that number, or behind a previous choice
//! point with one surviving op, would be used by every child of the op or by none: they are never
//! planned ([`plan_copies`]) and never counted.
use pwsnas_models::{Op, Route, Space, Supernet};
use serde::{Deserialize, Serialize};

use super::report::{ChoicePointCopies, CopyUse};

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

/// How choice point `cp` of `space` routes children to its copies: by the previous choice point
/// (one of [`pwsnas_models::SpaceKind::previous_choices`]) with the most surviving ops, the first
/// one on ties, ranked among those ops. `None` when no previous choice point has two ops or more:
/// every child would then use the same copy.
pub fn route_for(space: &Space, cp: usize) -> Option<Route> {
    let mut best: Option<usize> = None;
    for by in space.kind.previous_choices(cp) {
        if best.is_none_or(|b| space.choices[by].ops.len() > space.choices[b].ops.len()) {
            best = Some(by);
        }
    }
    let by = best.filter(|&by| space.choices[by].ops.len() > 1)?;
    Some(Route { by, ops: space.choices[by].ops.clone() })
}

/// The ops of `route` routed to each copy that some child uses, when `k` copies are held.
pub fn routed_ops(route: &Route, k: usize) -> Vec<Vec<Op>> {
    let used = k.min(route.ops.len()).max(1);
    (0..used)
        .map(|h| {
            route.ops.iter().enumerate().filter(|(rank, _)| rank % k.max(1) == h).map(|(_, &o)| o).collect()
        })
        .collect()
}

/// Copies of choice point `cp` that children of `space` use when `k` are held.
pub fn used_copies(space: &Space, cp: usize, k: usize) -> usize {
    match route_for(space, cp) {
        Some(r) if k > 1 => routed_ops(&r, k).len(),
        _ => 1,
    }
}

/// Children of `space` using each used copy of one op with weights at `cp`.
fn children_per_copy(space: &Space, cp: usize, k: usize) -> Vec<f64> {
    let per_op = space.size() as f64 / space.choices[cp].ops.len() as f64;
    match route_for(space, cp) {
        Some(r) if k > 1 => {
            routed_ops(&r, k).iter().map(|ops| per_op * ops.len() as f64 / r.ops.len() as f64).collect()
        }
        _ => vec![per_op],
    }
}

fn weighted_ops(space: &Space, cp: usize) -> usize {
    space.choices[cp].ops.iter().filter(|o| o.has_weights()).count()
}

/// Degree of sharing of `space` when choice point `cp` holds `copies[cp]` copies.
pub fn degree(space: &Space, copies: &[usize]) -> SharingDegree {
    let size = space.size() as f64;
    let mut counts = Vec::new();
    for (cp, &k) in copies.iter().enumerate() {
        let per_copy = children_per_copy(space, cp, k);
        for _ in 0..weighted_ops(space, cp) {
            counts.extend(&per_copy);
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
/// every surviving op times the copies children use.
pub fn effective_params(net: &Supernet, space: &Space, copies: &[usize]) -> i64 {
    let mut total = net.shared_param_count();
    for (cp, choice) in space.choices.iter().enumerate() {
        let used = used_copies(space, cp, copies[cp]) as i64;
        for &op in &choice.ops {
            let k = if op.has_weights() { used } else { 1 };
            total += k * net.op_param_count(cp, op);
        }
    }
    total
}

/// Plans the copies of `space` from the `current` ones: greedily adds the one copy that lowers the
/// mean degree of sharing most per parameter it costs, while the effective parameter count stays
/// at or below `budget`, no choice point has more than `max_copies`, and every copy is used by some
/// child (at most the routing choice point's surviving ops). Copies never decrease.
pub fn plan_copies(
    net: &Supernet,
    space: &Space,
    current: &[usize],
    max_copies: usize,
    budget: i64,
) -> Vec<usize> {
    let mut copies = current.to_vec();
    let mut params = effective_params(net, space, &copies);
    let mut mean = degree(space, &copies).mean_children_per_weight;
    loop {
        let mut best: Option<(f64, Vec<usize>, i64, f64)> = None;
        for cp in 0..space.choices.len() {
            let used = used_copies(space, cp, copies[cp]);
            let Some(route) = route_for(space, cp) else { continue };
            if weighted_ops(space, cp) == 0 || used >= max_copies.min(route.ops.len()) {
                continue;
            }
            let mut trial = copies.clone();
            trial[cp] = used + 1;
            let cost = effective_params(net, space, &trial);
            if cost > budget || cost <= params {
                continue;
            }
            let trial_mean = degree(space, &trial).mean_children_per_weight;
            let gain = (mean - trial_mean) / (cost - params) as f64;
            if gain > 0.0 && best.as_ref().is_none_or(|b| gain > b.0) {
                best = Some((gain, trial, cost, trial_mean));
            }
        }
        let Some((_, trial, cost, trial_mean)) = best else { break };
        copies = trial;
        params = cost;
        mean = trial_mean;
    }
    copies
}

/// What `shrink.json` records per choice point: its copies, the children routed to each, and its
/// degree of sharing with the copies before and after the round (both on the shrunk space).
pub fn choice_point_records(
    net: &Supernet,
    space: &Space,
    before: &[usize],
    after: &[usize],
) -> Vec<ChoicePointCopies> {
    let mean = |v: Vec<f64>| v.iter().sum::<f64>() / v.len().max(1) as f64;
    (0..space.choices.len())
        .map(|cp| {
            let route = route_for(space, cp);
            let weighted = weighted_ops(space, cp) > 0;
            let per_op = space.size() as f64 / space.choices[cp].ops.len() as f64;
            let per_copy = match &route {
                Some(r) if after[cp] > 1 => routed_ops(r, after[cp])
                    .into_iter()
                    .map(|ops| CopyUse { children: per_op * ops.len() as f64 / r.ops.len() as f64, ops })
                    .collect(),
                _ => vec![CopyUse { ops: Vec::new(), children: per_op }],
            };
            let op_params: i64 = space.choices[cp]
                .ops
                .iter()
                .filter(|o| o.has_weights())
                .map(|&o| net.op_param_count(cp, o))
                .sum();
            let (used_before, used_after) =
                (used_copies(space, cp, before[cp]), used_copies(space, cp, after[cp]));
            ChoicePointCopies {
                choice_point: space.choices[cp].name.clone(),
                routed_by: route.as_ref().map(|r| space.choices[r.by].name.clone()),
                route_ops: route.map(|r| r.ops).unwrap_or_default(),
                copies: after[cp],
                copies_used: used_after,
                per_copy,
                degree_before: weighted.then(|| mean(children_per_copy(space, cp, before[cp]))),
                degree_after: weighted.then(|| mean(children_per_copy(space, cp, after[cp]))),
                params_added: (used_after as i64 - used_before as i64) * op_params,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use pwsnas_models::{Nb201Params, SpaceKind};

    fn small_net() -> (Space, Supernet) {
        let kind = SpaceKind::new(Nb201Params { channels: 4, cells_per_stage: 1, ..Default::default() });
        let full = Space::full(kind);
        let net = Supernet::new(&full, tch::Device::Cpu);
        (full, net)
    }

    #[test]
    fn copies_split_the_children_of_a_weight_by_the_rank_of_the_previous_choice() {
        let mut space = Space::full(SpaceKind::by_name("nb201").unwrap());
        let one = degree(&space, &[1; 6]);
        // Every weighted op (conv 1x1, conv 3x3) of every edge is used by 15625 / 5 children.
        assert_eq!(one.mean_children_per_weight, 3125.0);
        assert_eq!(one.weight_units, 12);
        // Two copies on edge 1<-0, routed by 3<-2 (5 ops, ranks 0..5): copy 0 gets 3 ranks, copy 1 gets 2.
        let two = degree(&space, &[2, 1, 1, 1, 1, 1]);
        assert_eq!(two.weight_units, 14);
        assert_eq!(two.max_children_per_weight, 3125.0);
        let expected = (10.0 * 3125.0 + 2.0 * 1875.0 + 2.0 * 1250.0) / 14.0;
        assert!((two.mean_children_per_weight - expected).abs() < 1e-9);
        // The rank among the *surviving* ops routes: with 3<-2 down to {none, conv 1x1} (full-list
        // indices 0 and 2, the same parity), both copies are still used, one op each.
        for op in [Op::SkipConnect, Op::NorConv3x3, Op::AvgPool3x3] {
            space.remove(5, op).unwrap();
        }
        let route = route_for(&space, 0).unwrap();
        assert_eq!(route.by, 4, "3<-1 (5 ops) now routes 1<-0, since 3<-2 has fewer");
        // All three edges into the cell output down to two ops: the nearest, 3<-2, routes.
        for cp in [3, 4] {
            for op in [Op::SkipConnect, Op::NorConv3x3, Op::AvgPool3x3] {
                space.remove(cp, op).unwrap();
            }
        }
        let route = route_for(&space, 0).unwrap();
        assert_eq!(route, Route { by: 5, ops: vec![Op::None, Op::NorConv1x1] }, "ties go to the nearest");
        assert_eq!(routed_ops(&route, 2), vec![vec![Op::None], vec![Op::NorConv1x1]]);
        assert_eq!(used_copies(&space, 0, 2), 2);
        // More copies than surviving ops: the extra ones are used by nobody and not counted.
        assert_eq!(used_copies(&space, 0, 5), 2);
        assert_eq!(degree(&space, &[5, 1, 1, 1, 1, 1]), degree(&space, &[2, 1, 1, 1, 1, 1]));
    }

    #[test]
    fn no_copy_behind_a_single_op_previous_choice_point() {
        let (full, net) = small_net();
        // 1<-0 keeps one op: edges 2<-1 and 3<-1, routed only by 1<-0, can never use a copy.
        let mut space = full.clone();
        for op in [Op::None, Op::SkipConnect, Op::NorConv1x1, Op::AvgPool3x3] {
            space.remove(0, op).unwrap();
        }
        assert!(route_for(&space, 2).is_none() && route_for(&space, 4).is_none());
        let budget = 10 * effective_params(&net, &full, &[1; 6]);
        let copies = plan_copies(&net, &space, &[1; 6], 4, budget);
        assert_eq!((copies[2], copies[4]), (1, 1), "{copies:?}");
        // Every other edge has a 5-op previous choice point: the generous budget buys copies there.
        assert!(copies.iter().enumerate().all(|(cp, &k)| cp == 2 || cp == 4 || k == 4), "{copies:?}");
        // Every granted copy is used by some child and the degree strictly decreases.
        let records = choice_point_records(&net, &space, &[1; 6], &copies);
        for (cp, r) in records.iter().enumerate() {
            assert_eq!(r.copies_used, r.copies, "{r:?}");
            assert_eq!(r.per_copy.len(), r.copies);
            assert!(r.per_copy.iter().all(|c| c.children >= 1.0), "{r:?}");
            // The copies split the children of each op between them.
            let total: f64 = r.per_copy.iter().map(|c| c.children).sum();
            assert!((total - space.size() as f64 / space.choices[cp].ops.len() as f64).abs() < 1e-9);
            if r.copies > 1 {
                assert!(r.degree_after.unwrap() < r.degree_before.unwrap(), "{r:?}");
            }
        }
        assert!(
            degree(&space, &copies).mean_children_per_weight
                < degree(&space, &[1; 6]).mean_children_per_weight
        );
    }

    #[test]
    fn planned_copies_respect_the_parameter_budget() {
        let (full, net) = small_net();
        let original = effective_params(&net, &full, &[1; 6]);
        // Nothing dropped and a budget of 1×: no spare capacity, no copies.
        assert_eq!(plan_copies(&net, &full, &[1; 6], 2, original), vec![1; 6]);
        // Drop both convs from three edges: the freed capacity pays for copies elsewhere.
        let mut shrunk = full.clone();
        for cp in 0..3 {
            shrunk.remove(cp, Op::NorConv1x1).unwrap();
            shrunk.remove(cp, Op::NorConv3x3).unwrap();
        }
        let copies = plan_copies(&net, &shrunk, &[1; 6], 2, original);
        assert!(copies.contains(&2), "{copies:?}");
        assert!(effective_params(&net, &shrunk, &copies) <= original);
        assert!(
            degree(&shrunk, &copies).mean_children_per_weight
                < degree(&shrunk, &[1; 6]).mean_children_per_weight
        );
        // A larger budget buys at least as many copies, and never more than it allows.
        let budget = original * 3 / 2;
        let more = plan_copies(&net, &full, &[1; 6], 3, budget);
        assert!(more.iter().sum::<usize>() > 6, "{more:?}");
        assert!(effective_params(&net, &full, &more) <= budget);
        // Copies already held are kept.
        assert!(plan_copies(&net, &full, &more, 3, original).iter().zip(&more).all(|(a, b)| a >= b));
    }
}
