//! Candidate op modules and the sites that hold them.
//!
//! A *site* is one place of the network that instantiates a choice point: an edge of one cell in
//! `nb201` (every cell has its own weights for the shared choice point), or a layer in `mobile`. A site
//! holds, for each op it was built with, one module per weight copy (strategy 2 of docs/method.md; one
//! copy unless copies were added). [`OpModule`] and [`Site`] are these spaces' [`Module`] and
//! [`OpSite`]; a space with other module types brings its own.
use pwsnas_onnx::{GraphBuilder, Value};
use tch::{nn, Tensor};

use super::layers::{Act, BatchNorm, ConvBn, Mode, Param};
use super::network::{conv_magnitude, Module, OpSite};
use crate::op::Op;

/// The module of one op at one site.
pub enum OpModule {
    Zero,
    /// NB201's `skip_connect` (cells keep their shape).
    Skip,
    /// `mobile`'s layer skip.
    Identity,
    AvgPool3x3,
    ReluConvBn(Box<ConvBn>),
    MbConv(Box<MbConv>),
}

/// ProxylessNAS's inverted residual: 1×1 expand (absent for expansion 1), k×k depthwise, 1×1 project.
pub struct MbConv {
    pub expand: Option<ConvBn>,
    pub depthwise: ConvBn,
    pub project: ConvBn,
    pub residual: bool,
}

/// Shape facts a site needs to build (and later copy) its modules.
#[derive(Clone, Copy, Debug)]
pub struct SiteShape {
    pub c_in: usize,
    pub c_out: usize,
    pub stride: usize,
}

impl OpModule {
    pub fn new(p: &nn::Path, op: Op, s: SiteShape) -> OpModule {
        match op {
            Op::None => OpModule::Zero,
            Op::SkipConnect => OpModule::Skip,
            Op::Identity => OpModule::Identity,
            Op::AvgPool3x3 => OpModule::AvgPool3x3,
            Op::NorConv1x1 => OpModule::ReluConvBn(Box::new(ConvBn::new(
                p,
                Act::Relu,
                s.c_in,
                s.c_out,
                1,
                s.stride,
                1,
                Act::None,
            ))),
            Op::NorConv3x3 => OpModule::ReluConvBn(Box::new(ConvBn::new(
                p,
                Act::Relu,
                s.c_in,
                s.c_out,
                3,
                s.stride,
                1,
                Act::None,
            ))),
            Op::MaxPool3x3 | Op::SepConv { .. } | Op::DilConv { .. } => {
                panic!("{op} is a DARTS op: its modules are crate::darts::ops::DartsOp, not an OpModule")
            }
            Op::MbConv { kernel, expand } => {
                let hidden = s.c_in * expand as usize;
                let k = kernel as usize;
                OpModule::MbConv(Box::new(MbConv {
                    expand: (expand != 1).then(|| {
                        ConvBn::new(&(p / "expand"), Act::None, s.c_in, hidden, 1, 1, 1, Act::Relu6)
                    }),
                    depthwise: ConvBn::new(
                        &(p / "depthwise"),
                        Act::None,
                        hidden,
                        hidden,
                        k,
                        s.stride,
                        hidden,
                        Act::Relu6,
                    ),
                    project: ConvBn::new(&(p / "project"), Act::None, hidden, s.c_out, 1, 1, 1, Act::None),
                    residual: s.stride == 1 && s.c_in == s.c_out,
                }))
            }
        }
    }

    pub fn lower(&self, g: &mut GraphBuilder, x: &Value) -> Option<Value> {
        match self {
            OpModule::Zero => None,
            OpModule::Skip | OpModule::Identity => Some(x.clone()),
            OpModule::AvgPool3x3 => Some(g.avg_pool(x, 3, 1, 1, false)),
            OpModule::ReluConvBn(cb) => Some(cb.lower(g, x)),
            OpModule::MbConv(mb) => {
                let MbConv { expand, depthwise, project, residual } = mb.as_ref();
                let h = match expand {
                    Some(e) => e.lower(g, x),
                    None => x.clone(),
                };
                let d = depthwise.lower(g, &h);
                let y = project.lower(g, &d);
                Some(if *residual { g.add(&y, x) } else { y })
            }
        }
    }

    fn conv_bns(&self) -> Vec<&ConvBn> {
        match self {
            OpModule::ReluConvBn(cb) => vec![cb],
            OpModule::MbConv(mb) => {
                let MbConv { expand, depthwise, project, .. } = mb.as_ref();
                expand.iter().chain([depthwise, project]).collect()
            }
            _ => Vec::new(),
        }
    }
}

impl Module for OpModule {
    fn forward(&self, x: &Tensor, mode: Mode) -> Option<Tensor> {
        match self {
            OpModule::Zero => None,
            OpModule::Skip | OpModule::Identity => Some(x.shallow_clone()),
            OpModule::AvgPool3x3 => Some(x.avg_pool2d([3, 3], [1, 1], [1, 1], false, false, None)),
            OpModule::ReluConvBn(cb) => Some(cb.forward(x, mode)),
            OpModule::MbConv(mb) => {
                let MbConv { expand, depthwise, project, residual } = mb.as_ref();
                let h = match expand {
                    Some(e) => e.forward(x, mode),
                    None => x.shallow_clone(),
                };
                let y = project.forward(&depthwise.forward(&h, mode), mode);
                Some(if *residual { y + x } else { y })
            }
        }
    }

    fn is_identity(&self) -> bool {
        matches!(self, OpModule::Skip | OpModule::Identity)
    }

    fn conv_weights(&self) -> Vec<&Param> {
        self.conv_bns().into_iter().map(|cb| &cb.conv.weight).collect()
    }

    fn batch_norms(&self) -> Vec<&BatchNorm> {
        self.conv_bns().into_iter().map(|cb| &cb.bn).collect()
    }

    fn trainable<'a>(&'a self, out: &mut Vec<&'a Param>) {
        for cb in self.conv_bns() {
            cb.trainable(out);
        }
    }

    fn all_params(&self) -> Vec<&Param> {
        self.conv_bns()
            .into_iter()
            .flat_map(|cb| {
                [&cb.conv.weight, &cb.bn.weight, &cb.bn.bias, &cb.bn.running_mean, &cb.bn.running_var]
            })
            .collect()
    }
}

/// One op of a site with its weight copies.
pub struct Candidate {
    pub op: Op,
    pub copies: Vec<OpModule>,
}

/// One place of the network that instantiates a choice point.
pub struct Site {
    pub cp: usize,
    pub shape: SiteShape,
    path: String,
    pub candidates: Vec<Candidate>,
}

impl Site {
    pub fn new(p: &nn::Path, cp: usize, ops: &[Op], shape: SiteShape) -> Site {
        let candidates = ops
            .iter()
            .map(|&op| Candidate { op, copies: vec![OpModule::new(&(p / op.name() / "c0"), op, shape)] })
            .collect();
        Site { cp, shape, path: p.components().collect::<Vec<_>>().join("."), candidates }
    }

    pub fn candidate(&self, op: Op) -> Option<&Candidate> {
        self.candidates.iter().find(|c| c.op == op)
    }

    /// The module of `op`, copy `copy` (copy 0 for ops without weights).
    pub fn module(&self, op: Op, copy: usize) -> &OpModule {
        let c = self.candidate(op).unwrap_or_else(|| panic!("site {} was not built with op {op}", self.path));
        &c.copies[copy.min(c.copies.len() - 1)]
    }

    /// Gives every op with weights `k` copies; new copies start from copy 0's current weights and
    /// statistics. Existing copies are kept.
    pub fn grow_copies(&mut self, root: &nn::Path, k: usize) {
        let mut p = root.clone();
        for part in self.path.split('.') {
            p = p / part;
        }
        for cand in self.candidates.iter_mut().filter(|c| c.op.has_weights()) {
            for h in cand.copies.len()..k {
                let module = OpModule::new(&(&p / cand.op.name() / format!("c{h}")), cand.op, self.shape);
                tch::no_grad(|| {
                    for (dst, src) in module.all_params().iter().zip(cand.copies[0].all_params()) {
                        dst.tensor.shallow_clone().copy_(&src.tensor);
                    }
                });
                cand.copies.push(module);
            }
        }
    }
}

impl OpSite for Site {
    fn cp(&self) -> usize {
        self.cp
    }

    fn module(&self, op: Op, copy: usize) -> &dyn Module {
        Site::module(self, op, copy)
    }

    /// Parameter-free ops as their virtual kernels: a pool `1/9` everywhere, skip and identity an
    /// identity kernel, none 0.
    fn magnitude(&self, op: Op, copy: usize) -> f64 {
        match Site::module(self, op, copy) {
            OpModule::Zero => 0.0,
            OpModule::Skip | OpModule::Identity => 1.0 / (self.shape.c_in as f64).sqrt(),
            OpModule::AvgPool3x3 => 1.0 / 9.0,
            m => conv_magnitude(m),
        }
    }
}
