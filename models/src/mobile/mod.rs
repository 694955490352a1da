//! The MBConv chain space of SPOS/ProxylessNAS as ABS uses it: every searchable layer picks an
//! inverted-residual block (kernel 3/5/7 × expansion 3/6) or, where input and output shapes match,
//! `identity` (the layer is skipped). Its network is [`net`].
//!
//! Skeleton: stem 3×3 conv + BN + ReLU6, the searchable layers grouped in stages (channels, repeats,
//! stride of the first layer), a 1×1 head conv + BN + ReLU6, global average pool, linear. Defaults
//! are sized for 32×32 and 28×28 inputs (stride 1 in the stem, three stride-2 stages).
pub mod net;

use serde::{Deserialize, Serialize};
use tch::nn;

use crate::cost::{out_size, Cost};
use crate::drawing::{BlockRole, ChainBlock, ChainDrawing, Drawing};
use crate::error::{ModelError, Result};
use crate::net::pieces::{PieceKey, Tally};
use crate::net::Network;
use crate::op::Op;
use crate::space::{Arch, ShrinkDefaults, Space, SpaceDef, SpaceKind, SpaceParams};

/// One stage of searchable layers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MobileStage {
    pub channels: usize,
    pub repeats: usize,
    /// Stride of the first layer of the stage (the others use 1).
    pub stride: usize,
}

/// Parameters of the `mobile` space.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MobileParams {
    /// Channel multiplier applied to every layer (rounded to a multiple of 8, at least 8).
    pub width: f64,
    pub stem_channels: usize,
    pub stem_stride: usize,
    pub stages: Vec<MobileStage>,
    pub head_channels: usize,
    pub kernels: Vec<u8>,
    pub expansions: Vec<u8>,
    /// Whether layers whose input and output shapes match may pick `identity`.
    pub identity: bool,
    pub classes: usize,
    pub input_channels: usize,
    pub input_size: usize,
}

impl Default for MobileParams {
    fn default() -> Self {
        let stage = |channels, repeats, stride| MobileStage { channels, repeats, stride };
        MobileParams {
            width: 1.0,
            stem_channels: 16,
            stem_stride: 1,
            stages: vec![
                stage(24, 2, 1),
                stage(40, 2, 2),
                stage(80, 3, 2),
                stage(96, 2, 1),
                stage(192, 2, 2),
            ],
            head_channels: 320,
            kernels: vec![3, 5, 7],
            expansions: vec![3, 6],
            identity: true,
            classes: 10,
            input_channels: 3,
            input_size: 32,
        }
    }
}

/// Shape facts of one searchable layer.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MobileLayer {
    pub c_in: usize,
    pub c_out: usize,
    pub stride: usize,
    pub size_in: usize,
    pub size_out: usize,
}

impl MobileLayer {
    pub fn allows_identity(&self) -> bool {
        self.stride == 1 && self.c_in == self.c_out
    }
}

impl MobileParams {
    /// Channels after the width multiplier.
    pub fn scaled(&self, channels: usize) -> usize {
        let c = (channels as f64 * self.width / 8.0).round() as usize * 8;
        c.max(8)
    }

    pub fn stem_out(&self) -> (usize, usize) {
        (self.scaled(self.stem_channels), out_size(self.input_size, 3, self.stem_stride))
    }

    /// The searchable layers in order.
    pub fn layers(&self) -> Vec<MobileLayer> {
        let (mut c, mut size) = self.stem_out();
        let mut layers = Vec::new();
        for stage in &self.stages {
            let c_out = self.scaled(stage.channels);
            for r in 0..stage.repeats {
                let stride = if r == 0 { stage.stride } else { 1 };
                let size_out = out_size(size, 3, stride);
                layers.push(MobileLayer { c_in: c, c_out, stride, size_in: size, size_out });
                c = c_out;
                size = size_out;
            }
        }
        layers
    }
}

impl SpaceParams for MobileParams {
    const NAME: &'static str = "mobile";
}

impl SpaceDef for MobileParams {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn params_json(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("mobile parameters serialise")
    }

    fn validate(&self) -> Result<()> {
        let bad = |field: &str, reason: String| {
            Err(ModelError::InvalidParam { space: Self::NAME.into(), field: field.into(), reason })
        };
        if !(self.width > 0.0 && self.width <= 16.0) {
            return bad("width", format!("must be a positive number up to 16, got {}", self.width));
        }
        // Upper bounds far above any real network, so that a damaged or mistyped file is an error
        // instead of a network that never finishes building or exhausts the memory.
        let layers: usize = self.stages.iter().map(|s| s.repeats).fold(0, usize::saturating_add);
        let widest =
            self.stages.iter().map(|s| s.channels).chain([self.stem_channels, self.head_channels]).max();
        for (field, value, max) in [
            ("stages", layers, 128),
            ("stages", widest.unwrap_or(0), 8192),
            ("kernels", self.kernels.iter().copied().max().unwrap_or(0) as usize, 15),
            ("expansions", self.expansions.iter().copied().max().unwrap_or(0) as usize, 16),
            ("classes", self.classes, 100_000),
            ("input_channels", self.input_channels, 64),
            ("input_size", self.input_size, 4096),
        ] {
            if value > max {
                return bad(
                    field,
                    format!("{value} is more than the largest supported, {max} (layers, channels or size)"),
                );
            }
        }
        if self.stages.is_empty() || self.stages.iter().any(|s| s.repeats == 0 || s.channels == 0) {
            return bad("stages", "need at least one stage, each with channels ≥ 1 and repeats ≥ 1".into());
        }
        if self.stages.iter().any(|s| s.stride == 0 || s.stride > 2) || !(1..=2).contains(&self.stem_stride) {
            return bad("stages", "strides must be 1 or 2".into());
        }
        if self.kernels.is_empty() || self.kernels.iter().any(|k| k % 2 == 0) {
            return bad("kernels", format!("need odd kernel sizes, got {:?}", self.kernels));
        }
        if self.expansions.is_empty() || self.expansions.contains(&0) {
            return bad("expansions", format!("need expansions ≥ 1, got {:?}", self.expansions));
        }
        if self.classes < 2 {
            return bad("classes", format!("need at least 2 classes, got {}", self.classes));
        }
        if self.input_channels == 0
            || self.input_size == 0
            || self.stem_channels == 0
            || self.head_channels == 0
        {
            return bad("input_size", "sizes and channel counts must be at least 1".into());
        }
        Ok(())
    }

    fn classes(&self) -> usize {
        self.classes
    }

    fn input_shape(&self) -> [usize; 3] {
        [self.input_channels, self.input_size, self.input_size]
    }

    fn for_data(&self, channels: usize, size: usize, classes: usize) -> SpaceKind {
        SpaceKind::new(MobileParams { input_channels: channels, input_size: size, classes, ..self.clone() })
    }

    fn choice_point_names(&self) -> Vec<String> {
        (0..self.layers().len()).map(|l| format!("layer{l}")).collect()
    }

    /// The op set of each layer.
    fn full_ops(&self) -> Vec<Vec<Op>> {
        let mbconvs: Vec<Op> = self
            .kernels
            .iter()
            .flat_map(|&kernel| self.expansions.iter().map(move |&expand| Op::MbConv { kernel, expand }))
            .collect();
        self.layers()
            .iter()
            .map(|l| {
                let mut ops = mbconvs.clone();
                if self.identity && l.allows_identity() {
                    ops.push(Op::Identity);
                }
                ops
            })
            .collect()
    }

    /// The choice points whose op may route the weight copies of layer `l` (strategy 2,
    /// `docs/method.md`): layer `l-1`.
    fn previous_choices(&self, cp: usize) -> Vec<usize> {
        cp.checked_sub(1).into_iter().collect()
    }

    /// `mb_k3_e6,identity,mb_k5_e3,...`: one op per layer.
    fn format_arch(&self, arch: &Arch) -> String {
        arch.ops.iter().map(Op::name).collect::<Vec<_>>().join(",")
    }

    fn read_arch(&self, s: &str) -> Result<Arch> {
        let parts: Vec<&str> = s.trim().split(',').map(str::trim).collect();
        let n = self.layers().len();
        if parts.len() != n {
            return Err(ModelError::MalformedArch {
                arch: s.to_string(),
                reason: format!("expected {n} comma-separated ops (one per layer), got {}", parts.len()),
            });
        }
        Ok(Arch { ops: parts.iter().map(|p| p.parse()).collect::<Result<_>>()? })
    }

    fn cost(&self, arch: &Arch) -> Cost {
        let ops = &arch.ops;
        let mut cost = Cost::default();
        let (stem_c, stem_s) = self.stem_out();
        cost.conv_bn("stem".into(), "conv3x3+bn+relu6", self.input_channels, stem_c, 3, 1, stem_s, true);
        for (l, (layer, op)) in self.layers().iter().zip(ops).enumerate() {
            if let Op::MbConv { kernel, expand } = *op {
                let hidden = layer.c_in * expand as usize;
                let name = format!("layer{l}");
                if expand != 1 {
                    cost.conv_bn(
                        format!("{name}.expand"),
                        "conv1x1+bn+relu6",
                        layer.c_in,
                        hidden,
                        1,
                        1,
                        layer.size_in,
                        true,
                    );
                }
                let k = kernel as usize;
                cost.conv_bn(
                    format!("{name}.depthwise"),
                    &format!("dwconv{k}x{k}+bn+relu6"),
                    hidden,
                    hidden,
                    k,
                    hidden,
                    layer.size_out,
                    true,
                );
                cost.conv_bn(
                    format!("{name}.project"),
                    "conv1x1+bn",
                    hidden,
                    layer.c_out,
                    1,
                    1,
                    layer.size_out,
                    true,
                );
            }
        }
        let last = self.layers().last().map(|l| (l.c_out, l.size_out)).unwrap_or((stem_c, stem_s));
        cost.conv_bn("head".into(), "conv1x1+bn+relu6", last.0, self.head_channels, 1, 1, last.1, true);
        cost.linear("classifier".into(), self.head_channels, self.classes);
        cost
    }
    /// The stem, each searchable layer with the block it picks (kernel and expansion, or skipped),
    /// its channels, stride and output size, then the head and classifier.
    fn drawing(&self, arch: &Arch) -> Drawing {
        let (stem_c, stem_s) = self.stem_out();
        let block =
            |name: String, label: String, detail: String, role| ChainBlock { name, label, detail, role };
        let mut blocks = vec![block(
            "stem".into(),
            "conv 3×3".into(),
            format!("{}→{stem_c} ch, stride {}, {stem_s}×{stem_s}", self.input_channels, self.stem_stride),
            BlockRole::Fixed,
        )];
        for (l, (layer, op)) in self.layers().iter().zip(&arch.ops).enumerate() {
            let (label, role) = match *op {
                Op::MbConv { kernel, expand } => (format!("MBConv k{kernel} e{expand}"), BlockRole::Chosen),
                Op::Identity => ("identity (skipped)".to_string(), BlockRole::Skipped),
                other => (other.name(), BlockRole::Chosen),
            };
            let detail = format!(
                "{}→{} ch, stride {}, {}×{}",
                layer.c_in, layer.c_out, layer.stride, layer.size_out, layer.size_out
            );
            blocks.push(block(format!("layer{l}"), label, detail, role));
        }
        let (last_c, last_s) =
            self.layers().last().map(|l| (l.c_out, l.size_out)).unwrap_or((stem_c, stem_s));
        blocks.push(block(
            "head".into(),
            "conv 1×1".into(),
            format!("{last_c}→{} ch, {last_s}×{last_s}", self.head_channels),
            BlockRole::Fixed,
        ));
        blocks.push(block(
            "classifier".into(),
            "avg pool + linear".into(),
            format!("{}→{} classes", self.head_channels, self.classes),
            BlockRole::Fixed,
        ));
        Drawing::Chain(ChainDrawing { title: "mobile".into(), blocks })
    }

    fn composition(&self, arch: &Arch) -> Vec<(PieceKey, usize)> {
        let mut out = Tally::default();
        out.add(PieceKey::Stem, 1);
        for (l, &op) in arch.ops.iter().enumerate().filter(|(_, &op)| PieceKey::op_emits_nodes(op)) {
            out.add(PieceKey::Op { at: l, op }, 1);
        }
        out.add(PieceKey::Head, 1);
        out.into_vec()
    }

    /// ABS drops 7 candidates per round from the MBConv chain space, down to 10⁶ children.
    fn shrink_defaults(&self, _candidates: usize) -> ShrinkDefaults {
        ShrinkDefaults { drop_per_round: 7, target_size: 1e6, per_choice_point: false }
    }

    fn build(&self, root: &nn::Path, space: &Space) -> Box<dyn Network> {
        Box::new(net::MobileNet::new(root, self, space))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_layers_and_identity_placement() {
        let p = MobileParams::default();
        let layers = p.layers();
        assert_eq!(layers.len(), 11);
        assert_eq!(layers[0], MobileLayer { c_in: 16, c_out: 24, stride: 1, size_in: 32, size_out: 32 });
        assert_eq!(layers.last().unwrap().size_out, 4);
        let ops = p.full_ops();
        // First layer of every stage changes the shape: no identity there.
        let with_identity: Vec<usize> =
            ops.iter().enumerate().filter(|(_, o)| o.contains(&Op::Identity)).map(|(i, _)| i).collect();
        assert_eq!(with_identity, vec![1, 3, 5, 6, 8, 10]);
        assert_eq!(ops[0].len(), 6);
    }

    #[test]
    fn width_scales_to_multiples_of_eight() {
        let p = MobileParams { width: 0.5, ..MobileParams::default() };
        assert_eq!(p.scaled(24), 16);
        assert_eq!(p.scaled(40), 24);
        assert_eq!(p.scaled(16), 8);
    }

    #[test]
    fn mbconv_cost_by_hand() {
        let p = MobileParams {
            stages: vec![MobileStage { channels: 16, repeats: 1, stride: 1 }],
            stem_channels: 8,
            head_channels: 16,
            input_size: 8,
            input_channels: 1,
            classes: 2,
            ..MobileParams::default()
        };
        let cost = p.cost(&Arch { ops: vec![Op::MbConv { kernel: 3, expand: 3 }] });
        // stem 9·1·8 + 16; expand 8·24 + 48; dw 9·24 + 48; project 24·16 + 32; head 16·16 + 32; fc 16·2 + 2
        let params = (72 + 16) + (192 + 48) + (216 + 48) + (384 + 32) + (256 + 32) + 34;
        assert_eq!(cost.params(), params);
        let flops = 72 * 64 + 192 * 64 + 216 * 64 + 384 * 64 + 256 * 64 + 34;
        assert_eq!(cost.flops(), flops);
    }
}
