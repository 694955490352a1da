//! Genotypes: the stand-alone children of the DARTS space as the DARTS code writes them.
//!
//! A genotype keeps, for each intermediate node of the normal and of the reduction cell, two inputs
//! with one op each, and says which nodes the cell output concatenates:
//!
//! ```text
//! Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ...], normal_concat=[2, 3, 4, 5],
//!          reduce=[('max_pool_3x3', 0), ...], reduce_concat=[2, 3, 4, 5])
//! ```
//!
//! The `normal` and `reduce` lists hold two `('op', input)` pairs per node 2, 3, 4, 5 in turn; the
//! concat is `[2, 3, 4, 5]` or `range(2, 6)` (both spellings occur in published genotypes). Text is
//! read whitespace-tolerant, with keyword or positional fields, optionally as an assignment
//! (`PDARTS = Genotype(...)`), and written in the DARTS code's own `print` form. Published genotypes
//! are also known by name ([`Genotype::NAMES`]).
//!
//! As an arch of the space a genotype is one op per choice point: each node's two chosen edges carry
//! their op and every other edge is `none`.
use std::fmt;
use std::str::FromStr;

use super::cell::{self, CONCAT, INPUTS, NODES};
use super::pyparse::{self, PyValue};
use super::{is_darts_op, CellKind};
use crate::error::{ModelError, Result};
use crate::op::Op;

/// The two `(op, input)` entries of one intermediate node, in the order written.
pub type NodeGenotype = [(Op, usize); 2];

/// A DARTS genotype: the kept edges of the normal and of the reduction cell.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Genotype {
    /// Nodes 2, 3, 4, 5 of the normal cell.
    pub normal: [NodeGenotype; NODES],
    /// Nodes 2, 3, 4, 5 of the reduction cell.
    pub reduce: [NodeGenotype; NODES],
}

/// Published genotypes, verbatim from their papers' code: `DARTS_V1` (first order) and `DARTS_V2`
/// (second order; the DARTS code's `DARTS` is an alias for it) from `cnn/genotypes.py` of the DARTS
/// code (github.com/quark0/darts; Liu et al., ICLR 2019), `PDARTS` from `genotypes.py` of the P-DARTS
/// code (github.com/chenxin061/pdarts; Chen et al., ICCV 2019).
const PUBLISHED: [(&str, &str); 3] = [
    (
        "DARTS_V1",
        "Genotype(normal=[('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('skip_connect', 0), ('sep_conv_3x3', 1), ('skip_connect', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('skip_connect', 2)], normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 0), ('max_pool_3x3', 0), ('skip_connect', 2), ('skip_connect', 2), ('avg_pool_3x3', 0)], reduce_concat=[2, 3, 4, 5])",
    ),
    (
        "DARTS_V2",
        "Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), ('dil_conv_3x3', 2)], normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 1), ('max_pool_3x3', 0), ('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)], reduce_concat=[2, 3, 4, 5])",
    ),
    (
        "PDARTS",
        "Genotype(normal=[('skip_connect', 0), ('dil_conv_3x3', 1), ('skip_connect', 0),('sep_conv_3x3', 1), ('sep_conv_3x3', 1), ('sep_conv_3x3', 3), ('sep_conv_3x3',0), ('dil_conv_5x5', 4)], normal_concat=range(2, 6), reduce=[('avg_pool_3x3', 0), ('sep_conv_5x5', 1), ('sep_conv_3x3', 0), ('dil_conv_5x5', 2), ('max_pool_3x3', 0), ('dil_conv_3x3', 1), ('dil_conv_3x3', 1), ('dil_conv_5x5', 3)], reduce_concat=range(2, 6))",
    ),
];

/// The fields of a genotype, in the order of the DARTS code's `namedtuple`.
const FIELDS: [&str; 4] = ["normal", "normal_concat", "reduce", "reduce_concat"];

fn err(at: impl Into<String>, reason: impl Into<String>) -> ModelError {
    ModelError::Genotype { at: at.into(), reason: reason.into() }
}

impl Genotype {
    /// The names of the published genotypes (case does not matter; `DARTS` is `DARTS_V2`).
    pub const NAMES: [&'static str; 3] = ["DARTS_V1", "DARTS_V2", "PDARTS"];

    /// A published genotype by name.
    pub fn named(name: &str) -> Option<Genotype> {
        let name = name.trim().to_ascii_uppercase();
        let name = if name == "DARTS" { "DARTS_V2".to_string() } else { name };
        let (_, text) = PUBLISHED.iter().find(|(n, _)| *n == name)?;
        Some(parse_text(text).expect("published genotypes parse"))
    }

    /// The nodes of one cell.
    pub fn cell(&self, kind: CellKind) -> &[NodeGenotype; NODES] {
        match kind {
            CellKind::Normal => &self.normal,
            CellKind::Reduce => &self.reduce,
        }
    }

    /// The genotype as one op per choice point of the darts space (28): the kept edges carry their
    /// op, every other edge `none`.
    pub fn to_ops(&self) -> Vec<Op> {
        let mut ops = vec![Op::None; 2 * cell::EDGES];
        for kind in CellKind::BOTH {
            for (n, node) in self.cell(kind).iter().enumerate() {
                for &(op, from) in node {
                    ops[kind.offset() + cell::edge_index(INPUTS + n, from)] = op;
                }
            }
        }
        ops
    }

    /// The genotype of an arch whose every node has exactly two edges other than `none` (inputs in
    /// ascending order).
    pub fn from_ops(ops: &[Op]) -> Result<Genotype> {
        assert_eq!(ops.len(), 2 * cell::EDGES, "a darts arch has one op per choice point");
        let cell_of = |kind: CellKind| -> Result<[NodeGenotype; NODES]> {
            let mut nodes = [[(Op::None, 0); 2]; NODES];
            for (n, node) in nodes.iter_mut().enumerate() {
                let j = INPUTS + n;
                let kept: Vec<(Op, usize)> = (0..j)
                    .map(|i| (ops[kind.offset() + cell::edge_index(j, i)], i))
                    .filter(|(op, _)| *op != Op::None)
                    .collect();
                let [a, b] = kept[..] else {
                    return Err(err(
                        format!("{}, node {j}", kind.name()),
                        format!("has {} inputs other than none, a genotype node keeps exactly 2", kept.len()),
                    ));
                };
                *node = [a, b];
            }
            Ok(nodes)
        };
        Ok(Genotype { normal: cell_of(CellKind::Normal)?, reduce: cell_of(CellKind::Reduce)? })
    }
}

/// The DARTS code's `print` form: `Genotype(normal=[('sep_conv_3x3', 0), ...], normal_concat=[2, 3, 4,
/// 5], reduce=[...], reduce_concat=[2, 3, 4, 5])`.
impl fmt::Display for Genotype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let concat = format!("[{}]", CONCAT.map(|n| n.to_string()).join(", "));
        write!(
            f,
            "Genotype(normal={}, normal_concat={concat}, reduce={}, reduce_concat={concat})",
            cell_text(&self.normal),
            cell_text(&self.reduce)
        )
    }
}

/// `[('op', input), ...]` of one cell.
fn cell_text(nodes: &[NodeGenotype; NODES]) -> String {
    let entries: Vec<String> = nodes.iter().flatten().map(|(op, from)| format!("('{op}', {from})")).collect();
    format!("[{}]", entries.join(", "))
}

/// A published name or genotype text.
impl FromStr for Genotype {
    type Err = ModelError;

    fn from_str(s: &str) -> Result<Genotype> {
        let t = s.trim();
        if !t.is_empty() && t.chars().all(|c| c.is_alphanumeric() || c == '_') {
            return Genotype::named(t).ok_or_else(|| {
                err(
                    "text",
                    format!(
                        "'{t}' is not a published genotype: expected one of {} or {}",
                        Genotype::NAMES.join(", "),
                        SHAPE
                    ),
                )
            });
        }
        parse_text(s)
    }
}

/// What genotype text looks like, for errors.
const SHAPE: &str = "Genotype(normal=[('op', input), ...], normal_concat=[2, 3, 4, 5], reduce=[...], reduce_concat=[2, 3, 4, 5])";

fn parse_text(text: &str) -> Result<Genotype> {
    let (_, value) = pyparse::parse(text).map_err(|e| err("text", format!("{e}; expected {SHAPE}")))?;
    let PyValue::Call { name, args } = value else {
        return Err(err("text", format!("expected {SHAPE}, got {}", value.describe())));
    };
    if name != "Genotype" {
        return Err(err("text", format!("expected {SHAPE}, got a call of '{name}'")));
    }
    let mut fields: [Option<PyValue>; 4] = Default::default();
    for (k, (keyword, value)) in args.into_iter().enumerate() {
        let slot = match keyword {
            Some(key) => FIELDS.iter().position(|f| *f == key).ok_or_else(|| {
                err(key.as_str(), format!("unknown field: expected one of {}", FIELDS.join(", ")))
            })?,
            None if k < FIELDS.len() => k,
            None => {
                return Err(err(
                    "text",
                    format!("Genotype takes {} fields ({}), got more", FIELDS.len(), FIELDS.join(", ")),
                ))
            }
        };
        if fields[slot].replace(value).is_some() {
            return Err(err(FIELDS[slot], "given twice"));
        }
    }
    let [normal, normal_concat, reduce, reduce_concat] = fields;
    let cell =
        |kind: CellKind, list: Option<PyValue>, concat: Option<PyValue>| -> Result<[NodeGenotype; NODES]> {
            let field = kind.name();
            let list =
                list.ok_or_else(|| err(field, format!("is missing: expected {field}=[('op', input), ...]")))?;
            let nodes = parse_cell(field, list)?;
            let concat_field = format!("{field}_concat");
            let concat = concat.ok_or_else(|| {
                err(
                    concat_field.as_str(),
                    format!("is missing: expected {concat_field}=[2, 3, 4, 5] (or range(2, 6))"),
                )
            })?;
            parse_concat(&concat_field, concat)?;
            Ok(nodes)
        };
    Ok(Genotype {
        normal: cell(CellKind::Normal, normal, normal_concat)?,
        reduce: cell(CellKind::Reduce, reduce, reduce_concat)?,
    })
}

/// The ops a genotype may keep: every darts op but `none`.
fn chosen_op_names() -> String {
    let names: Vec<String> = Op::DARTS.iter().filter(|op| **op != Op::None).map(Op::name).collect();
    names.join(", ")
}

fn parse_cell(field: &str, list: PyValue) -> Result<[NodeGenotype; NODES]> {
    let PyValue::List(entries) = list else {
        return Err(err(field, format!("expected a list of ('op', input) pairs, got {}", list.describe())));
    };
    let n = entries.len();
    if n != 2 * NODES {
        let reason = if n < 2 * NODES && n % 2 == 1 {
            return Err(err(
                format!("{field}, node {}", INPUTS + n / 2),
                "has 1 input, expected 2 (the list holds two ('op', input) pairs per node 2, 3, 4, 5)",
            ));
        } else if n < 2 * NODES {
            format!("has {} nodes ({n} pairs), expected {NODES}: two ('op', input) pairs for each of nodes 2, 3, 4, 5", n / 2)
        } else {
            format!("has {n} ('op', input) pairs, expected {}: two per node 2, 3, 4, 5 (a node with 3 inputs, or a fifth node, is not in the darts space)", 2 * NODES)
        };
        return Err(err(field, reason));
    }
    let mut nodes = [[(Op::None, 0); 2]; NODES];
    for (k, entry) in entries.into_iter().enumerate() {
        let j = INPUTS + k / 2;
        let at = format!("{field}, node {j}");
        let (name, from) = match &entry {
            PyValue::Tuple(t) => match &t[..] {
                [PyValue::Str(name), PyValue::Int(from)] => (name.clone(), *from),
                _ => return Err(err(at, format!("expected ('op', input), got {}", entry.describe()))),
            },
            _ => return Err(err(at, format!("expected ('op', input), got {}", entry.describe()))),
        };
        let op = match name.parse::<Op>() {
            Ok(Op::None) => {
                return Err(err(
                    at,
                    format!(
                        "'none' cannot be kept: a genotype lists the two edges a node keeps, with one of {}",
                        chosen_op_names()
                    ),
                ))
            }
            Ok(op) if is_darts_op(op) => op,
            _ => return Err(err(at, format!("unknown op '{name}': expected one of {}", chosen_op_names()))),
        };
        if from < 0 || from as usize >= j {
            return Err(err(
                at,
                format!("input {from} is not before the node: node {j} reads 0..={} (0 and 1 are the cell inputs)", j - 1),
            ));
        }
        nodes[k / 2][k % 2] = (op, from as usize);
    }
    for (n, node) in nodes.iter().enumerate() {
        if node[0].1 == node[1].1 {
            return Err(err(
                format!("{field}, node {}", INPUTS + n),
                format!(
                    "both entries read input {}: a node keeps two different inputs (one op per edge)",
                    node[0].1
                ),
            ));
        }
    }
    Ok(nodes)
}

fn parse_concat(field: &str, value: PyValue) -> Result<()> {
    let got: Option<Vec<i64>> = match &value {
        PyValue::List(items) => {
            items.iter().map(|v| if let PyValue::Int(i) = v { Some(*i) } else { None }).collect()
        }
        PyValue::Call { name, args } if name == "range" => {
            let (a, b) = match &args[..] {
                [(None, PyValue::Int(a)), (None, PyValue::Int(b))] => (*a, *b),
                [(None, PyValue::Int(b))] => (0, *b),
                _ => return Err(err(field, format!("expected range(2, 6), got {}", value.describe()))),
            };
            // A cell has a handful of nodes: a longer range is refused before it is spelt out (a
            // range of 10^9 would otherwise fill the memory).
            if b.saturating_sub(a) > 64 {
                return Err(err(
                    field,
                    format!(
                        "range({a}, {b}) lists {} nodes, expected the {NODES} intermediate nodes range(2, 6)",
                        b.saturating_sub(a)
                    ),
                ));
            }
            Some((a..b).collect())
        }
        _ => None,
    };
    let expected: Vec<i64> = CONCAT.iter().map(|&n| n as i64).collect();
    match got {
        Some(nodes) if nodes == expected => Ok(()),
        Some(nodes) => Err(err(
            field,
            format!(
                "got {nodes:?}, expected the {NODES} intermediate nodes [2, 3, 4, 5] (or range(2, 6)): the darts space concatenates every intermediate node"
            ),
        )),
        None => Err(err(field, format!("expected [2, 3, 4, 5] or range(2, 6), got {}", value.describe()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_huge_concat_range_is_refused_without_spelling_it_out() {
        // Found by the darts_arch fuzz target: range(1, 333333339) ran out of memory.
        let text = "Genotype(normal=[('skip_connect', 0), ('dil_conv_3x3', 1), ('skip_connect', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 1), ('sep_conv_3x3', 3), ('sep_conv_3x3', 0), ('dil_conv_5x5', 4)], normal_concat=range(1, 333333339), reduce=[('skip_connect', 0), ('dil_conv_3x3', 1), ('skip_connect', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 1), ('sep_conv_3x3', 3), ('sep_conv_3x3', 0), ('dil_conv_5x5', 4)], reduce_concat=range(2, 6))";
        let e = text.parse::<Genotype>().unwrap_err().to_string();
        assert!(
            e.contains("normal_concat") && e.contains("range(1, 333333339) lists 333333338 nodes"),
            "{e}"
        );
    }

    #[test]
    fn published_genotypes_round_trip() {
        for (name, text) in PUBLISHED {
            let g = Genotype::named(name).unwrap();
            let written = g.to_string();
            assert_eq!(written.parse::<Genotype>().unwrap(), g, "{name}");
            assert_eq!(name.parse::<Genotype>().unwrap(), g);
            if !text.contains("range") {
                // The DARTS code's own print form, character for character.
                assert_eq!(written, text, "{name}");
            }
            // Through the arch: the same edges and ops (inputs then in ascending order).
            let ops = g.to_ops();
            assert_eq!(ops.iter().filter(|op| **op != Op::None).count(), 16, "{name}");
            assert_eq!(Genotype::from_ops(&ops).unwrap().to_ops(), ops, "{name}");
        }
        assert_eq!(Genotype::named("darts"), Genotype::named("DARTS_V2"));
    }

    #[test]
    fn pdarts_values() {
        let g = Genotype::named("PDARTS").unwrap();
        let (sep3, dil3, dil5) =
            (Op::SepConv { kernel: 3 }, Op::DilConv { kernel: 3 }, Op::DilConv { kernel: 5 });
        assert_eq!(g.normal[0], [(Op::SkipConnect, 0), (dil3, 1)]);
        assert_eq!(g.normal[3], [(sep3, 0), (dil5, 4)]);
        assert_eq!(g.reduce[0], [(Op::AvgPool3x3, 0), (Op::SepConv { kernel: 5 }, 1)]);
        assert_eq!(g.reduce[3], [(dil3, 1), (dil5, 3)]);
        // Edge 5<-4 of the normal cell is choice point 13.
        assert_eq!(g.to_ops()[13], dil5);
    }

    #[test]
    fn text_is_read_whitespace_tolerant_with_keywords_or_positions() {
        let v2 = Genotype::named("DARTS_V2").unwrap();
        let spaced = v2.to_string().replace(", ", " ,\n   ").replace('(', "( ").replace("[2", "[ 2");
        assert_eq!(spaced.parse::<Genotype>().unwrap(), v2);
        let shuffled = format!(
            "DARTS_V2 = Genotype(reduce_concat=range(2, 6), reduce={}, normal_concat=range(2,6), normal={},)  # V2",
            cell_text(&v2.reduce),
            cell_text(&v2.normal),
        );
        assert_eq!(shuffled.parse::<Genotype>().unwrap(), v2);
        let positional = v2
            .to_string()
            .replace("normal=", "")
            .replace("normal_concat=", "")
            .replace("reduce=", "")
            .replace("reduce_concat=", "");
        assert_eq!(positional.parse::<Genotype>().unwrap(), v2);
    }

    fn error_of(text: &str) -> String {
        let msg = text.parse::<Genotype>().unwrap_err().to_string();
        assert!(!msg.contains('\n'), "not one line: {msg}");
        msg
    }

    #[test]
    fn bad_genotypes_name_the_node_or_field() {
        let v2 = Genotype::named("DARTS_V2").unwrap().to_string();
        let cases = [
            // A node with one input (the last pair of the normal list removed).
            (v2.replacen(", ('dil_conv_3x3', 2)", "", 1), "normal, node 5: has 1 input, expected 2"),
            // A node with three inputs.
            (v2.replacen("('dil_conv_3x3', 2)", "('dil_conv_3x3', 2), ('sep_conv_3x3', 3)", 1), "normal: has 9 ('op', input) pairs, expected 8"),
            (v2.replacen("('dil_conv_3x3', 2)", "('dil_conv_3x3', 5)", 1), "normal, node 5: input 5 is not before the node: node 5 reads 0..=4"),
            (v2.replacen("('max_pool_3x3', 0)", "('max_pool_3x3', 2)", 1), "reduce, node 2: input 2 is not before the node"),
            (v2.replacen("'dil_conv_3x3'", "'conv_3x3'", 1), "normal, node 5: unknown op 'conv_3x3': expected one of max_pool_3x3, avg_pool_3x3, skip_connect, sep_conv_3x3, sep_conv_5x5, dil_conv_3x3, dil_conv_5x5"),
            (v2.replacen("'dil_conv_3x3'", "'nor_conv_3x3'", 1), "unknown op 'nor_conv_3x3'"),
            (v2.replacen("'dil_conv_3x3'", "'none'", 1), "normal, node 5: 'none' cannot be kept"),
            (v2.replacen("('skip_connect', 0), ('dil_conv_3x3', 2)", "('skip_connect', 2), ('dil_conv_3x3', 2)", 1), "normal, node 5: both entries read input 2"),
            (v2.replacen(", normal_concat=[2, 3, 4, 5]", "", 1), "normal_concat: is missing: expected normal_concat=[2, 3, 4, 5] (or range(2, 6))"),
            (v2.replacen("reduce_concat=[2, 3, 4, 5]", "reduce_concat=range(3, 6)", 1), "reduce_concat: got [3, 4, 5], expected the 4 intermediate nodes [2, 3, 4, 5]"),
            (v2.replacen("normal_concat=[2, 3, 4, 5]", "normal_concat=[2, 3, 4, 5, 6]", 1), "normal_concat: got [2, 3, 4, 5, 6]"),
            (v2.replacen("normal_concat=[2, 3, 4, 5]", "normal_concat='all'", 1), "normal_concat: expected [2, 3, 4, 5] or range(2, 6), got 'all'"),
            (v2.replacen("normal=", "normals=", 1), "normals: unknown field: expected one of normal, normal_concat, reduce, reduce_concat"),
            (v2.replacen("reduce=", "normal=", 1), "normal: given twice"),
            (v2.replacen("('sep_conv_3x3', 0)", "('sep_conv_3x3')", 1), "normal, node 2: expected ('op', input), got a tuple of 1"),
            ("Genotype(normal=[('sep_conv_3x3', 0)".into(), "text: at the end (character 37): expected ']' or ','"),
            ("Genotype(normal=[], normal_concat=[2, 3, 4, 5])".into(), "normal: has 0 nodes (0 pairs), expected 4"),
            ("Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1)] * 4, reduce=[], normal_concat=[2], reduce_concat=[2])".into(), "at character 60: unexpected '*'"),
            ("DARTS_V3".into(), "text: 'DARTS_V3' is not a published genotype: expected one of DARTS_V1, DARTS_V2, PDARTS"),
            ("|nor_conv_3x3~0|".into(), "text: at character 1: unexpected '|'"),
            ("".into(), "text: at the end (character 1): expected a value"),
            ("[1, 2]".into(), "text: expected Genotype(normal=[('op', input), ...]"),
            ("Genome(normal=[])".into(), "got a call of 'Genome'"),
        ];
        for (text, expected) in cases {
            let msg = error_of(&text);
            assert!(msg.starts_with("bad genotype: "), "{msg}");
            assert!(msg.contains(expected), "for {text}\n got: {msg}\n expected: {expected}");
        }
    }

    #[test]
    fn only_two_input_nodes_are_genotypes() {
        let mut ops = Genotype::named("DARTS_V1").unwrap().to_ops();
        ops[cell::edge_index(4, 3)] = Op::SepConv { kernel: 5 };
        let msg = Genotype::from_ops(&ops).unwrap_err().to_string();
        assert!(msg.contains("normal, node 4: has 3 inputs other than none"), "{msg}");
        let msg = Genotype::from_ops(&[Op::None; 28]).unwrap_err().to_string();
        assert!(msg.contains("normal, node 2: has 0 inputs"), "{msg}");
    }
}
