//! Constraints a child must meet — FLOPs, parameters, predicted latency — and what the space can
//! reach under them.
//!
//! A child that meets every constraint is *admissible*. The constraints act at three places:
//! before any training the space must hold admissible children ([`Constraints::require_admissible`],
//! which refuses with the smallest FLOPs, parameters and latency the space reaches); shrinking
//! scores operator candidates on admissible children only and never leaves the space without one
//! (`crate::shrink`); the search evaluates admissible children only, and every search method checks
//! the architecture it derives with [`Constraints::check_derived`].
//!
//! Small spaces (at most [`EXACT_LIMIT`] children) are enumerated, so counts and minima are exact.
//! Larger ones are estimated: the admissible fraction from [`SAMPLES`] uniform children, minima
//! by a coordinate search from a few random starts (exact when the cost is a sum over choice points,
//! as FLOPs and parameters are; a latency prediction that depends on several choices may be missed).
use std::fmt::Write;

use anyhow::{bail, Result};
use pwsnas_models::{Arch, Op, Space};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::latency::table::Machine;
use crate::latency::Predictor;

/// Spaces with at most this many children are enumerated.
pub const EXACT_LIMIT: u128 = 100_000;
/// Uniform children drawn to estimate the admissible fraction of a larger space.
pub const SAMPLES: usize = 4096;
/// Random starts of the coordinate search on large spaces.
const STARTS: usize = 8;

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Constraints {
    pub max_flops: Option<f64>,
    pub max_params: Option<f64>,
    pub max_latency_ms: Option<f64>,
    /// The latency table predictions come from (needed by `max_latency_ms`, recorded otherwise when available).
    #[serde(skip)]
    pub predictor: Option<Predictor>,
    /// Which table that is (`search.json` records it).
    #[serde(default)]
    pub latency_table: Option<TableRef>,
}

/// Where a latency table was read from and what it was measured on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TableRef {
    pub path: String,
    pub machine: Machine,
    /// Seconds since the Unix epoch.
    pub built_at: u64,
}

/// What the constraints look at.
pub struct Facts {
    pub flops: f64,
    pub params: f64,
    pub latency_ms: Option<f64>,
}

/// How many children of a space are admissible.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Admissible {
    /// The count (exact) or `fraction × space size` (estimated).
    pub children: f64,
    pub fraction: f64,
    /// Counted over every child, or estimated from `sampled` uniform children.
    pub exact: bool,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub sampled: Option<usize>,
}

impl Admissible {
    /// `"1,234 of 15,625 children (7.90 %, exact)"` or `"about 3.1e5 of 9.1e8 children (0.03 % of 4096 sampled)"`.
    pub fn describe(&self, space_size: f64) -> String {
        if self.exact {
            format!("{} of {} children ({:.2} %, counted)", self.children, space_size, self.fraction * 100.0)
        } else {
            format!(
                "about {:.3e} of {:.3e} children ({:.2} % of {} sampled)",
                self.children,
                space_size,
                self.fraction * 100.0,
                self.sampled.unwrap_or(0)
            )
        }
    }
}

/// The smallest cost the space reaches, each minimised on its own, with a child that reaches it.
#[derive(Clone, Debug, PartialEq)]
pub struct Reach {
    pub flops: (f64, Arch),
    pub params: (f64, Arch),
    pub latency_ms: Option<(f64, Arch)>,
    /// Whether every child was looked at (else: the smallest a coordinate search found).
    pub exact: bool,
}

impl Constraints {
    /// Whether any constraint is set.
    pub fn is_active(&self) -> bool {
        self.max_flops.is_some() || self.max_params.is_some() || self.max_latency_ms.is_some()
    }

    pub fn facts(&self, space: &Space, arch: &Arch) -> Facts {
        let cost = space.kind.cost(arch);
        Facts {
            flops: cost.flops() as f64,
            params: cost.params() as f64,
            latency_ms: self.predictor.as_ref().map(|p| p.predict_ms(arch)),
        }
    }

    /// The largest `value / cap` over the constraints that are set (0 when none is): at most 1
    /// exactly when the child is admissible. Minimising it finds the child deepest inside the budget.
    pub fn excess(&self, space: &Space, arch: &Arch) -> f64 {
        if !self.is_active() {
            return 0.0;
        }
        let f = self.facts(space, arch);
        let mut worst: f64 = 0.0;
        for (max, value) in [
            (self.max_flops, Some(f.flops)),
            (self.max_params, Some(f.params)),
            (self.max_latency_ms, f.latency_ms),
        ] {
            if let (Some(max), Some(v)) = (max, value) {
                worst = worst.max(v / max);
            }
        }
        worst
    }

    /// Whether the child meets every constraint.
    pub fn admits(&self, space: &Space, arch: &Arch) -> bool {
        !self.is_active() || self.excess(space, arch) <= 1.0
    }

    /// What the child breaks, one phrase per constraint.
    fn violations(&self, space: &Space, arch: &Arch) -> Vec<String> {
        let f = self.facts(space, arch);
        let mut out = Vec::new();
        if let Some(max) = self.max_flops.filter(|&m| f.flops > m) {
            out.push(format!("{} multiply-adds > --max-flops {max}", f.flops));
        }
        if let Some(max) = self.max_params.filter(|&m| f.params > m) {
            out.push(format!("{} parameters > --max-params {max}", f.params));
        }
        if let (Some(max), Some(ms)) = (self.max_latency_ms, f.latency_ms) {
            if ms > max {
                out.push(format!("predicted {ms:.4} ms > --max-latency-ms {max}"));
            }
        }
        out
    }

    /// The check of the architecture a search method derives (evolution's best child; the hook for
    /// methods that derive an architecture from learned parameters, such as ProxylessNAS's binary
    /// gates or DARTS's genotype, which may not meet the budget they were trained for): Ok when it
    /// meets every constraint, else an error naming the method, the architecture and what it breaks.
    pub fn check_derived(&self, method: &str, space: &Space, arch: &Arch) -> Result<()> {
        let broken = self.violations(space, arch);
        if !broken.is_empty() {
            bail!(
                "the architecture {method} derived, {}, breaks the constraints: {}; loosen them, or give {method} a tighter target (e.g. a larger latency loss weight)",
                space.format_arch(arch),
                broken.join(", ")
            );
        }
        Ok(())
    }

    /// `--max-flops 3000000, --max-latency-ms 0.1`.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        for (flag, v) in [
            ("--max-flops", self.max_flops),
            ("--max-params", self.max_params),
            ("--max-latency-ms", self.max_latency_ms),
        ] {
            if let Some(v) = v {
                parts.push(format!("{flag} {v}"));
            }
        }
        parts.join(", ")
    }

    /// How many children of `space` are admissible: counted on small spaces, estimated from uniform
    /// samples (seeded by `seed`) on large ones.
    pub fn admissible(&self, space: &Space, seed: u64) -> Admissible {
        let size = space.size();
        if !self.is_active() {
            return Admissible { children: size as f64, fraction: 1.0, exact: true, sampled: None };
        }
        if size <= EXACT_LIMIT {
            let n = space.enumerate().iter().filter(|a| self.admits(space, a)).count();
            return Admissible {
                children: n as f64,
                fraction: n as f64 / size as f64,
                exact: true,
                sampled: None,
            };
        }
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let hits = (0..SAMPLES).filter(|_| self.admits(space, &space.sample(&mut rng))).count();
        let fraction = hits as f64 / SAMPLES as f64;
        Admissible { children: fraction * size as f64, fraction, exact: false, sampled: Some(SAMPLES) }
    }

    /// The child of `space` (with op `fixed.1` at choice point `fixed.0`, when given) deepest inside
    /// the budget (smallest [`Constraints::excess`]), if it is admissible.
    pub fn cheapest_admissible(&self, space: &Space, fixed: Option<(usize, Op)>, seed: u64) -> Option<Arch> {
        let (arch, excess) = minimize(space, fixed, seed, |a| self.excess(space, a));
        (excess <= 1.0).then_some(arch)
    }

    /// The smallest FLOPs, parameters and predicted latency of `space`.
    pub fn reach(&self, space: &Space, seed: u64) -> Reach {
        let flops = minimize(space, None, seed, |a| space.kind.cost(a).flops() as f64);
        let params = minimize(space, None, seed, |a| space.kind.cost(a).params() as f64);
        let latency_ms = self.predictor.as_ref().map(|p| {
            let (arch, ms) = minimize(space, None, seed, |a| p.predict_ms(a));
            (ms, arch)
        });
        Reach {
            flops: (flops.1, flops.0),
            params: (params.1, params.0),
            latency_ms,
            exact: space.size() <= EXACT_LIMIT,
        }
    }

    /// Refuses a space without admissible children, naming the smallest FLOPs, parameters and
    /// latency it reaches; else says how many of its children are admissible.
    pub fn require_admissible(&self, space: &Space, seed: u64) -> Result<Admissible> {
        let found = self.admissible(space, seed);
        if !self.is_active() || found.children > 0.0 || self.cheapest_admissible(space, None, seed).is_some()
        {
            return Ok(found);
        }
        let reach = self.reach(space, seed);
        let mut msg = format!(
            "no child of the {} space ({} children{}) meets {}: the smallest ",
            space.kind.name(),
            space.size(),
            if found.exact { ", every one checked" } else { ", sampled and searched" },
            self.describe()
        );
        let arch = |a: &Arch| space.format_arch(a);
        let _ =
            write!(msg, "FLOPs it reaches are {} multiply-adds ({})", reach.flops.0, arch(&reach.flops.1));
        let _ = write!(msg, ", the fewest parameters {} ({})", reach.params.0, arch(&reach.params.1));
        if let Some((ms, a)) = &reach.latency_ms {
            let _ = write!(msg, ", the lowest predicted latency {ms:.4} ms ({})", arch(a));
        }
        let _ = write!(
            msg,
            "{}; loosen the constraints or choose a smaller space (--channels, --cells, --width)",
            if reach.exact { "" } else { " (the smallest a coordinate search found)" }
        );
        bail!(msg)
    }
}

/// The child of `space` (with `fixed` applied) with the smallest `f`, and that value: every child of
/// a small space, else a coordinate search (one choice point at a time, every op, until no change)
/// from [`STARTS`] random children. Ties keep the first child found.
pub fn minimize(
    space: &Space,
    fixed: Option<(usize, Op)>,
    seed: u64,
    f: impl Fn(&Arch) -> f64,
) -> (Arch, f64) {
    let size = fixed.map_or(space.size(), |(cp, _)| space.size_with(cp));
    let keeps = |a: &Arch| fixed.is_none_or(|(cp, op)| a.ops[cp] == op);
    let mut best: Option<(Arch, f64)> = None;
    let offer = |a: Arch, v: f64, best: &mut Option<(Arch, f64)>| {
        if best.as_ref().is_none_or(|b| v < b.1) {
            *best = Some((a, v));
        }
    };
    if size <= EXACT_LIMIT {
        for a in space.enumerate().into_iter().filter(keeps) {
            let v = f(&a);
            offer(a, v, &mut best);
        }
        return best.expect("a space has at least one child");
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    for _ in 0..STARTS {
        let mut a = match fixed {
            Some((cp, op)) => space.sample_with(&mut rng, cp, op),
            None => space.sample(&mut rng),
        };
        let mut v = f(&a);
        loop {
            let mut improved = false;
            for cp in 0..space.choices.len() {
                if fixed.is_some_and(|(c, _)| c == cp) {
                    continue;
                }
                for &op in &space.choices[cp].ops {
                    if op == a.ops[cp] {
                        continue;
                    }
                    let mut t = a.clone();
                    t.ops[cp] = op;
                    let tv = f(&t);
                    if tv < v {
                        (a, v, improved) = (t, tv, true);
                    }
                }
            }
            if !improved {
                break;
            }
        }
        offer(a, v, &mut best);
    }
    best.expect("at least one start")
}

#[cfg(test)]
mod tests {
    use super::*;
    use pwsnas_models::{MobileParams, Nb201Params, SpaceKind};

    fn nb201() -> Space {
        Space::full(SpaceKind::new(Nb201Params { channels: 4, cells_per_stage: 1, ..Default::default() }))
    }

    #[test]
    fn counts_and_minima_on_a_small_space_are_exact() {
        let space = nb201();
        let flops: Vec<f64> = space.enumerate().iter().map(|a| space.kind.cost(a).flops() as f64).collect();
        let min = flops.iter().cloned().fold(f64::INFINITY, f64::min);
        let cap = min * 1.5;
        let c = Constraints { max_flops: Some(cap), ..Default::default() };
        let found = c.admissible(&space, 0);
        assert!(found.exact);
        assert_eq!(found.children, flops.iter().filter(|&&f| f <= cap).count() as f64);
        assert!(found.children > 0.0 && found.fraction < 1.0);
        assert_eq!(c.reach(&space, 0).flops.0, min);
        let cheapest = c.cheapest_admissible(&space, Some((0, Op::NorConv3x3)), 0);
        assert!(cheapest.as_ref().is_none_or(|a| a.ops[0] == Op::NorConv3x3 && c.admits(&space, a)));
        assert!(c.require_admissible(&space, 0).is_ok());

        let none = Constraints { max_flops: Some(min - 1.0), ..Default::default() };
        assert_eq!(none.admissible(&space, 0).children, 0.0);
        let err = none.require_admissible(&space, 0).unwrap_err().to_string();
        assert!(err.contains(&format!("FLOPs it reaches are {min} multiply-adds")), "{err}");
        assert!(err.contains("every one checked") && err.contains("--max-flops"), "{err}");
    }

    #[test]
    fn large_spaces_are_estimated_and_searched() {
        let space = Space::full(SpaceKind::new(MobileParams::default()));
        assert!(space.size() > EXACT_LIMIT);
        // FLOPs add up per layer, so the coordinate search finds the exact minimum: every layer's cheapest op.
        let cheapest = Arch {
            ops: space
                .choices
                .iter()
                .enumerate()
                .map(|(cp, c)| {
                    *c.ops
                        .iter()
                        .min_by_key(|&&op| {
                            let mut a = Arch { ops: space.choices.iter().map(|c| c.ops[0]).collect() };
                            a.ops[cp] = op;
                            space.kind.cost(&a).flops()
                        })
                        .unwrap()
                })
                .collect(),
        };
        let min = space.kind.cost(&cheapest).flops() as f64;
        let c = Constraints { max_flops: Some(min * 1.2), ..Default::default() };
        assert_eq!(c.reach(&space, 1).flops.0, min);
        let found = c.admissible(&space, 1);
        assert!(!found.exact && found.sampled == Some(SAMPLES));
        assert!(c.require_admissible(&space, 1).is_ok(), "the cheapest child is admissible");
        let err = Constraints { max_flops: Some(min * 0.99), ..Default::default() }
            .require_admissible(&space, 1)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("sampled and searched") && err.contains(&format!("{min} multiply-adds")),
            "{err}"
        );
    }

    #[test]
    fn a_derived_architecture_that_breaks_a_constraint_is_named() {
        let space = nb201();
        let arch = space.kind.parse_arch("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|").unwrap();
        let c = Constraints { max_params: Some(10.0), ..Default::default() };
        let err = c.check_derived("DARTS", &space, &arch).unwrap_err().to_string();
        assert!(
            err.contains("DARTS derived")
                && err.contains("--max-params 10")
                && err.contains("nor_conv_3x3~2"),
            "{err}"
        );
        assert!(Constraints::default().check_derived("DARTS", &space, &arch).is_ok());
    }
}
