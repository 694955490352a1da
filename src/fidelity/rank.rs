//! Rank statistics of the ranking study: Kendall's τ-b, Spearman's ρ and top-k survival.
//!
//! τ-b, not τ-a, because the metrics tie: two children with the same operator weights have the same
//! angle (a `none` on every path gives θ = 0 for all of them), and stand-alone accuracies tie at the
//! precision of a test split. τ-b = (C − D) / sqrt((n0 − n1)(n0 − n2)) with C/D the concordant and
//! discordant pairs, n0 = n(n−1)/2 and n1, n2 the pairs tied in x and in y (Kendall, "The treatment
//! of ties in ranking problems", Biometrika 1945). It is the statistic `scipy.stats.kendalltau`
//! computes by default, so figures can be checked there. ρ is Pearson's correlation of the average
//! ranks (ties share the mean of their positions). Both are `None` when undefined: fewer than two
//! items, or one side constant.
//!
//! Both are O(n log n): the study ranks up to every child of NAS-Bench-201 (15,625).

/// Kendall's τ-b of `x` against `y` (same length), in O(n log n) by Knight's method (Knight, "A
/// computer method for calculating Kendall's tau with ungrouped data", JASA 1966): sort the pairs by
/// x then y; the discordant pairs are the inversions of the y sequence left (counted by a merge
/// sort); the tied pairs come from runs of equal values. C − D = n0 − n1 − n2 + n3 − 2D, with n3
/// the pairs tied on both sides. All 15,625 NAS-Bench-201 children are 122 million pairs.
pub fn kendall_tau_b(x: &[f64], y: &[f64]) -> Option<f64> {
    assert_eq!(x.len(), y.len(), "kendall_tau_b needs paired values");
    let n = x.len();
    let mut pairs: Vec<(f64, f64)> = x.iter().copied().zip(y.iter().copied()).collect();
    pairs.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
    let tied = |same: &dyn Fn(usize) -> bool| -> u64 {
        // Pairs within runs where `same(i)` says item i equals item i − 1.
        let (mut total, mut run) = (0u64, 1u64);
        for i in 1..=n {
            if i < n && same(i) {
                run += 1;
            } else {
                total += run * (run - 1) / 2;
                run = 1;
            }
        }
        total
    };
    let tied_x = tied(&|i| pairs[i].0.total_cmp(&pairs[i - 1].0).is_eq());
    let tied_xy = tied(&|i| {
        pairs[i].0.total_cmp(&pairs[i - 1].0).is_eq() && pairs[i].1.total_cmp(&pairs[i - 1].1).is_eq()
    });
    let mut ys: Vec<f64> = pairs.iter().map(|p| p.1).collect();
    let discordant = inversions(&mut ys);
    // `ys` is sorted now.
    let tied_y = tied(&|i| ys[i].total_cmp(&ys[i - 1]).is_eq());
    let n0 = (n as u64) * (n as u64).saturating_sub(1) / 2;
    let numerator = n0 as f64 - tied_x as f64 - tied_y as f64 + tied_xy as f64 - 2.0 * discordant as f64;
    let denom = ((n0 - tied_x) as f64 * (n0 - tied_y) as f64).sqrt();
    (denom > 0.0).then(|| numerator / denom)
}

/// Sorts `v` and returns the number of pairs `i < j` with `v[i] > v[j]` (strictly), by merge sort.
fn inversions(v: &mut [f64]) -> u64 {
    let n = v.len();
    if n < 2 {
        return 0;
    }
    let mut count = 0u64;
    let mut buf = v.to_vec();
    let mut width = 1;
    // Bottom-up: merge runs of `width` from `v` into `buf`, then swap roles.
    let (mut src, mut dst): (&mut [f64], &mut [f64]) = (v, &mut buf);
    let mut in_buf = false;
    while width < n {
        let mut start = 0;
        while start < n {
            let mid = (start + width).min(n);
            let end = (start + 2 * width).min(n);
            let (mut i, mut j, mut k) = (start, mid, start);
            while i < mid && j < end {
                if src[j].total_cmp(&src[i]).is_lt() {
                    count += (mid - i) as u64;
                    dst[k] = src[j];
                    j += 1;
                } else {
                    dst[k] = src[i];
                    i += 1;
                }
                k += 1;
            }
            dst[k..k + (mid - i)].copy_from_slice(&src[i..mid]);
            k += mid - i;
            dst[k..k + (end - j)].copy_from_slice(&src[j..end]);
            start = end;
        }
        std::mem::swap(&mut src, &mut dst);
        in_buf = !in_buf;
        width *= 2;
    }
    if in_buf {
        dst.copy_from_slice(src);
    }
    count
}

/// Average ranks (1-based; tied values share the mean of their positions).
pub fn average_ranks(v: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..v.len()).collect();
    order.sort_by(|&a, &b| v[a].total_cmp(&v[b]));
    let mut ranks = vec![0.0; v.len()];
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && v[order[j + 1]].total_cmp(&v[order[i]]).is_eq() {
            j += 1;
        }
        let mean = (i + j) as f64 / 2.0 + 1.0;
        for &k in &order[i..=j] {
            ranks[k] = mean;
        }
        i = j + 1;
    }
    ranks
}

/// Spearman's ρ: Pearson's correlation of the average ranks of `x` and `y`.
pub fn spearman_rho(x: &[f64], y: &[f64]) -> Option<f64> {
    assert_eq!(x.len(), y.len(), "spearman_rho needs paired values");
    if x.len() < 2 {
        return None;
    }
    let (rx, ry) = (average_ranks(x), average_ranks(y));
    let n = x.len() as f64;
    let (mx, my) = (rx.iter().sum::<f64>() / n, ry.iter().sum::<f64>() / n);
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in rx.iter().zip(&ry) {
        sxy += (a - mx) * (b - my);
        sxx += (a - mx) * (a - mx);
        syy += (b - my) * (b - my);
    }
    let denom = (sxx * syy).sqrt();
    (denom > 0.0).then(|| sxy / denom)
}

/// The indices of the `m` best items by `truth` (highest first; ties by index).
pub fn best(truth: &[f64], m: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..truth.len()).collect();
    order.sort_by(|&a, &b| truth[b].total_cmp(&truth[a]).then(a.cmp(&b)));
    order.truncate(m);
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: Option<f64>, b: f64) -> bool {
        a.is_some_and(|a| (a - b).abs() < 1e-12)
    }

    #[test]
    fn tau_b_matches_a_hand_computed_case_with_ties() {
        // x = [1, 2, 2, 3], y = [1, 3, 2, 2]. The six pairs:
        // (0,1) C, (0,2) C, (0,3) C, (1,2) tied in x, (1,3) D, (2,3) tied in y.
        // C = 3, D = 1, n0 = 6, n1 = 1, n2 = 1: τ-b = 2 / sqrt(5 · 5) = 0.4.
        let x = [1.0, 2.0, 2.0, 3.0];
        let y = [1.0, 3.0, 2.0, 2.0];
        assert!(close(kendall_tau_b(&x, &y), 0.4), "{:?}", kendall_tau_b(&x, &y));
        // A pair tied on both sides counts in n1 and n2: x = [1, 1, 2], y = [5, 5, 6]:
        // C = 2, D = 0, n0 = 3, n1 = n2 = 1 → 2 / 2 = 1.
        assert!(close(kendall_tau_b(&[1.0, 1.0, 2.0], &[5.0, 5.0, 6.0]), 1.0));
        // Reversed order without ties: −1; a constant side: undefined.
        assert!(close(kendall_tau_b(&[1.0, 2.0, 3.0], &[3.0, 2.0, 1.0]), -1.0));
        assert_eq!(kendall_tau_b(&[1.0, 1.0, 1.0], &[1.0, 2.0, 3.0]), None);
        assert_eq!(kendall_tau_b(&[1.0], &[2.0]), None);
    }

    /// The definition, pair by pair: the oracle of the fast τ-b.
    fn tau_b_by_pairs(x: &[f64], y: &[f64]) -> Option<f64> {
        let n = x.len();
        let (mut c, mut d, mut tx, mut ty) = (0i64, 0i64, 0i64, 0i64);
        for i in 0..n {
            for j in i + 1..n {
                let (dx, dy) = (x[i].total_cmp(&x[j]), y[i].total_cmp(&y[j]));
                if dx.is_eq() {
                    tx += 1;
                }
                if dy.is_eq() {
                    ty += 1;
                }
                if !dx.is_eq() && !dy.is_eq() {
                    if dx == dy {
                        c += 1;
                    } else {
                        d += 1;
                    }
                }
            }
        }
        let n0 = (n * n.saturating_sub(1) / 2) as i64;
        let denom = (((n0 - tx) * (n0 - ty)) as f64).sqrt();
        (denom > 0.0).then(|| (c - d) as f64 / denom)
    }

    #[test]
    fn the_fast_tau_b_agrees_with_the_pairwise_definition_on_tied_random_data() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        for n in [0, 1, 2, 3, 7, 64, 301] {
            for levels in [2, 5, 1000] {
                let x: Vec<f64> = (0..n).map(|_| rng.random_range(0..levels) as f64).collect();
                let y: Vec<f64> = x.iter().map(|v| v + rng.random_range(0..levels) as f64 * 0.7).collect();
                let (fast, slow) = (kendall_tau_b(&x, &y), tau_b_by_pairs(&x, &y));
                match (fast, slow) {
                    (Some(a), Some(b)) => {
                        assert!((a - b).abs() < 1e-12, "n {n}, levels {levels}: {a} vs {b}")
                    }
                    (a, b) => assert_eq!(a, b, "n {n}, levels {levels}"),
                }
            }
        }
        let mut v = vec![3.0, 1.0, 2.0, 2.0, 0.0];
        // 3 > 1, 2, 2, 0; 1 > 0; 2 > 0 twice.
        assert_eq!(inversions(&mut v), 7);
        assert_eq!(v, [0.0, 1.0, 2.0, 2.0, 3.0]);
    }

    #[test]
    fn spearman_uses_average_ranks() {
        assert_eq!(average_ranks(&[10.0, 20.0, 20.0, 5.0]), vec![2.0, 3.5, 3.5, 1.0]);
        // x ranks [1, 2.5, 2.5, 4], y ranks [1, 4, 2.5, 2.5]: deviations (−1.5, 0, 0, 1.5) and
        // (−1.5, 1.5, 0, 0): Σxy = 2.25, Σx² = Σy² = 4.5 → ρ = 0.5.
        let x = [1.0, 2.0, 2.0, 3.0];
        let y = [1.0, 3.0, 2.0, 2.0];
        assert!(close(spearman_rho(&x, &y), 0.5), "{:?}", spearman_rho(&x, &y));
        assert!(close(spearman_rho(&[1.0, 2.0, 3.0], &[1.0, 4.0, 9.0]), 1.0));
        assert_eq!(spearman_rho(&[2.0, 2.0], &[1.0, 3.0]), None);
    }

    #[test]
    fn best_takes_the_highest_truths_first() {
        assert_eq!(best(&[0.5, 0.9, 0.1, 0.9], 3), vec![1, 3, 0]);
        assert_eq!(best(&[0.5], 3), vec![0]);
    }
}
