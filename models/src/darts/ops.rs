//! The op modules of the darts space on libtorch, following the DARTS code's `operations.py` (Liu et
//! al., ICLR 2019): each has a forward, a lowering to the graph IR, its conv weights in module order
//! (its part of an angle weight vector) and its BatchNorms (what BN recalibration resets).
//!
//! - [`SepConv`]: (ReLU, depthwise k×k, pointwise 1×1, BN) twice; the first depthwise conv carries the
//!   stride, every conv keeps the channels;
//! - [`DilConv`]: ReLU, depthwise k×k with dilation 2, pointwise 1×1, BN;
//! - [`FactorizedReduce`]: ReLU, two 1×1 stride-2 convs to half the channels each, the second on the
//!   input shifted by one pixel (`x[:, :, 1:, 1:]`), concatenated, BN; `skip_connect` at stride 2 and
//!   the preprocessing of a cell input from before a reduction cell;
//! - [`Pool`]: 3×3 max or average pooling (padding 1, padded positions not counted in the average),
//!   in the supernet followed by a BN without affine parameters as in DARTS's search network
//!   (`model_search.py`), not in a stand-alone network (`model.py`);
//! - `none` has no module (its edge adds nothing) and `skip_connect` at stride 1 is the identity.
//!
//! The BatchNorms of the ops and of the preprocessing have affine parameters in the supernet too (the
//! DARTS search network drops them, `affine=False`): single-path training updates each op like a
//! stand-alone one.
use pwsnas_onnx::{BatchNormParams, GraphBuilder, SliceAxis, Value};
use tch::{nn, Tensor};

use crate::net::layers::{to_vec, Act, BatchNorm, Conv, ConvBn, Mode, Param};
use crate::net::network::Module;
use crate::op::Op;

/// DARTS's separable conv.
pub struct SepConv {
    pub dw1: Conv,
    pub pw1: Conv,
    pub bn1: BatchNorm,
    pub dw2: Conv,
    pub pw2: Conv,
    pub bn2: BatchNorm,
}

impl SepConv {
    pub fn new(p: &nn::Path, c: usize, kernel: usize, stride: usize) -> SepConv {
        SepConv {
            dw1: Conv::new(&(p / "dw1"), c, c, kernel, stride, c),
            pw1: Conv::new(&(p / "pw1"), c, c, 1, 1, 1),
            bn1: BatchNorm::new(&(p / "bn1"), c),
            dw2: Conv::new(&(p / "dw2"), c, c, kernel, 1, c),
            pw2: Conv::new(&(p / "pw2"), c, c, 1, 1, 1),
            bn2: BatchNorm::new(&(p / "bn2"), c),
        }
    }

    pub fn forward(&self, x: &Tensor, mode: Mode) -> Tensor {
        let y = self.bn1.forward(&self.pw1.forward(&self.dw1.forward(&x.relu())), mode);
        self.bn2.forward(&self.pw2.forward(&self.dw2.forward(&y.relu())), mode)
    }

    pub fn lower(&self, g: &mut GraphBuilder, x: &Value) -> Value {
        let mut y = x.clone();
        for (dw, pw, bn) in [(&self.dw1, &self.pw1, &self.bn1), (&self.dw2, &self.pw2, &self.bn2)] {
            let r = g.relu(&y);
            let d = dw.lower(g, &r);
            let q = pw.lower(g, &d);
            y = bn.lower(g, &q);
        }
        y
    }
}

/// DARTS's dilated conv (dilation 2).
pub struct DilConv {
    pub dw: Conv,
    pub pw: Conv,
    pub bn: BatchNorm,
}

impl DilConv {
    pub fn new(p: &nn::Path, c: usize, kernel: usize, stride: usize) -> DilConv {
        DilConv {
            dw: Conv::dilated(&(p / "dw"), c, c, kernel, stride, c, 2),
            pw: Conv::new(&(p / "pw"), c, c, 1, 1, 1),
            bn: BatchNorm::new(&(p / "bn"), c),
        }
    }

    pub fn forward(&self, x: &Tensor, mode: Mode) -> Tensor {
        self.bn.forward(&self.pw.forward(&self.dw.forward(&x.relu())), mode)
    }

    pub fn lower(&self, g: &mut GraphBuilder, x: &Value) -> Value {
        let r = g.relu(x);
        let d = self.dw.lower(g, &r);
        let q = self.pw.lower(g, &d);
        self.bn.lower(g, &q)
    }
}

/// Halves the size with two interleaved 1×1 stride-2 convs (the input must have an even size).
pub struct FactorizedReduce {
    pub conv_1: Conv,
    pub conv_2: Conv,
    pub bn: BatchNorm,
}

impl FactorizedReduce {
    /// `c_out` must be even.
    pub fn new(p: &nn::Path, c_in: usize, c_out: usize) -> FactorizedReduce {
        assert!(
            c_out.is_multiple_of(2),
            "FactorizedReduce needs an even number of output channels, got {c_out}"
        );
        FactorizedReduce {
            conv_1: Conv::new(&(p / "conv_1"), c_in, c_out / 2, 1, 2, 1),
            conv_2: Conv::new(&(p / "conv_2"), c_in, c_out / 2, 1, 2, 1),
            bn: BatchNorm::new(&(p / "bn"), c_out),
        }
    }

    pub fn forward(&self, x: &Tensor, mode: Mode) -> Tensor {
        let r = x.relu();
        let shifted = r.slice(2, 1, None::<i64>, 1).slice(3, 1, None::<i64>, 1);
        let y = Tensor::cat(&[self.conv_1.forward(&r), self.conv_2.forward(&shifted)], 1);
        self.bn.forward(&y, mode)
    }

    /// The BN acts per channel, so each half of it follows its own conv and the concatenation comes
    /// last: the graph computes the same, and both halves fold into their convs.
    pub fn lower(&self, g: &mut GraphBuilder, x: &Value) -> Value {
        let r = g.relu(x);
        let shifted = g.slice(&r, &[SliceAxis::from(2, 1), SliceAxis::from(3, 1)]);
        let half = self.bn.weight.tensor.size()[0] as usize / 2;
        let [gamma, beta, mean, var] =
            [&self.bn.weight, &self.bn.bias, &self.bn.running_mean, &self.bn.running_var]
                .map(|p| to_vec(&p.tensor));
        let part = |k: usize| BatchNormParams {
            gamma: gamma[k * half..(k + 1) * half].to_vec(),
            beta: beta[k * half..(k + 1) * half].to_vec(),
            mean: mean[k * half..(k + 1) * half].to_vec(),
            var: var[k * half..(k + 1) * half].to_vec(),
            eps: self.bn.eps as f32,
        };
        let a = self.conv_1.lower(g, &r);
        let a = g.batch_norm(&a, part(0));
        let b = self.conv_2.lower(g, &shifted);
        let b = g.batch_norm(&b, part(1));
        g.concat(&[a, b], 1)
    }
}

/// 3×3 max or average pooling.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolKind {
    Max,
    /// Padded positions are not counted (`count_include_pad=False`).
    Avg,
}

/// A 3×3 pool with padding 1, optionally followed by a BN without affine parameters.
pub struct Pool {
    pub kind: PoolKind,
    pub stride: usize,
    pub bn: Option<BatchNorm>,
}

impl Pool {
    pub fn forward(&self, x: &Tensor, mode: Mode) -> Tensor {
        let s = self.stride as i64;
        let y = match self.kind {
            PoolKind::Max => x.max_pool2d([3, 3], [s, s], [1, 1], [1, 1], false),
            PoolKind::Avg => x.avg_pool2d([3, 3], [s, s], [1, 1], false, false, None),
        };
        match &self.bn {
            Some(bn) => bn.forward(&y, mode),
            None => y,
        }
    }

    pub fn lower(&self, g: &mut GraphBuilder, x: &Value) -> Value {
        let y = match self.kind {
            PoolKind::Max => g.max_pool(x, 3, self.stride, 1),
            PoolKind::Avg => g.avg_pool(x, 3, self.stride, 1, false),
        };
        match &self.bn {
            Some(bn) => bn.lower(g, &y),
            None => y,
        }
    }
}

/// The module of one darts op on one edge.
pub enum DartsOp {
    /// `none`: the edge adds nothing.
    Zero,
    /// `skip_connect` at stride 1.
    Identity,
    /// `skip_connect` at stride 2.
    Reduce(Box<FactorizedReduce>),
    Pool(Pool),
    SepConv(Box<SepConv>),
    DilConv(Box<DilConv>),
}

impl DartsOp {
    /// The module of `op` on an edge of `c` channels with `stride` (1, or 2 out of the inputs of a
    /// reduction cell); `pool_bn` puts the affine-free BN after pools (the supernet).
    ///
    /// # Panics
    /// If `op` is not a darts op (the space's parameters are validated before networks are built).
    pub fn new(p: &nn::Path, op: Op, c: usize, stride: usize, pool_bn: bool) -> DartsOp {
        let pool = |kind| {
            let bn = pool_bn.then(|| BatchNorm::without_affine(&(p / "bn"), c));
            DartsOp::Pool(Pool { kind, stride, bn })
        };
        match op {
            Op::None => DartsOp::Zero,
            Op::SkipConnect if stride == 1 => DartsOp::Identity,
            Op::SkipConnect => DartsOp::Reduce(Box::new(FactorizedReduce::new(p, c, c))),
            Op::MaxPool3x3 => pool(PoolKind::Max),
            Op::AvgPool3x3 => pool(PoolKind::Avg),
            Op::SepConv { kernel } => DartsOp::SepConv(Box::new(SepConv::new(p, c, kernel as usize, stride))),
            Op::DilConv { kernel } => DartsOp::DilConv(Box::new(DilConv::new(p, c, kernel as usize, stride))),
            other => panic!("'{other}' is not a darts op"),
        }
    }

    pub fn lower(&self, g: &mut GraphBuilder, x: &Value) -> Option<Value> {
        match self {
            DartsOp::Zero => None,
            DartsOp::Identity => Some(x.clone()),
            DartsOp::Reduce(m) => Some(m.lower(g, x)),
            DartsOp::Pool(m) => Some(m.lower(g, x)),
            DartsOp::SepConv(m) => Some(m.lower(g, x)),
            DartsOp::DilConv(m) => Some(m.lower(g, x)),
        }
    }
}

/// The darts op modules as the supernet sees them.
impl Module for DartsOp {
    /// The op's output, or `None` for `none`.
    fn forward(&self, x: &Tensor, mode: Mode) -> Option<Tensor> {
        match self {
            DartsOp::Zero => None,
            DartsOp::Identity => Some(x.shallow_clone()),
            DartsOp::Reduce(m) => Some(m.forward(x, mode)),
            DartsOp::Pool(m) => Some(m.forward(x, mode)),
            DartsOp::SepConv(m) => Some(m.forward(x, mode)),
            DartsOp::DilConv(m) => Some(m.forward(x, mode)),
        }
    }

    fn is_identity(&self) -> bool {
        matches!(self, DartsOp::Identity)
    }

    /// Conv weights in module order: a sep_conv's 4, a dil_conv's 2, a FactorizedReduce's 2.
    fn conv_weights(&self) -> Vec<&Param> {
        match self {
            DartsOp::Reduce(m) => vec![&m.conv_1.weight, &m.conv_2.weight],
            DartsOp::SepConv(m) => vec![&m.dw1.weight, &m.pw1.weight, &m.dw2.weight, &m.pw2.weight],
            DartsOp::DilConv(m) => vec![&m.dw.weight, &m.pw.weight],
            DartsOp::Zero | DartsOp::Identity | DartsOp::Pool(_) => Vec::new(),
        }
    }

    fn batch_norms(&self) -> Vec<&BatchNorm> {
        match self {
            DartsOp::Reduce(m) => vec![&m.bn],
            DartsOp::SepConv(m) => vec![&m.bn1, &m.bn2],
            DartsOp::DilConv(m) => vec![&m.bn],
            DartsOp::Pool(m) => m.bn.iter().collect(),
            DartsOp::Zero | DartsOp::Identity => Vec::new(),
        }
    }

    /// Trainable tensors: conv weights and affine BN parameters.
    fn trainable<'a>(&'a self, out: &mut Vec<&'a Param>) {
        out.extend(self.conv_weights());
        for bn in self.batch_norms() {
            bn.trainable(out);
        }
    }

    /// Every variable (weights and BN statistics and constants), for copying one module into another.
    fn all_params(&self) -> Vec<&Param> {
        let mut out = self.conv_weights();
        for bn in self.batch_norms() {
            out.extend([&bn.weight, &bn.bias, &bn.running_mean, &bn.running_var]);
        }
        out
    }
}

/// How a cell brings one of its inputs to its channels (and, after a reduction cell, its size).
pub enum Preprocess {
    /// ReLU → 1×1 conv → BN.
    ReluConvBn(ConvBn),
    /// For input 0 of the cell after a reduction cell, which is twice the size.
    Reduce(FactorizedReduce),
}

impl Preprocess {
    pub fn new(p: &nn::Path, c_in: usize, c_out: usize, reduce: bool) -> Preprocess {
        if reduce {
            Preprocess::Reduce(FactorizedReduce::new(p, c_in, c_out))
        } else {
            Preprocess::ReluConvBn(ConvBn::new(p, Act::Relu, c_in, c_out, 1, 1, 1, Act::None))
        }
    }

    pub fn forward(&self, x: &Tensor, mode: Mode) -> Tensor {
        match self {
            Preprocess::ReluConvBn(m) => m.forward(x, mode),
            Preprocess::Reduce(m) => m.forward(x, mode),
        }
    }

    pub fn lower(&self, g: &mut GraphBuilder, x: &Value) -> Value {
        match self {
            Preprocess::ReluConvBn(m) => m.lower(g, x),
            Preprocess::Reduce(m) => m.lower(g, x),
        }
    }

    pub fn conv_weights(&self) -> Vec<&Param> {
        match self {
            Preprocess::ReluConvBn(m) => vec![&m.conv.weight],
            Preprocess::Reduce(m) => vec![&m.conv_1.weight, &m.conv_2.weight],
        }
    }

    pub fn batch_norms(&self) -> Vec<&BatchNorm> {
        match self {
            Preprocess::ReluConvBn(m) => vec![&m.bn],
            Preprocess::Reduce(m) => vec![&m.bn],
        }
    }

    pub fn trainable<'a>(&'a self, out: &mut Vec<&'a Param>) {
        out.extend(self.conv_weights());
        for bn in self.batch_norms() {
            bn.trainable(out);
        }
    }
}
