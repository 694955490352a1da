//! `Space` and `Arch`: the plain data passed between stages.
//!
//! A [`SpaceKind`] fixes the skeleton (which space, its parameters, its choice points and their full
//! op sets). A [`Space`] is a kind plus, for each choice point, the ops still allowed: shrinking edits
//! it, never the kind, so every space of a run has the same choice points in the same order. An
//! [`Arch`] (a child) is one op per choice point, in that order.
use std::collections::HashSet;

use indexmap::IndexMap;
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::cost::Cost;
use crate::error::{ModelError, Result};
use crate::mobile::MobileParams;
use crate::nb201::Nb201Params;
use crate::op::Op;

/// Which space, with its parameters.
#[derive(Clone, Debug, PartialEq)]
pub enum SpaceKind {
    Nb201(Nb201Params),
    Mobile(MobileParams),
}

impl SpaceKind {
    /// The default parameters of a space by name.
    pub fn by_name(name: &str) -> Result<SpaceKind> {
        match name {
            "nb201" => Ok(SpaceKind::Nb201(Nb201Params::default())),
            "mobile" => Ok(SpaceKind::Mobile(MobileParams::default())),
            other => Err(ModelError::UnknownSpace(other.to_string())),
        }
    }

    /// Builds a kind from its name and a JSON object of parameters (missing ones take defaults).
    pub fn from_params(name: &str, params: serde_json::Value) -> Result<SpaceKind> {
        let invalid = |e: serde_json::Error| ModelError::InvalidParam {
            space: name.to_string(),
            field: "params".into(),
            reason: e.to_string(),
        };
        let kind = match name {
            "nb201" => SpaceKind::Nb201(serde_json::from_value(params).map_err(invalid)?),
            "mobile" => SpaceKind::Mobile(serde_json::from_value(params).map_err(invalid)?),
            other => return Err(ModelError::UnknownSpace(other.to_string())),
        };
        kind.validate()?;
        Ok(kind)
    }

    pub fn validate(&self) -> Result<()> {
        match self {
            SpaceKind::Nb201(p) => p.validate(),
            SpaceKind::Mobile(p) => p.validate(),
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            SpaceKind::Nb201(_) => "nb201",
            SpaceKind::Mobile(_) => "mobile",
        }
    }

    pub fn params_json(&self) -> serde_json::Value {
        match self {
            SpaceKind::Nb201(p) => serde_json::to_value(p),
            SpaceKind::Mobile(p) => serde_json::to_value(p),
        }
        .expect("space parameters serialise")
    }

    pub fn choice_point_names(&self) -> Vec<String> {
        match self {
            SpaceKind::Nb201(p) => p.choice_point_names(),
            SpaceKind::Mobile(p) => p.choice_point_names(),
        }
    }

    /// The full op set of every choice point.
    pub fn full_ops(&self) -> Vec<Vec<Op>> {
        match self {
            SpaceKind::Nb201(p) => vec![p.ops.clone(); p.edges().len()],
            SpaceKind::Mobile(p) => p.layer_ops(),
        }
    }

    /// The choice points whose op may pick the weight copy of `cp` (strategy 2), in order of preference.
    pub fn previous_choices(&self, cp: usize) -> Vec<usize> {
        match self {
            SpaceKind::Nb201(p) => p.previous_choices(cp),
            SpaceKind::Mobile(p) => p.previous_choices(cp),
        }
    }

    pub fn classes(&self) -> usize {
        match self {
            SpaceKind::Nb201(p) => p.classes,
            SpaceKind::Mobile(p) => p.classes,
        }
    }

    /// `[channels, height, width]` of one input image.
    pub fn input_shape(&self) -> [usize; 3] {
        let (c, s) = match self {
            SpaceKind::Nb201(p) => (p.input_channels, p.input_size),
            SpaceKind::Mobile(p) => (p.input_channels, p.input_size),
        };
        [c, s, s]
    }

    /// Sets the data-dependent parameters (input shape and classes).
    pub fn with_data(mut self, channels: usize, size: usize, classes: usize) -> Result<SpaceKind> {
        match &mut self {
            SpaceKind::Nb201(p) => (p.input_channels, p.input_size, p.classes) = (channels, size, classes),
            SpaceKind::Mobile(p) => (p.input_channels, p.input_size, p.classes) = (channels, size, classes),
        }
        self.validate()?;
        Ok(self)
    }

    pub fn format_arch(&self, arch: &Arch) -> String {
        match self {
            SpaceKind::Nb201(p) => p.format_arch(&arch.ops),
            SpaceKind::Mobile(p) => p.format_arch(&arch.ops),
        }
    }

    /// Parses an arch string and checks it against the full op sets.
    pub fn parse_arch(&self, s: &str) -> Result<Arch> {
        let ops = match self {
            SpaceKind::Nb201(p) => p.parse_arch(s)?,
            SpaceKind::Mobile(p) => p.parse_arch(s)?,
        };
        let arch = Arch { ops };
        Space::full(self.clone()).check(&arch)?;
        Ok(arch)
    }

    /// FLOPs and parameters of a child, layer by layer.
    pub fn cost(&self, arch: &Arch) -> Cost {
        match self {
            SpaceKind::Nb201(p) => p.cost(&arch.ops),
            SpaceKind::Mobile(p) => p.cost(&arch.ops),
        }
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

/// A child: one op per choice point, in the order of the space's choice points.
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

    /// Number of children (saturating at `u128::MAX`).
    pub fn size(&self) -> u128 {
        self.choices.iter().fold(1u128, |acc, cp| acc.saturating_mul(cp.ops.len() as u128))
    }

    pub fn log10_size(&self) -> f64 {
        self.choices.iter().map(|cp| (cp.ops.len() as f64).log10()).sum()
    }

    /// Number of children that pick `op` at choice point `cp`.
    pub fn size_with(&self, cp: usize) -> u128 {
        self.size() / self.choices[cp].ops.len() as u128
    }

    pub fn choice_point_index(&self, name: &str) -> Option<usize> {
        self.choices.iter().position(|cp| cp.name == name)
    }

    pub fn contains(&self, arch: &Arch) -> bool {
        self.check(arch).is_ok()
    }

    /// Checks that `arch` picks an allowed op at every choice point.
    pub fn check(&self, arch: &Arch) -> Result<()> {
        if arch.ops.len() != self.choices.len() {
            return Err(ModelError::MalformedArch {
                arch: arch.ops.iter().map(Op::name).collect::<Vec<_>>().join(","),
                reason: format!("expected {} ops, got {}", self.choices.len(), arch.ops.len()),
            });
        }
        for (cp, op) in self.choices.iter().zip(&arch.ops) {
            if !cp.ops.contains(op) {
                return Err(ModelError::OutsideSpace {
                    arch: self.kind.format_arch(arch),
                    choice_point: cp.name.clone(),
                    op: op.name(),
                    allowed: cp.ops.iter().map(Op::name).collect::<Vec<_>>().join(", "),
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

    /// A child drawn uniformly from the space.
    pub fn sample<R: Rng>(&self, rng: &mut R) -> Arch {
        Arch { ops: self.choices.iter().map(|cp| cp.ops[rng.random_range(0..cp.ops.len())]).collect() }
    }

    /// A child drawn uniformly among those that pick `op` at choice point `cp`.
    pub fn sample_with<R: Rng>(&self, rng: &mut R, cp: usize, op: Op) -> Arch {
        let mut arch = self.sample(rng);
        arch.ops[cp] = op;
        arch
    }

    /// Up to `n` distinct children that pick `op` at `cp`: all of them when there are at most `n`,
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

    /// Every child, in lexicographic order of op indices. Callers check `size()` first.
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

    /// Drops `op` from choice point `cp`; refuses to drop the last op.
    pub fn remove(&mut self, cp: usize, op: Op) -> Result<()> {
        let choice = &mut self.choices[cp];
        if choice.ops.len() <= 1 {
            return Err(ModelError::InvalidSpace(format!(
                "cannot drop the last op of choice point {}",
                choice.name
            )));
        }
        let before = choice.ops.len();
        choice.ops.retain(|o| *o != op);
        if choice.ops.len() == before {
            return Err(ModelError::InvalidSpace(format!("choice point {} has no op {op}", choice.name)));
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

    /// Reads the `space.json` form and checks that it fits its kind: every choice point present,
    /// known, non-empty, and allowing only ops of its full op set.
    pub fn from_json(value: serde_json::Value) -> Result<Space> {
        let file: SpaceFile = serde_json::from_value(value)
            .map_err(|e| ModelError::InvalidSpace(format!("not a space file: {e}")))?;
        let kind = SpaceKind::from_params(&file.space, file.params)?;
        let full = Space::full(kind.clone());
        for name in file.choices.keys() {
            if full.choice_point_index(name).is_none() {
                return Err(ModelError::InvalidSpace(format!(
                    "unknown choice point '{name}' for {} (expected {})",
                    kind.name(),
                    kind.choice_point_names().join(", ")
                )));
            }
        }
        let mut choices = Vec::new();
        for cp in full.choices {
            let Some(ops) = file.choices.get(&cp.name) else {
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
                        cp.ops.iter().map(Op::name).collect::<Vec<_>>().join(", ")
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

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn nb201(nodes: usize) -> Space {
        Space::full(SpaceKind::Nb201(Nb201Params { nodes, ..Nb201Params::default() }))
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
