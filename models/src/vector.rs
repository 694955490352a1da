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
use crate::net::network::Module;
use crate::net::OpSite;
use crate::op::Op;

/// Which parts of the network enter the vector (`--angle-vector`; docs/method.md, strategy 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum Composition {
    /// Operator weights only (ours): each op's conv weights; `skip_connect` and the
    /// identity add nothing, a pool its constant kernel. The default: with the supernet's default
    /// initialisation (PyTorch's) it ranked NAS-Bench-201's cells and operator candidates best of
    /// the three (docs/nb201.md).
    Ops,
    /// Plus the parts every child shares: stem, fixed blocks, classifier (ABS's code; Hu et al.,
    /// "Angle-based Search Space Shrinking for Neural Architecture Search", ECCV 2020).
    Full,
    /// PWSNAS's vector as its code builds it (the extension of ABS, IEEE TNNLS 2022, DOI
    /// 10.1109/TNNLS.2022.3156373): as [`Composition::Ops`], but `skip_connect` and the identity add
    /// an identity kernel ([`Segment::identity`]) instead of nothing, and each op's BatchNorm affine
    /// parameters (γ then β of each of its BNs, in module order, only where they are trainable)
    /// follow its conv weights. With the Kaiming-normal fan-out initialisation it ranked the
    /// 125-child space's children and candidates best on Fashion-MNIST and MNIST
    /// (docs/fidelity.md); with PyTorch's its identity kernels and BN γ outweigh the convs and it ranks
    /// NAS-Bench-201 worse than [`Composition::Ops`] (docs/nb201.md).
    Pwsnas,
}

impl Composition {
    pub const ALL: [Composition; 3] = [Composition::Ops, Composition::Full, Composition::Pwsnas];

    /// The angle given to a child whose vector in this composition is empty. With `pwsnas` every
    /// op but `none` adds to each path it lies on (a pool its kernel, a skip its identity kernel),
    /// so an empty vector means that every path from the input to the output is cut: the child
    /// passes no signal and can only guess. It gets [`CUT_ANGLE`], below every child with a path,
    /// where an angle of 0 would tie it with the children whose paths hold only parameter-free ops
    /// (their kernels never move), which train well. With `ops` a path of skips is empty too and
    /// does carry the signal, so an empty `ops` vector keeps 0; a `full` vector is never empty.
    pub fn empty_angle(self) -> f64 {
        match self {
            Composition::Pwsnas => CUT_ANGLE,
            Composition::Ops | Composition::Full => 0.0,
        }
    }

    /// The key of this angle in a candidate's `scores` and in a child record of `shrink.json`:
    /// `angle` (ops), `angle_full`, `angle_pwsnas`.
    pub fn angle_key(self) -> &'static str {
        match self {
            Composition::Ops => "angle",
            Composition::Full => "angle_full",
            Composition::Pwsnas => "angle_pwsnas",
        }
    }
}

/// The `pwsnas` angle of a child without a path from input to output ([`Composition::empty_angle`]).
/// Any negative value ranks such children last; the value sets how much they pull down the mean
/// score of the candidates they contain. −1 rad is about twice the largest angle of a trained
/// child in the fidelity study (docs/fidelity.md), where −0.5 and −1 were the two values tried.
pub const CUT_ANGLE: f64 = -1.0;

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

    /// The identity kernel of `channels` channels (`skip_connect`, the identity) in the
    /// [`Composition::Pwsnas`] vector: `channels` ones.
    ///
    /// Why ones and not the `C×C` identity matrix: the angle only needs `<w0, wt>`, `|w0|²` and
    /// `|wt|²`, and the kernel is the same constant in `W0` and `Wt`. The matrix's `C² - C` zeros add
    /// nothing to any of the three sums, its `C` ones add `C` to each, so `C` ones give every angle
    /// the matrix gives (only [`vector_len`] tells them apart).
    pub fn identity(channels: usize) -> Segment {
        Segment::Constant { len: channels, value: 1.0 }
    }

    /// The part of `op`'s copy `copy` at a site in a vector of `composition`, paired with copy 0's
    /// names for `W0`: its conv weights, and with [`Composition::Pwsnas`] γ and β of its BNs with
    /// trainable affine parameters after them (a BN without, e.g. after a pool in the darts
    /// supernet, holds constants and adds nothing). Parameter-free ops give nothing here; the
    /// networks add their virtual kernels.
    pub fn of_module(site: &dyn OpSite, op: Op, copy: usize, composition: Composition) -> Vec<Segment> {
        let current = vector_params(site.module(op, copy), composition);
        let initial = vector_params(site.module(op, 0), composition);
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

/// The variables of a module that enter a vector of `composition` (see [`Segment::of_module`]).
fn vector_params(m: &dyn Module, composition: Composition) -> Vec<&Param> {
    let mut out = m.conv_weights();
    if composition == Composition::Pwsnas {
        for bn in m.batch_norms().into_iter().filter(|bn| bn.affine) {
            out.push(&bn.weight);
            out.push(&bn.bias);
        }
    }
    out
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
