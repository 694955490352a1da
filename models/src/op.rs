//! Operator candidates: the ops a choice point can pick.
//!
//! One enum covers every space so that spaces, archs and reports share a single vocabulary. Names
//! follow NAS-Bench-201 (`nor_conv_3x3`, `avg_pool_3x3`, ...) so arch strings can be looked up in
//! NB201 tools; the MBConv ops of the `mobile` space are named `mb_k{kernel}_e{expansion}`; the ops of
//! the `darts` space keep the names of the DARTS code (Liu et al., ICLR 2019: `max_pool_3x3`,
//! `sep_conv_3x3`, `dil_conv_5x5`, ...), so published genotypes read as they are written.
use std::fmt;
use std::str::FromStr;

use crate::error::ModelError;

/// One operator candidate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Op {
    /// The zero op: cuts every path through its edge.
    None,
    /// Identity on a cell edge (NB201's `skip_connect`).
    SkipConnect,
    /// ReLU → 1×1 conv → BN.
    NorConv1x1,
    /// ReLU → 3×3 conv → BN.
    NorConv3x3,
    /// 3×3 average pooling, stride 1, padding 1, padding not counted.
    AvgPool3x3,
    /// Inverted residual block: 1×1 expand, k×k depthwise, 1×1 project (ProxylessNAS/SPOS MBConv).
    MbConv { kernel: u8, expand: u8 },
    /// Skips a whole layer of a chain space (only where input and output shapes match).
    Identity,
    /// 3×3 max pooling, padding 1 (DARTS's `max_pool_3x3`; stride 2 on the inputs of a reduction cell).
    MaxPool3x3,
    /// DARTS's separable conv `sep_conv_{k}x{k}`: (ReLU, depthwise k×k, pointwise 1×1, BN) twice.
    SepConv { kernel: u8 },
    /// DARTS's dilated conv `dil_conv_{k}x{k}`: ReLU, depthwise k×k with dilation 2, pointwise 1×1, BN.
    DilConv { kernel: u8 },
}

impl Op {
    /// The five ops of NAS-Bench-201, in NB201's order.
    pub const NB201: [Op; 5] = [Op::None, Op::SkipConnect, Op::NorConv1x1, Op::NorConv3x3, Op::AvgPool3x3];

    /// The eight ops of DARTS, in the order of the DARTS code's `PRIMITIVES`.
    pub const DARTS: [Op; 8] = [
        Op::None,
        Op::MaxPool3x3,
        Op::AvgPool3x3,
        Op::SkipConnect,
        Op::SepConv { kernel: 3 },
        Op::SepConv { kernel: 5 },
        Op::DilConv { kernel: 3 },
        Op::DilConv { kernel: 5 },
    ];

    /// Every op with a fixed name (the others, `mb_k{kernel}_e{expansion}`, `sep_conv_{k}x{k}` and
    /// `dil_conv_{k}x{k}`, have parameters).
    pub const NAMED: [Op; 7] = [
        Op::None,
        Op::SkipConnect,
        Op::NorConv1x1,
        Op::NorConv3x3,
        Op::AvgPool3x3,
        Op::Identity,
        Op::MaxPool3x3,
    ];

    /// Every way to write an op: the fixed names, then the patterns of the ops with parameters.
    pub fn spellings() -> Vec<String> {
        let patterns = ["mb_k<kernel>_e<expansion>", "sep_conv_<k>x<k>", "dil_conv_<k>x<k>"];
        Op::NAMED.iter().map(Op::name).chain(patterns.map(String::from)).collect()
    }

    /// The name used in arch strings and JSON files.
    pub fn name(&self) -> String {
        match self {
            Op::None => "none".into(),
            Op::SkipConnect => "skip_connect".into(),
            Op::NorConv1x1 => "nor_conv_1x1".into(),
            Op::NorConv3x3 => "nor_conv_3x3".into(),
            Op::AvgPool3x3 => "avg_pool_3x3".into(),
            Op::MbConv { kernel, expand } => format!("mb_k{kernel}_e{expand}"),
            Op::Identity => "identity".into(),
            Op::MaxPool3x3 => "max_pool_3x3".into(),
            Op::SepConv { kernel } => format!("sep_conv_{kernel}x{kernel}"),
            Op::DilConv { kernel } => format!("dil_conv_{kernel}x{kernel}"),
        }
    }

    /// Whether the op owns trainable weights (and therefore gets weight copies under strategy 2).
    /// `skip_connect` is weight-free as an op even though, at stride 2 in a DARTS reduction cell, its
    /// module is a FactorizedReduce with two convs.
    pub fn has_weights(&self) -> bool {
        matches!(
            self,
            Op::NorConv1x1 | Op::NorConv3x3 | Op::MbConv { .. } | Op::SepConv { .. } | Op::DilConv { .. }
        )
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

impl FromStr for Op {
    type Err = ModelError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let op = match s {
            "none" => Op::None,
            "skip_connect" => Op::SkipConnect,
            "nor_conv_1x1" => Op::NorConv1x1,
            "nor_conv_3x3" => Op::NorConv3x3,
            "avg_pool_3x3" => Op::AvgPool3x3,
            "identity" => Op::Identity,
            "max_pool_3x3" => Op::MaxPool3x3,
            other => parse_mbconv(other)
                .or_else(|| parse_square(other, "sep_conv_").map(|kernel| Op::SepConv { kernel }))
                .or_else(|| parse_square(other, "dil_conv_").map(|kernel| Op::DilConv { kernel }))
                .ok_or_else(|| ModelError::UnknownOp {
                    name: other.to_string(),
                    expected: Op::spellings().join(", "),
                })?,
        };
        Ok(op)
    }
}

fn parse_mbconv(s: &str) -> Option<Op> {
    let rest = s.strip_prefix("mb_k")?;
    let (kernel, expand) = rest.split_once("_e")?;
    let kernel: u8 = kernel.parse().ok()?;
    let expand: u8 = expand.parse().ok()?;
    (kernel % 2 == 1 && kernel >= 1 && expand >= 1).then_some(Op::MbConv { kernel, expand })
}

/// The odd kernel `k` of `{prefix}{k}x{k}` (DARTS's conv names), `k ≥ 3`.
fn parse_square(s: &str, prefix: &str) -> Option<u8> {
    let (a, b) = s.strip_prefix(prefix)?.split_once('x')?;
    let k: u8 = a.parse().ok()?;
    (a == b && k >= 3 && k % 2 == 1 && a == k.to_string()).then_some(k)
}

impl serde::Serialize for Op {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.name())
    }
}

impl<'de> serde::Deserialize<'de> for Op {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        let more = [Op::Identity, Op::MbConv { kernel: 5, expand: 6 }, Op::SepConv { kernel: 7 }];
        for op in Op::NAMED.iter().chain(&Op::DARTS).chain(&more) {
            assert_eq!(op.name().parse::<Op>().unwrap(), *op);
        }
        let names: Vec<String> = Op::DARTS.iter().map(Op::name).collect();
        let primitives = [
            "none",
            "max_pool_3x3",
            "avg_pool_3x3",
            "skip_connect",
            "sep_conv_3x3",
            "sep_conv_5x5",
            "dil_conv_3x3",
            "dil_conv_5x5",
        ];
        assert_eq!(names, primitives);
        // Every op without parameters has its fixed name listed.
        let parametric = |op: &&Op| matches!(op, Op::MbConv { .. } | Op::SepConv { .. } | Op::DilConv { .. });
        assert!(Op::NB201
            .iter()
            .chain(&Op::DARTS)
            .filter(|op| !parametric(op))
            .all(|op| Op::NAMED.contains(op)));
    }

    #[test]
    fn unknown_ops_are_errors() {
        let err = "conv_3x3".parse::<Op>().unwrap_err().to_string();
        for spelling in Op::spellings() {
            assert!(err.contains(&spelling), "{err} lacks {spelling}");
        }
        assert!("mb_k4_e3".parse::<Op>().is_err());
        assert!("mb_k3_e".parse::<Op>().is_err());
        for bad in
            ["sep_conv_3x5", "sep_conv_4x4", "dil_conv_1x1", "sep_conv_03x03", "max_pool_5x5", "sep_conv_x"]
        {
            assert!(bad.parse::<Op>().is_err(), "{bad}");
        }
    }

    #[test]
    fn darts_convs_have_weights_and_pools_do_not() {
        let weighted: Vec<Op> = Op::DARTS.into_iter().filter(Op::has_weights).collect();
        let convs = [3, 5]
            .map(|kernel| Op::SepConv { kernel })
            .into_iter()
            .chain([3, 5].map(|kernel| Op::DilConv { kernel }));
        assert_eq!(weighted, convs.collect::<Vec<_>>());
    }
}
