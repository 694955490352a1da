//! The basic layers every space is built from: bias-free conv, BatchNorm with controllable momentum,
//! conv+BN, linear. Each keeps its variable names so that weight vectors (angle metric), checkpoints
//! and the ONNX lowering can address exactly the tensors they need.
//!
//! BatchNorm is ours rather than `tch::nn::BatchNorm` because the search needs SPOS-style BN
//! recalibration: running statistics reset and re-estimated as a cumulative average over a few
//! batches, which needs a momentum chosen per forward pass.
use pwsnas_onnx::{BatchNormParams, ConvAttrs, GraphBuilder, Value};
use tch::{nn, Tensor};

/// How a forward pass treats BatchNorm, drop-path and PDARTS's dropout on `skip_connect`.
#[derive(Clone, Copy, Debug)]
pub struct Mode {
    /// Batch statistics (and running-statistics updates) when true; running statistics when false.
    pub train: bool,
    /// Weight of the current batch in the running-statistics update.
    pub bn_momentum: f64,
    /// Probability that a training forward zeroes an edge op's output for an image (DARTS's
    /// drop-path); 0 = off. Only networks whose space supports it
    /// ([`crate::space::SpaceDef::drop_path`]) read it, and only when `train`.
    pub drop_path: f64,
    /// Probability that a training forward zeroes an element of `skip_connect`'s output in a
    /// weighted mix (PDARTS's dropout after the identity, Chen et al., ICCV 2019), the rest scaled by
    /// `1 / (1 - p)`; 0 = off. Read by [`crate::OpSite::forward`], only when `train`.
    pub skip_dropout: f64,
}

impl Mode {
    pub const TRAIN: Mode = Mode { train: true, bn_momentum: 0.1, drop_path: 0.0, skip_dropout: 0.0 };
    pub const EVAL: Mode = Mode { train: false, bn_momentum: 0.0, drop_path: 0.0, skip_dropout: 0.0 };

    /// Batch `t` (from 0) of a BN recalibration: running statistics become the cumulative average.
    pub fn recalibrate(t: usize) -> Mode {
        Mode { train: true, bn_momentum: 1.0 / (t as f64 + 1.0), drop_path: 0.0, skip_dropout: 0.0 }
    }

    /// This mode with drop-path probability `p`.
    pub fn with_drop_path(self, p: f64) -> Mode {
        Mode { drop_path: p, ..self }
    }

    /// This mode with PDARTS's `skip_connect` dropout probability `p`.
    pub fn with_skip_dropout(self, p: f64) -> Mode {
        Mode { skip_dropout: p, ..self }
    }
}

/// Reads a float tensor into a `Vec<f32>` on the CPU.
pub(crate) fn to_vec(t: &Tensor) -> Vec<f32> {
    let flat = t.detach().to_device(tch::Device::Cpu).to_kind(tch::Kind::Float).flatten(0, -1).contiguous();
    Vec::<f32>::try_from(&flat).expect("float tensor converts to Vec<f32>")
}

/// A named variable.
pub struct Param {
    pub name: String,
    pub tensor: Tensor,
}

impl Param {
    fn new(p: &nn::Path, name: &str, tensor: Tensor) -> Param {
        Param { name: p.path(name), tensor }
    }
}

/// Square conv without bias.
pub struct Conv {
    pub weight: Param,
    pub stride: usize,
    pub padding: usize,
    pub dilation: usize,
    pub groups: usize,
}

impl Conv {
    /// A conv with "same" padding `kernel / 2` and no dilation.
    pub fn new(p: &nn::Path, c_in: usize, c_out: usize, kernel: usize, stride: usize, groups: usize) -> Conv {
        Conv::dilated(p, c_in, c_out, kernel, stride, groups, 1)
    }

    /// A conv whose kernel taps are `dilation` pixels apart, with "same" padding
    /// `dilation · (kernel − 1) / 2` (DARTS's `dil_conv_3x3` pads 2, `dil_conv_5x5` pads 4).
    pub fn dilated(
        p: &nn::Path,
        c_in: usize,
        c_out: usize,
        kernel: usize,
        stride: usize,
        groups: usize,
        dilation: usize,
    ) -> Conv {
        let init = nn::Init::Kaiming {
            dist: nn::init::NormalOrUniform::Normal,
            fan: nn::init::FanInOut::FanOut,
            non_linearity: nn::init::NonLinearity::ReLU,
        };
        let dims = [c_out as i64, (c_in / groups) as i64, kernel as i64, kernel as i64];
        let weight = Param::new(p, "weight", p.var("weight", &dims, init));
        Conv { weight, stride, padding: dilation * (kernel - 1) / 2, dilation, groups }
    }

    pub fn forward(&self, x: &Tensor) -> Tensor {
        let (s, pad, d) = (self.stride as i64, self.padding as i64, self.dilation as i64);
        x.conv2d(&self.weight.tensor, None::<Tensor>, [s, s], [pad, pad], [d, d], self.groups as i64)
    }

    pub fn lower(&self, g: &mut GraphBuilder, x: &Value) -> Value {
        let dims: Vec<usize> = self.weight.tensor.size().iter().map(|&d| d as usize).collect();
        let attrs = ConvAttrs {
            stride: self.stride,
            padding: self.padding,
            dilation: self.dilation,
            groups: self.groups,
        };
        g.conv(x, to_vec(&self.weight.tensor), [dims[0], dims[1], dims[2], dims[3]], None, attrs)
    }
}

/// BatchNorm over channels with running statistics and (unless built by
/// [`BatchNorm::without_affine`]) trainable affine parameters.
pub struct BatchNorm {
    pub weight: Param,
    pub bias: Param,
    pub running_mean: Param,
    pub running_var: Param,
    pub eps: f64,
    /// Whether γ (`weight`) and β (`bias`) are trainable; without, they stay 1 and 0.
    pub affine: bool,
}

impl BatchNorm {
    pub fn new(p: &nn::Path, channels: usize) -> BatchNorm {
        let c = [channels as i64];
        BatchNorm {
            weight: Param::new(p, "weight", p.var("weight", &c, nn::Init::Const(1.0))),
            bias: Param::new(p, "bias", p.var("bias", &c, nn::Init::Const(0.0))),
            running_mean: Param::new(p, "running_mean", p.zeros_no_train("running_mean", &c)),
            running_var: Param::new(p, "running_var", p.ones_no_train("running_var", &c)),
            eps: 1e-5,
            affine: true,
        }
    }

    /// A BatchNorm without affine parameters (`affine=False` in PyTorch): γ = 1 and β = 0 are kept as
    /// constants, not trainable, so the forward, the lowering and BN recalibration treat it like any
    /// other, and [`BatchNorm::trainable`] lists nothing. DARTS's search network puts one after every
    /// pooling op.
    pub fn without_affine(p: &nn::Path, channels: usize) -> BatchNorm {
        let c = [channels as i64];
        BatchNorm {
            weight: Param::new(p, "weight", p.ones_no_train("weight", &c)),
            bias: Param::new(p, "bias", p.zeros_no_train("bias", &c)),
            running_mean: Param::new(p, "running_mean", p.zeros_no_train("running_mean", &c)),
            running_var: Param::new(p, "running_var", p.ones_no_train("running_var", &c)),
            eps: 1e-5,
            affine: false,
        }
    }

    pub fn forward(&self, x: &Tensor, mode: Mode) -> Tensor {
        x.batch_norm(
            Some(&self.weight.tensor),
            Some(&self.bias.tensor),
            Some(&self.running_mean.tensor),
            Some(&self.running_var.tensor),
            mode.train,
            mode.bn_momentum,
            self.eps,
            true,
        )
    }

    /// Forgets the running statistics (mean 0, variance 1).
    pub fn reset_stats(&self) {
        tch::no_grad(|| {
            let _ = self.running_mean.tensor.shallow_clone().fill_(0.0);
            let _ = self.running_var.tensor.shallow_clone().fill_(1.0);
        });
    }

    pub fn lower(&self, g: &mut GraphBuilder, x: &Value) -> Value {
        g.batch_norm(
            x,
            BatchNormParams {
                gamma: to_vec(&self.weight.tensor),
                beta: to_vec(&self.bias.tensor),
                mean: to_vec(&self.running_mean.tensor),
                var: to_vec(&self.running_var.tensor),
                eps: self.eps as f32,
            },
        )
    }

    /// γ and β, if trainable.
    pub fn trainable<'a>(&'a self, out: &mut Vec<&'a Param>) {
        if self.affine {
            out.push(&self.weight);
            out.push(&self.bias);
        }
    }
}

/// Activation applied around a conv.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Act {
    None,
    Relu,
    Relu6,
}

impl Act {
    pub fn forward(self, x: Tensor) -> Tensor {
        match self {
            Act::None => x,
            Act::Relu => x.relu(),
            Act::Relu6 => x.relu6(),
        }
    }

    pub fn lower(self, g: &mut GraphBuilder, x: Value) -> Value {
        match self {
            Act::None => x,
            Act::Relu => g.relu(&x),
            Act::Relu6 => g.clip(&x, 0.0, 6.0),
        }
    }
}

/// `pre` activation → conv → BN → `post` activation. NB201's ReLU-Conv-BN is `pre = Relu`; MBConv's
/// parts are `post = Relu6` (or none for the projection).
pub struct ConvBn {
    pub pre: Act,
    pub conv: Conv,
    pub bn: BatchNorm,
    pub post: Act,
}

impl ConvBn {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        p: &nn::Path,
        pre: Act,
        c_in: usize,
        c_out: usize,
        kernel: usize,
        stride: usize,
        groups: usize,
        post: Act,
    ) -> ConvBn {
        ConvBn {
            pre,
            conv: Conv::new(&(p / "conv"), c_in, c_out, kernel, stride, groups),
            bn: BatchNorm::new(&(p / "bn"), c_out),
            post,
        }
    }

    pub fn forward(&self, x: &Tensor, mode: Mode) -> Tensor {
        let x = self.pre.forward(x.shallow_clone());
        self.post.forward(self.bn.forward(&self.conv.forward(&x), mode))
    }

    pub fn lower(&self, g: &mut GraphBuilder, x: &Value) -> Value {
        let x = self.pre.lower(g, x.clone());
        self.lower_body(g, &x)
    }

    /// Conv → BN → `post` on an `x` that `pre` was already applied to (so that convs of one value
    /// can share its activation).
    pub fn lower_body(&self, g: &mut GraphBuilder, x: &Value) -> Value {
        let y = self.conv.lower(g, x);
        let y = self.bn.lower(g, &y);
        self.post.lower(g, y)
    }

    pub fn trainable<'a>(&'a self, out: &mut Vec<&'a Param>) {
        out.push(&self.conv.weight);
        self.bn.trainable(out);
    }
}

/// Fully connected layer with bias.
pub struct Linear {
    pub weight: Param,
    pub bias: Param,
}

impl Linear {
    pub fn new(p: &nn::Path, inputs: usize, outputs: usize) -> Linear {
        let bound = 1.0 / (inputs as f64).sqrt();
        let init = nn::Init::Uniform { lo: -bound, up: bound };
        Linear {
            weight: Param::new(p, "weight", p.var("weight", &[outputs as i64, inputs as i64], init)),
            bias: Param::new(p, "bias", p.var("bias", &[outputs as i64], init)),
        }
    }

    pub fn forward(&self, x: &Tensor) -> Tensor {
        x.linear(&self.weight.tensor, Some(&self.bias.tensor))
    }

    pub fn lower(&self, g: &mut GraphBuilder, x: &Value) -> Value {
        let size = self.weight.tensor.size();
        g.gemm(
            x,
            to_vec(&self.weight.tensor),
            size[0] as usize,
            size[1] as usize,
            Some(to_vec(&self.bias.tensor)),
        )
    }

    pub fn trainable<'a>(&'a self, out: &mut Vec<&'a Param>) {
        out.push(&self.weight);
        out.push(&self.bias);
    }
}
