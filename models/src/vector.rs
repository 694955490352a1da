//! Weight vectors of children and their angle (docs/method.md, strategy 1).
//!
//! A child's weight vector `V(a, W)` is a concatenation of *segments*: a variable's flattened
//! weights, or a constant virtual kernel (pooling). The networks list the segments of a child; this
//! module turns them into the angle between `V(a, W0)` and `V(a, Wt)`.
//!
//! Why segments instead of building the vector: the dot product and the norms of a concatenation are
//! sums over its parts, so with the three numbers `<w0, wt>`, `|w0|²`, `|wt|²` of each variable
//! computed once, the angle of any child costs a few additions. Scoring thousands of children is then
//! instant, and the sums are done in f64. [`materialize`] still builds the vector itself, which pins
//! the definition in tests.
use std::cell::RefCell;
use std::collections::HashMap;

use tch::{Kind, Tensor};

use crate::net::layers::Param;
use crate::net::OpSite;
use crate::op::Op;

/// Which parts of the network enter the vector (`--angle-vector`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum Composition {
    /// Operator weights only (default, ours).
    Ops,
    /// Plus the parts every child shares: stem, fixed blocks, classifier (ABS's code).
    Full,
}

/// One part of a weight vector.
#[derive(Clone, Debug, PartialEq)]
pub enum Segment {
    /// A variable: its current name, and the name of the variable that holds its `W0` (a weight
    /// copy of strategy 2 starts from the shared weights, so its `W0` is copy 0's).
    Tensor { current: String, initial: String, numel: usize },
    /// A constant virtual kernel of `len` values equal to `value` (same in `W0` and `Wt`).
    Constant { len: usize, value: f64 },
}

impl Segment {
    pub fn of(p: &Param) -> Segment {
        Segment::Tensor { current: p.name.clone(), initial: p.name.clone(), numel: p.tensor.numel() }
    }

    /// The conv weights of `op`'s copy `copy` at a site, paired with copy 0's names for `W0`.
    pub fn of_module(site: &dyn OpSite, op: Op, copy: usize) -> Vec<Segment> {
        let current = site.module(op, copy).conv_weights();
        let initial = site.module(op, 0).conv_weights();
        current
            .iter()
            .zip(initial)
            .map(|(c, i)| Segment::Tensor {
                current: c.name.clone(),
                initial: i.name.clone(),
                numel: c.tensor.numel(),
            })
            .collect()
    }

    pub fn len(&self) -> usize {
        match self {
            Segment::Tensor { numel, .. } => *numel,
            Segment::Constant { len, .. } => *len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Total length of a vector.
pub fn vector_len(segments: &[Segment]) -> usize {
    segments.iter().map(Segment::len).sum()
}

/// Builds the vector itself (f64, CPU) from named tensors: `initial` picks `W0` names.
pub fn materialize(segments: &[Segment], tensors: &HashMap<String, Tensor>, initial: bool) -> Tensor {
    let parts: Vec<Tensor> = segments
        .iter()
        .map(|s| match s {
            Segment::Tensor { current, initial: init, .. } => {
                let name = if initial { init } else { current };
                tensors[name].detach().to_device(tch::Device::Cpu).to_kind(Kind::Double).flatten(0, -1)
            }
            Segment::Constant { len, value } => {
                Tensor::full([*len as i64], *value, (Kind::Double, tch::Device::Cpu))
            }
        })
        .collect();
    if parts.is_empty() {
        Tensor::zeros([0], (Kind::Double, tch::Device::Cpu))
    } else {
        Tensor::cat(&parts, 0)
    }
}

/// `arccos(<a, b> / (|a| |b|))` with the cosine clamped to [-1, 1]; 0 for an empty or zero vector.
pub fn angle_from_sums(dot: f64, norm_a_sq: f64, norm_b_sq: f64) -> f64 {
    let denom = (norm_a_sq * norm_b_sq).sqrt();
    if denom.is_nan() || denom <= 0.0 {
        return 0.0;
    }
    (dot / denom).clamp(-1.0, 1.0).acos()
}

/// Angles of children between `W0` and the current weights, with per-variable sums cached.
pub struct AngleMeter<'a> {
    initial: &'a HashMap<String, Tensor>,
    current: &'a HashMap<String, Tensor>,
    cache: RefCell<HashMap<(String, String), [f64; 3]>>,
}

impl<'a> AngleMeter<'a> {
    /// `initial` maps names to `W0` (from `W0.safetensors`), `current` to the trained weights.
    pub fn new(initial: &'a HashMap<String, Tensor>, current: &'a HashMap<String, Tensor>) -> Self {
        AngleMeter { initial, current, cache: RefCell::new(HashMap::new()) }
    }

    fn sums(&self, current: &str, initial: &str) -> [f64; 3] {
        let key = (current.to_string(), initial.to_string());
        if let Some(s) = self.cache.borrow().get(&key) {
            return *s;
        }
        let w0 = self.initial[initial].detach().to_device(tch::Device::Cpu).to_kind(Kind::Double);
        let wt = self.current[current].detach().to_device(tch::Device::Cpu).to_kind(Kind::Double);
        let s = [
            (&w0 * &wt).sum(None).double_value(&[]),
            w0.square().sum(None).double_value(&[]),
            wt.square().sum(None).double_value(&[]),
        ];
        self.cache.borrow_mut().insert(key, s);
        s
    }

    /// Angle θ(a) of the child with these segments.
    pub fn angle(&self, segments: &[Segment]) -> f64 {
        let (mut dot, mut n0, mut nt) = (0.0, 0.0, 0.0);
        for seg in segments {
            match seg {
                Segment::Tensor { current, initial, .. } => {
                    let [d, a, b] = self.sums(current, initial);
                    dot += d;
                    n0 += a;
                    nt += b;
                }
                Segment::Constant { len, value } => {
                    let sq = *len as f64 * value * value;
                    dot += sq;
                    n0 += sq;
                    nt += sq;
                }
            }
        }
        angle_from_sums(dot, n0, nt)
    }
}
