//! The topology of a DARTS cell (Liu et al., ICLR 2019), shared by the normal and the reduction cell:
//! nodes, edges, their fixed order, and the input→output paths of the angle metric.
//!
//! A cell has two inputs, nodes 0 and 1 (the outputs of the two previous cells, preprocessed), and
//! [`NODES`] intermediate nodes 2..=5. Node `j` sums one op on each edge `j<-i` from every earlier node
//! `i < j`, so the cell has 2 + 3 + 4 + 5 = [`EDGES`] edges; its output is the concatenation of the four
//! intermediate nodes. Edges are ordered node by node, inputs ascending — node 2's `2<-0`, `2<-1`, then
//! node 3's `3<-0`, `3<-1`, `3<-2`, … — which is the row order of the DARTS code's architecture
//! parameters (`alphas_normal`, `alphas_reduce`).

/// Intermediate nodes of a cell.
pub const NODES: usize = 4;
/// Cell inputs (nodes 0 and 1).
pub const INPUTS: usize = 2;
/// Edges of a cell: node `j` (2..=5) has `j` incoming edges.
pub const EDGES: usize = 14;
/// The intermediate nodes whose concatenation is the cell output (`normal_concat`/`reduce_concat`).
pub const CONCAT: [usize; NODES] = [2, 3, 4, 5];
/// The last node: every maximal path ends there.
pub const LAST: usize = INPUTS + NODES - 1;

/// Index of the edge `to<-from` in a cell (`2 ≤ to ≤ 5`, `from < to`).
pub fn edge_index(to: usize, from: usize) -> usize {
    debug_assert!((INPUTS..=LAST).contains(&to) && from < to, "no edge {to}<-{from}");
    (to - 2) * (to + 1) / 2 + from
}

/// The edges `(to, from)` in their fixed order.
pub fn edges() -> Vec<(usize, usize)> {
    (INPUTS..=LAST).flat_map(|j| (0..j).map(move |i| (j, i))).collect()
}

/// One input→output path of a cell: the cell input it starts at, and its edges in order.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CellPath {
    pub input: usize,
    pub edges: Vec<usize>,
}

/// The 16 input→output paths of a cell, in a fixed order (input 0 first; then depth-first, lower
/// node first), for the angle metric (ABS, Hu et al., ECCV 2020; docs/method.md).
///
/// How a path "to the output" is defined: the cell output concatenates every intermediate node, so
/// each node is an output of the DAG; a path is a **maximal** walk along edges, from a cell input
/// until no edge leaves, which is at the last node 5 since every earlier node feeds it. A maximal path
/// is a cell input plus any subset of the middle nodes {2, 3, 4} visited in increasing order, then 5:
/// 2 inputs × 2³ subsets = 16 paths. Every one of the 14 edges lies on at least one of them. A walk
/// that stops early (e.g. 0→2, feeding the concatenation directly) is a prefix of a maximal path, so
/// counting it would repeat weights the vector already holds rather than add an op.
pub fn paths() -> Vec<CellPath> {
    fn walk(node: usize, edges: &mut Vec<usize>, input: usize, out: &mut Vec<CellPath>) {
        if node == LAST {
            out.push(CellPath { input, edges: edges.clone() });
            return;
        }
        for next in (node + 1).max(INPUTS)..=LAST {
            edges.push(edge_index(next, node));
            walk(next, edges, input, out);
            edges.pop();
        }
    }
    let mut out = Vec::new();
    for input in 0..INPUTS {
        walk(input, &mut Vec::new(), input, &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edges_follow_the_darts_alpha_order() {
        let e = edges();
        assert_eq!(e.len(), EDGES);
        assert_eq!(&e[..5], [(2, 0), (2, 1), (3, 0), (3, 1), (3, 2)]);
        assert_eq!(e[EDGES - 1], (5, 4));
        for (k, &(j, i)) in e.iter().enumerate() {
            assert_eq!(edge_index(j, i), k);
        }
    }

    #[test]
    fn sixteen_maximal_paths_cover_every_edge() {
        let p = paths();
        assert_eq!(p.len(), 16);
        // 0→5 directly, 0→2→5, 0→2→3→5, …: the first four of input 0, depth-first.
        let e = edge_index;
        assert_eq!(p[0], CellPath { input: 0, edges: vec![e(2, 0), e(3, 2), e(4, 3), e(5, 4)] });
        assert_eq!(p[1].edges, [e(2, 0), e(3, 2), e(5, 3)]);
        assert_eq!(p[7], CellPath { input: 0, edges: vec![e(5, 0)] });
        assert_eq!(p[8].input, 1);
        assert!(p.iter().all(|path| {
            let first = edges()[path.edges[0]];
            let last = edges()[*path.edges.last().unwrap()];
            first.1 == path.input && last.0 == LAST
        }));
        let mut covered = [false; EDGES];
        for path in &p {
            for &k in &path.edges {
                covered[k] = true;
            }
        }
        assert!(covered.iter().all(|&c| c));
        let distinct: std::collections::HashSet<&CellPath> = p.iter().collect();
        assert_eq!(distinct.len(), 16);
    }
}
