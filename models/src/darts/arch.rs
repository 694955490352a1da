//! Arch text of the darts space: one op per choice point, written as a genotype when it is one, and
//! otherwise edge by edge.
//!
//! A stand-alone DARTS child is a genotype (two kept inputs per node), but a child of the SPOS
//! supernet has an op on every edge, `none` included, so the space needs a second form. The edge form
//! writes each cell like an NAS-Bench-201 arch string, node by node (`|op~input|` for each input of
//! node 2, `+`, node 3, …):
//!
//! ```text
//! normal=|sep_conv_3x3~0|none~1|+|skip_connect~0|none~1|max_pool_3x3~2|+|...|+|...| reduce=|...|+|...|+|...|+|...|
//! ```
//!
//! [`DartsParams::parse_arch`] reads either form, or the name of a published genotype.
use super::cell::{self, INPUTS, LAST};
use super::{CellKind, DartsParams, Genotype};
use crate::error::{ModelError, Result};
use crate::op::Op;

impl DartsParams {
    /// The genotype text of `ops` (28, one per choice point) if every node keeps exactly two inputs,
    /// else the edge form.
    pub fn format_arch(&self, ops: &[Op]) -> String {
        match Genotype::from_ops(ops) {
            Ok(g) => g.to_string(),
            Err(_) => format_edges(ops),
        }
    }

    /// Reads a published genotype's name, genotype text, or the edge form.
    pub fn parse_arch(&self, s: &str) -> Result<Vec<Op>> {
        let t = s.trim();
        if t.starts_with("normal=") || t.starts_with('|') {
            parse_edges(t)
        } else {
            Ok(t.parse::<Genotype>()?.to_ops())
        }
    }
}

/// `normal=|op~0|op~1|+|...| reduce=|...|`.
pub fn format_edges(ops: &[Op]) -> String {
    let cells = CellKind::BOTH.map(|kind| {
        let nodes: Vec<String> = (INPUTS..=LAST)
            .map(|j| {
                let inputs: String =
                    (0..j).map(|i| format!("{}~{i}|", ops[kind.offset() + cell::edge_index(j, i)])).collect();
                format!("|{inputs}")
            })
            .collect();
        format!("{}={}", kind.name(), nodes.join("+"))
    });
    cells.join(" ")
}

fn parse_edges(s: &str) -> Result<Vec<Op>> {
    let bad = |reason: String| ModelError::MalformedArch { arch: s.to_string(), reason };
    let parts: Vec<&str> = s.split_whitespace().collect();
    let mut ops = Vec::with_capacity(2 * cell::EDGES);
    if parts.len() != 2 {
        return Err(bad(format!(
            "expected 'normal=|...| reduce=|...|' (two cells separated by a space), got {} parts",
            parts.len()
        )));
    }
    for (kind, part) in CellKind::BOTH.into_iter().zip(parts) {
        let prefix = format!("{}=", kind.name());
        let Some(body) = part.strip_prefix(&prefix) else {
            return Err(bad(format!("the {} cell must start with '{prefix}'", kind.name())));
        };
        let nodes: Vec<&str> = body.split('+').collect();
        if nodes.len() != LAST - 1 {
            return Err(bad(format!(
                "{}: expected 4 node groups (nodes 2, 3, 4, 5) separated by '+', got {}",
                kind.name(),
                nodes.len()
            )));
        }
        for (n, group) in nodes.iter().enumerate() {
            let j = INPUTS + n;
            let at = format!("{}, node {j}", kind.name());
            let Some(inner) = group.strip_prefix('|').and_then(|g| g.strip_suffix('|')) else {
                return Err(bad(format!("{at}: '{group}' must start and end with '|'")));
            };
            let inputs: Vec<&str> = inner.split('|').collect();
            if inputs.len() != j {
                return Err(bad(format!(
                    "{at}: expected {j} inputs (op~0 .. op~{}), got {}",
                    j - 1,
                    inputs.len()
                )));
            }
            for (i, input) in inputs.iter().enumerate() {
                let Some((op, from)) = input.split_once('~') else {
                    return Err(bad(format!("{at}: '{input}' must be OP~INPUT")));
                };
                if from != i.to_string() {
                    return Err(bad(format!("{at}: input {i} is written as '~{from}'")));
                }
                ops.push(op.parse::<Op>()?);
            }
        }
    }
    Ok(ops)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn genotypes_print_as_genotypes_and_other_archs_edge_by_edge() {
        let p = DartsParams::default();
        let v2 = Genotype::named("DARTS_V2").unwrap();
        // Written as a genotype (inputs of each node in ascending order), read back to the same arch.
        let text = p.format_arch(&v2.to_ops());
        assert!(
            text.starts_with(
                "Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0)"
            ),
            "{text}"
        );
        assert_eq!(p.parse_arch(&text).unwrap(), v2.to_ops());
        assert_eq!(p.parse_arch("DARTS_V2").unwrap(), v2.to_ops());
        assert_eq!(p.parse_arch(&v2.to_string()).unwrap(), v2.to_ops());

        let mut ops = v2.to_ops();
        ops[cell::edge_index(5, 1)] = Op::AvgPool3x3;
        let text = p.format_arch(&ops);
        assert!(
            text.starts_with(
                "normal=|sep_conv_3x3~0|sep_conv_3x3~1|+|sep_conv_3x3~0|sep_conv_3x3~1|none~2|+"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "+|skip_connect~0|avg_pool_3x3~1|dil_conv_3x3~2|none~3|none~4| reduce=|max_pool_3x3~0|"
            ),
            "{text}"
        );
        assert_eq!(p.parse_arch(&text).unwrap(), ops);
        // The edge form of a genotype reads back too.
        assert_eq!(p.parse_arch(&format_edges(&v2.to_ops())).unwrap(), v2.to_ops());
    }

    #[test]
    fn bad_edge_form_names_the_cell_and_node() {
        let p = DartsParams::default();
        let good = format_edges(&[Op::SkipConnect; 28]);
        let cases = [
            (good.replacen(" reduce=", " reducer=", 1), "the reduce cell must start with 'reduce='"),
            (
                good.replacen("skip_connect~1|+", "skip_connect~2|+", 1),
                "normal, node 2: input 1 is written as '~2'",
            ),
            (good.replacen("|skip_connect~2|+", "|+", 1), "normal, node 3: expected 3 inputs"),
            (good.split(' ').next().unwrap().to_string(), "two cells separated by a space"),
            (good.replacen("+", "", 1), "normal: expected 4 node groups"),
        ];
        for (text, expected) in cases {
            let msg = p.parse_arch(&text).unwrap_err().to_string();
            assert!(msg.contains(expected), "{msg}");
        }
        assert!(p
            .parse_arch(&good.replacen("skip_connect", "conv", 1))
            .unwrap_err()
            .to_string()
            .contains("unknown op 'conv'"));
    }
}
