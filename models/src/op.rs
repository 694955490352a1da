//! Operator candidates: the ops a choice point can pick.
//!
//! One enum covers every space so that spaces, archs and reports share a single vocabulary. Names
//! follow NAS-Bench-201 (`nor_conv_3x3`, `avg_pool_3x3`, ...) so arch strings can be looked up in
//! NB201 tools; the MBConv ops of the `mobile` space are named `mb_k{kernel}_e{expansion}`.
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
}

impl Op {
    /// The five ops of NAS-Bench-201, in NB201's order.
    pub const NB201: [Op; 5] = [Op::None, Op::SkipConnect, Op::NorConv1x1, Op::NorConv3x3, Op::AvgPool3x3];

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
        }
    }

    /// Whether the op owns trainable weights (and therefore gets weight copies under strategy 2).
    pub fn has_weights(&self) -> bool {
        matches!(self, Op::NorConv1x1 | Op::NorConv3x3 | Op::MbConv { .. })
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
            other => parse_mbconv(other).ok_or_else(|| ModelError::UnknownOp(other.to_string()))?,
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
        for op in Op::NB201.iter().chain(&[Op::Identity, Op::MbConv { kernel: 5, expand: 6 }]) {
            assert_eq!(op.name().parse::<Op>().unwrap(), *op);
        }
    }

    #[test]
    fn unknown_ops_are_errors() {
        assert!("conv_3x3".parse::<Op>().is_err());
        assert!("mb_k4_e3".parse::<Op>().is_err());
        assert!("mb_k3_e".parse::<Op>().is_err());
    }
}
