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
//! The pair count is O(n²): the study ranks at most a few thousand children.

/// Kendall's τ-b of `x` against `y` (same length).
pub fn kendall_tau_b(x: &[f64], y: &[f64]) -> Option<f64> {
    assert_eq!(x.len(), y.len(), "kendall_tau_b needs paired values");
    let n = x.len();
    let (mut concordant, mut discordant, mut tied_x, mut tied_y) = (0u64, 0u64, 0u64, 0u64);
    for i in 0..n {
        for j in i + 1..n {
            let dx = x[i].total_cmp(&x[j]);
            let dy = y[i].total_cmp(&y[j]);
            use std::cmp::Ordering::Equal;
            match (dx, dy) {
                (Equal, Equal) => {
                    tied_x += 1;
                    tied_y += 1;
                }
                (Equal, _) => tied_x += 1,
                (_, Equal) => tied_y += 1,
                (a, b) if a == b => concordant += 1,
                _ => discordant += 1,
            }
        }
    }
    let pairs = (n * n.saturating_sub(1) / 2) as f64;
    let denom = ((pairs - tied_x as f64) * (pairs - tied_y as f64)).sqrt();
    (denom > 0.0).then(|| (concordant as f64 - discordant as f64) / denom)
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
