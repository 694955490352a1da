//! `Space` and `Arch`: the plain data passed between stages.
//!
//! A [`SpaceKind`] fixes the skeleton (which space, its parameters, its choice points and their full
//! op sets; see [`def::SpaceDef`]). A [`Space`] is a kind plus, for each choice point, the ops still
//! allowed: shrinking edits it, never the kind, so every space of a run has the same choice points
//! in the same order. An [`Arch`] (a path, or a child; see [`def`]) is one op per choice point, in
//! that order.
pub mod def;
pub mod registry;

use std::any::Any;
use std::collections::HashSet;
use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use indexmap::IndexMap;
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};
use crate::op::Op;
pub use def::{ShrinkDefaults, SpaceDef, SpaceParams};

/// Which space, with its parameters: a cheap handle (cloning copies a pointer) around the space's
/// [`SpaceDef`], whose methods it offers directly (`kind.name()`, `kind.cost(&arch)`, ...). Two kinds
/// are equal when their names and parameters are.
#[derive(Clone)]
pub struct SpaceKind(Arc<dyn SpaceDef>);

impl SpaceKind {
    /// A kind with these parameters, as given (not validated).
    pub fn new(def: impl SpaceDef) -> SpaceKind {
        SpaceKind(Arc::new(def))
    }

    pub(crate) fn from_def(def: Arc<dyn SpaceDef>) -> SpaceKind {
        SpaceKind(def)
    }

    /// The default parameters of a registered space by name.
    pub fn by_name(name: &str) -> Result<SpaceKind> {
        registry::from_params(name, serde_json::Value::Object(serde_json::Map::new()))
    }

    /// Builds a registered space from its name and a JSON object of parameters (missing ones take
    /// defaults), validated.
    pub fn from_params(name: &str, params: serde_json::Value) -> Result<SpaceKind> {
        registry::from_params(name, params)
    }

    /// The names of every registered space.
    pub fn names() -> Vec<&'static str> {
        registry::names()
    }

    /// The parameters as their own type, when the kind is a space of that type.
    pub fn params<P: SpaceDef>(&self) -> Option<&P> {
        let def: &dyn Any = &*self.0;
        def.downcast_ref::<P>()
    }

    /// Sets the data-dependent parameters (input shape and classes).
    pub fn with_data(self, channels: usize, size: usize, classes: usize) -> Result<SpaceKind> {
        let kind = self.0.for_data(channels, size, classes);
        kind.validate()?;
        Ok(kind)
    }

    /// Parses an arch string and checks it against the full op sets and the topology of a child.
    pub fn parse_arch(&self, s: &str) -> Result<Arch> {
        let arch = self.read_arch(s)?;
        Space::full(self.clone()).check_child(&arch)?;
        Ok(arch)
    }
}

impl Deref for SpaceKind {
    type Target = dyn SpaceDef;

    fn deref(&self) -> &dyn SpaceDef {
        &*self.0
    }
}

impl PartialEq for SpaceKind {
    fn eq(&self, other: &SpaceKind) -> bool {
        self.name() == other.name() && self.params_json() == other.params_json()
    }
}

impl fmt::Debug for SpaceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.name(), self.params_json())
    }
}

/// One choice point and the ops it still allows.
#[derive(Clone, Debug, PartialEq)]
pub struct ChoicePoint {
    pub name: String,
    pub ops: Vec<Op>,
}

/// A (possibly shrunk) search space.
#[derive(Clone, Debug, PartialEq)]
pub struct Space {
    pub kind: SpaceKind,
    pub choices: Vec<ChoicePoint>,
}

/// A path or a child (see [`def`]): one op per choice point, in the order of the space's choice
/// points.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Arch {
    pub ops: Vec<Op>,
}

impl Space {
    /// The unshrunk space of a kind.
    pub fn full(kind: SpaceKind) -> Space {
        let choices = kind
            .choice_point_names()
            .into_iter()
            .zip(kind.full_ops())
            .map(|(name, ops)| ChoicePoint { name, ops })
            .collect();
        Space { kind, choices }
    }

    /// The space holding exactly one child: the structure of that child's stand-alone network.
    pub fn single(kind: SpaceKind, arch: &Arch) -> Space {
        let mut space = Space::full(kind);
        for (cp, op) in space.choices.iter_mut().zip(&arch.ops) {
            cp.ops = vec![*op];
        }
        space
    }

    /// Number of paths, one allowed op per choice point (saturating at `u128::MAX`): the number of
    /// children of a space whose paths are all children.
    pub fn size(&self) -> u128 {
        self.choices.iter().fold(1u128, |acc, cp| acc.saturating_mul(cp.ops.len() as u128))
    }

    pub fn log10_size(&self) -> f64 {
        self.choices.iter().map(|cp| (cp.ops.len() as f64).log10()).sum()
    }

    /// Number of paths that pick a given op at choice point `cp`.
    pub fn size_with(&self, cp: usize) -> u128 {
        self.size() / self.choices[cp].ops.len() as u128
    }

    pub fn choice_point_index(&self, name: &str) -> Option<usize> {
        self.choices.iter().position(|cp| cp.name == name)
    }

    pub fn contains(&self, arch: &Arch) -> bool {
        self.check(arch).is_ok()
    }

    /// Checks that `arch` picks an allowed op at every choice point ([`SpaceDef::allows`]).
    pub fn check(&self, arch: &Arch) -> Result<()> {
        if arch.ops.len() != self.choices.len() {
            return Err(ModelError::MalformedArch {
                arch: arch.ops.iter().map(Op::name).collect::<Vec<_>>().join(","),
                reason: format!("expected {} ops, got {}", self.choices.len(), arch.ops.len()),
            });
        }
        for (cp, op) in self.choices.iter().zip(&arch.ops) {
            if !self.kind.allows(&cp.ops, *op) {
                return Err(ModelError::OutsideSpace {
                    arch: self.kind.format_arch(arch),
                    choice_point: cp.name.clone(),
                    op: op.name(),
                    allowed: names(&cp.ops),
                });
            }
        }
        Ok(())
    }

    /// Parses an arch string and checks that it lies in this space.
    pub fn parse_arch(&self, s: &str) -> Result<Arch> {
        let arch = self.kind.parse_arch(s)?;
        self.check(&arch)?;
        Ok(arch)
    }

    pub fn format_arch(&self, arch: &Arch) -> String {
        self.kind.format_arch(arch)
    }

    /// Checks that `arch` is a stand-alone child of the space: an allowed op at every choice point
    /// and the space's topology rules ([`SpaceDef::check_child`]).
    pub fn check_child(&self, arch: &Arch) -> Result<()> {
        self.check(arch)?;
        self.kind.check_child(arch)
    }

    /// The child a gradient-based method derives from per-op strengths (see
    /// [`SpaceDef::derive_child`]).
    ///
    /// # Panics
    /// If `strengths` does not have one value per allowed op of every choice point.
    pub fn derive_child(&self, strengths: &[Vec<f64>]) -> Arch {
        assert_eq!(strengths.len(), self.choices.len(), "one strength list per choice point");
        for (cp, w) in self.choices.iter().zip(strengths) {
            assert_eq!(cp.ops.len(), w.len(), "strengths of choice point {}", cp.name);
        }
        self.kind.derive_child(self, strengths)
    }

    /// A path drawn uniformly from the space (what a single-path supernet step trains).
    pub fn sample<R: Rng>(&self, rng: &mut R) -> Arch {
        self.kind.sample_path(self, rng)
    }

    /// A path drawn uniformly among those that pick `op` at choice point `cp`.
    pub fn sample_with<R: Rng>(&self, rng: &mut R, cp: usize, op: Op) -> Arch {
        let mut arch = self.sample(rng);
        arch.ops[cp] = op;
        arch
    }

    /// A stand-alone child of the space (what the search evaluates).
    pub fn sample_child<R: Rng>(&self, rng: &mut R) -> Arch {
        self.kind.sample_child(self, rng)
    }

    /// A child of the space near `parent`, each choice point redrawn with probability `prob` (or
    /// the space's own mutation).
    pub fn mutate<R: Rng>(&self, parent: &Arch, prob: f64, rng: &mut R) -> Arch {
        self.kind.mutate(self, parent, prob, rng)
    }

    /// A child of the space mixing the children `a` and `b`.
    pub fn crossover<R: Rng>(&self, a: &Arch, b: &Arch, rng: &mut R) -> Arch {
        self.kind.crossover(self, a, b, rng)
    }

    /// Up to `n` distinct paths that pick `op` at `cp`: all of them when there are at most `n`,
    /// else `n` drawn uniformly without replacement.
    pub fn sample_distinct_with<R: Rng>(&self, rng: &mut R, cp: usize, op: Op, n: usize) -> Vec<Arch> {
        let available = self.size_with(cp);
        if available <= n as u128 {
            return self.enumerate().into_iter().filter(|a| a.ops[cp] == op).collect();
        }
        let mut seen = HashSet::new();
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            let arch = self.sample_with(rng, cp, op);
            if seen.insert(arch.clone()) {
                out.push(arch);
            }
        }
        out
    }

    /// Every path, in lexicographic order of op indices. Callers check `size()` first.
    pub fn enumerate(&self) -> Vec<Arch> {
        let mut out = vec![Arch { ops: Vec::new() }];
        for cp in &self.choices {
            out = out
                .into_iter()
                .flat_map(|a| {
                    cp.ops.iter().map(move |op| {
                        let mut ops = a.ops.clone();
                        ops.push(*op);
                        Arch { ops }
                    })
                })
                .collect();
        }
        out
    }

    /// Drops `op` from choice point `cp` and from the choice points linked to it
    /// ([`SpaceDef::linked`]); refuses to drop the last op, and changes nothing then.
    pub fn remove(&mut self, cp: usize, op: Op) -> Result<()> {
        let group: Vec<usize> = std::iter::once(cp).chain(self.kind.linked(cp)).collect();
        for &c in &group {
            let choice = &self.choices[c];
            if choice.ops.len() <= 1 {
                return Err(ModelError::InvalidSpace(format!(
                    "cannot drop the last op of choice point {}",
                    choice.name
                )));
            }
            if !choice.ops.contains(&op) {
                return Err(ModelError::InvalidSpace(format!("choice point {} has no op {op}", choice.name)));
            }
        }
        for c in group {
            self.choices[c].ops.retain(|o| *o != op);
        }
        Ok(())
    }

    /// The `space.json` form: `{"space": ..., "params": {...}, "choices": {"1<-0": [...], ...}}`.
    pub fn to_json(&self) -> serde_json::Value {
        let file = SpaceFile {
            space: self.kind.name().to_string(),
            params: self.kind.params_json(),
            choices: self.choices.iter().map(|cp| (cp.name.clone(), cp.ops.clone())).collect(),
        };
        serde_json::to_value(file).expect("space serialises")
    }

    /// Reads the `space.json` form of a registered space and checks that it fits its kind (see
    /// [`Space::with_choices`]).
    pub fn from_json(value: serde_json::Value) -> Result<Space> {
        let file: SpaceFile = serde_json::from_value(value)
            .map_err(|e| ModelError::InvalidSpace(format!("not a space file: {e}")))?;
        let kind = SpaceKind::from_params(&file.space, file.params)?;
        Space::with_choices(kind, &file.choices)
    }

    /// The space of `kind` that allows `choices` (ops by choice point name), checked against the
    /// kind: every choice point present, known, non-empty, allowing only ops of its full op set,
    /// and linked choice points allowing the same ops.
    pub fn with_choices(kind: SpaceKind, choices: &IndexMap<String, Vec<Op>>) -> Result<Space> {
        let full = Space::full(kind.clone());
        for name in choices.keys() {
            if full.choice_point_index(name).is_none() {
                return Err(ModelError::InvalidSpace(format!(
                    "unknown choice point '{name}' for {} (expected {})",
                    kind.name(),
                    kind.choice_point_names().join(", ")
                )));
            }
        }
        let given = choices;
        let mut choices = Vec::new();
        for cp in full.choices {
            let Some(ops) = given.get(&cp.name) else {
                return Err(ModelError::InvalidSpace(format!("choice point '{}' is missing", cp.name)));
            };
            if ops.is_empty() {
                return Err(ModelError::InvalidSpace(format!("choice point '{}' allows no op", cp.name)));
            }
            for (i, op) in ops.iter().enumerate() {
                if !cp.ops.contains(op) {
                    return Err(ModelError::InvalidSpace(format!(
                        "choice point '{}' does not have op '{op}' (its ops: {})",
                        cp.name,
                        names(&cp.ops)
                    )));
                }
                if ops[..i].contains(op) {
                    return Err(ModelError::InvalidSpace(format!(
                        "choice point '{}' lists '{op}' twice",
                        cp.name
                    )));
                }
            }
            choices.push(ChoicePoint { name: cp.name, ops: ops.clone() });
        }
        for (cp, choice) in choices.iter().enumerate() {
            for other in kind.linked(cp) {
                let (a, b) = (&choice.ops, &choices[other].ops);
                if a.len() != b.len() || a.iter().any(|op| !b.contains(op)) {
                    return Err(ModelError::InvalidSpace(format!(
                        "choice points '{}' and '{}' share one op list in {}, but allow [{}] and [{}]",
                        choice.name,
                        choices[other].name,
                        kind.name(),
                        names(a),
                        names(b)
                    )));
                }
            }
        }
        Ok(Space { kind, choices })
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SpaceFile {
    space: String,
    #[serde(default)]
    params: serde_json::Value,
    choices: IndexMap<String, Vec<Op>>,
}

/// `a, b, c`: the names of some ops.
fn names(ops: &[Op]) -> String {
    ops.iter().map(Op::name).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::nb201::Nb201Params;
    use rand::SeedableRng;

    fn nb201(nodes: usize) -> Space {
        Space::full(SpaceKind::new(Nb201Params { nodes, ..Nb201Params::default() }))
    }

    #[test]
    fn sizes() {
        assert_eq!(nb201(4).size(), 15625);
        assert!((nb201(4).log10_size() - 15625f64.log10()).abs() < 1e-9);
        assert_eq!(nb201(3).size(), 125);
        assert_eq!(nb201(3).enumerate().len(), 125);
        let mobile = Space::full(SpaceKind::by_name("mobile").unwrap());
        assert_eq!(mobile.size(), 6u128.pow(5) * 7u128.pow(6));
    }

    #[test]
    fn json_round_trip_and_validation() {
        let mut space = nb201(4);
        space.remove(0, Op::None).unwrap();
        let json = space.to_json();
        assert_eq!(json["choices"]["1<-0"].as_array().unwrap().len(), 4);
        assert_eq!(Space::from_json(json.clone()).unwrap(), space);

        let mut missing = json.clone();
        missing["choices"].as_object_mut().unwrap().remove("3<-2");
        assert!(Space::from_json(missing).unwrap_err().to_string().contains("3<-2"));
        let mut unknown_op = json.clone();
        unknown_op["choices"]["2<-1"] = serde_json::json!(["mb_k3_e3"]);
        assert!(Space::from_json(unknown_op).unwrap_err().to_string().contains("2<-1"));
        let mut empty = json.clone();
        empty["choices"]["2<-1"] = serde_json::json!([]);
        assert!(Space::from_json(empty).is_err());
        let mut extra = json;
        extra["choices"]["4<-0"] = serde_json::json!(["none"]);
        assert!(Space::from_json(extra).unwrap_err().to_string().contains("4<-0"));
    }

    #[test]
    fn sampling_stays_inside_and_fixes_the_op() {
        let mut space = nb201(4);
        space.remove(3, Op::AvgPool3x3).unwrap();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        for _ in 0..100 {
            assert!(space.contains(&space.sample(&mut rng)));
        }
        let children = space.sample_distinct_with(&mut rng, 2, Op::SkipConnect, 50);
        assert_eq!(children.len(), 50);
        assert!(children.iter().all(|a| a.ops[2] == Op::SkipConnect && space.contains(a)));
        let unique: HashSet<_> = children.iter().collect();
        assert_eq!(unique.len(), 50);
        // Small spaces are enumerated.
        let small = nb201(3);
        assert_eq!(small.sample_distinct_with(&mut rng, 0, Op::None, 100).len(), 25);
    }

    /// Shrunk spaces of both registered spaces, with their ops left at every choice point.
    fn shrunk_spaces() -> Vec<Space> {
        let mut nb = nb201(4);
        nb.remove(0, Op::NorConv3x3).unwrap();
        nb.remove(0, Op::None).unwrap();
        nb.remove(5, Op::SkipConnect).unwrap();
        let mut mobile = Space::full(SpaceKind::by_name("mobile").unwrap());
        mobile.remove(1, Op::Identity).unwrap();
        mobile.remove(2, Op::MbConv { kernel: 7, expand: 6 }).unwrap();
        vec![nb, mobile]
    }

    /// Every parent, its mutations and its crossover with its mirror in `parents` are valid
    /// children; mutation with probability 0 changes nothing; a crossover child takes each op from a
    /// parent. Shared by the tests of every space's hooks.
    pub(crate) fn check_hooks_on(space: &Space, parents: &[Arch], rng: &mut impl rand::Rng) {
        for (a, b) in parents.iter().zip(parents.iter().rev()) {
            space.check_child(a).unwrap();
            for prob in [0.1, 0.5, 1.0] {
                space.check_child(&space.mutate(a, prob, rng)).unwrap();
            }
            assert_eq!(&space.mutate(a, 0.0, rng), a);
            let child = space.crossover(a, b, rng);
            space.check_child(&child).unwrap();
            assert!(child.ops.iter().enumerate().all(|(cp, op)| *op == a.ops[cp] || *op == b.ops[cp]));
        }
    }

    #[test]
    fn sampling_mutation_and_crossover_keep_children_inside_the_space() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(4);
        for space in shrunk_spaces() {
            let parents: Vec<Arch> = (0..20).map(|_| space.sample_child(&mut rng)).collect();
            check_hooks_on(&space, &parents, &mut rng);
            // Mutation with probability 1 redraws every choice point: over many draws, every
            // allowed op shows up at every choice point.
            let drawn: Vec<Arch> = (0..200).map(|_| space.mutate(&parents[0], 1.0, &mut rng)).collect();
            for (cp, choice) in space.choices.iter().enumerate() {
                assert!(
                    choice.ops.iter().all(|op| drawn.iter().any(|a| a.ops[cp] == *op)),
                    "{}",
                    choice.name
                );
            }
        }
    }

    #[test]
    fn cannot_drop_the_last_op_or_leave_the_space() {
        let mut space = nb201(3);
        for op in [Op::None, Op::SkipConnect, Op::NorConv1x1, Op::NorConv3x3] {
            space.remove(0, op).unwrap();
        }
        assert!(space.remove(0, Op::AvgPool3x3).is_err());
        let arch = space.kind.parse_arch("|none~0|+|none~0|none~1|").unwrap();
        let err = space.check(&arch).unwrap_err().to_string();
        assert!(err.contains("1<-0") && err.contains("avg_pool_3x3"), "{err}");
    }
}
