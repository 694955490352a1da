//! NB201's arch strings: `|op~0|+|op~0|op~1|+|...|`, node by node, each input written `op~source`,
//! as NAS-Bench-201's API prints them, so strings can be looked up in NB201's tools.
use super::Nb201Params;
use crate::error::{ModelError, Result};
use crate::op::Op;

/// `|op~0|+|op~0|op~1|+|...|`
pub(super) fn format(p: &Nb201Params, ops: &[Op]) -> String {
    let mut nodes = Vec::new();
    let mut k = 0;
    for j in 1..p.nodes {
        let mut s = String::from("|");
        for i in 0..j {
            s.push_str(&format!("{}~{i}|", ops[k]));
            k += 1;
        }
        nodes.push(s);
    }
    nodes.join("+")
}

pub(super) fn parse(p: &Nb201Params, s: &str) -> Result<Vec<Op>> {
    let bad = |reason: String| Err(ModelError::MalformedArch { arch: s.to_string(), reason });
    let nodes: Vec<&str> = s.trim().split('+').collect();
    if nodes.len() != p.nodes - 1 {
        return bad(format!(
            "expected {} node groups separated by '+' (a {}-node cell), got {}",
            p.nodes - 1,
            p.nodes,
            nodes.len()
        ));
    }
    let mut ops = Vec::new();
    for (j, group) in nodes.iter().enumerate() {
        let node = j + 1;
        let Some(inner) = group.strip_prefix('|').and_then(|g| g.strip_suffix('|')) else {
            return bad(format!("node {node}: '{group}' must start and end with '|'"));
        };
        let inputs: Vec<&str> = inner.split('|').collect();
        if inputs.len() != node {
            return bad(format!("node {node} must have {node} inputs, got {}", inputs.len()));
        }
        for (i, input) in inputs.iter().enumerate() {
            let Some((op, from)) = input.split_once('~') else {
                return bad(format!("'{input}' must be OP~INPUT"));
            };
            if from != i.to_string() {
                return bad(format!("node {node}: input {i} is written as '~{from}'"));
            }
            ops.push(op.parse::<Op>()?);
        }
    }
    Ok(ops)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arch_strings_round_trip_and_reject_garbage() {
        let p = Nb201Params::default();
        let s = "|nor_conv_3x3~0|+|none~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_1x1~1|none~2|";
        let ops = parse(&p, s).unwrap();
        assert_eq!(ops[1], Op::None);
        assert_eq!(format(&p, &ops), s);
        for bad in [
            "",
            "|nor_conv_3x3~0|+|none~0|avg_pool_3x3~1|",
            "|nor_conv_3x3~0|+|none~0|avg_pool_3x3~2|+|skip_connect~0|nor_conv_1x1~1|none~2|",
            "|conv~0|+|none~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_1x1~1|none~2|",
            "nor_conv_3x3~0|+|none~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_1x1~1|none~2|",
        ] {
            assert!(parse(&p, bad).is_err(), "{bad}");
        }
    }
}
