//! The pieces a latency table times add up to the graph of every child: the nodes of a child's
//! inference graph (that of its stand-alone network, which `pwsnas export` lowers) are exactly the
//! nodes of the pieces `SpaceDef::composition` lists, counted with their multiplicities — dead
//! `nb201` nodes (every outgoing edge `none`) and the ops feeding them left out, nodes with no input
//! a zeros piece, single-input nodes no sum at all; `darts` pools on one value computed once, and
//! the pieces of its search network lowered as those of the evaluation network (no BN after pools).
use std::collections::BTreeMap;

mod common;

use pwsnas_models::{Arch, DartsParams, Genotype, Nb201Params, Op, PieceKey, Space, SpaceKind, Supernet};
use pwsnas_onnx::Graph;
use rand::SeedableRng;
use tch::Device;

fn op_counts(g: &Graph) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for t in g.op_types() {
        *out.entry(t).or_default() += 1;
    }
    out
}

/// Checks, for each of `children`, that the pieces of its composition (pieces as the supernet
/// lowers them, as the latency table measures them) have the nodes of its stand-alone network's
/// graph.
fn pieces_add_up(kind: &SpaceKind, children: &[Arch]) {
    let net = Supernet::new(&Space::full(kind.clone()), Device::Cpu);
    let piece_counts: BTreeMap<PieceKey, BTreeMap<String, usize>> =
        net.pieces().iter().map(|p| (p.key, op_counts(&net.piece_graph(p.key, 1)))).collect();
    for arch in children {
        let mut expected: BTreeMap<String, usize> = BTreeMap::new();
        for (key, n) in kind.composition(arch) {
            let counts =
                piece_counts.get(&key).unwrap_or_else(|| panic!("{key} is not a piece of the network"));
            for (op, c) in counts {
                *expected.entry(op.clone()).or_default() += c * n;
            }
        }
        let actual = op_counts(&Supernet::standalone(kind, arch, Device::Cpu).graph(arch, "child"));
        assert_eq!(actual, expected, "{}", kind.format_arch(arch));
    }
}

#[test]
fn nb201_pieces_add_up_to_every_child() {
    let kind = SpaceKind::new(Nb201Params {
        nodes: 3,
        channels: 4,
        cells_per_stage: 2,
        input_size: 8,
        input_channels: 1,
        classes: 4,
        ..Nb201Params::default()
    });
    pieces_add_up(&kind, &Space::full(kind.clone()).enumerate());
    let kind4 = SpaceKind::new(Nb201Params {
        channels: 4,
        cells_per_stage: 1,
        input_size: 8,
        classes: 4,
        ..Nb201Params::default()
    });
    let space = Space::full(kind4.clone());
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let mut children: Vec<Arch> = (0..150).map(|_| space.sample(&mut rng)).collect();
    // A dead node: node 1 feeds the output only through `none` edges, so its conv is dropped.
    children.push(
        kind4
            .parse_arch("|nor_conv_3x3~0|+|avg_pool_3x3~0|none~1|+|skip_connect~0|none~1|nor_conv_1x1~2|")
            .unwrap(),
    );
    // Values computed once: node 1 is node 0 (skip), so both pools are one; node 2 is dead.
    children.push(
        kind4
            .parse_arch(
                "|skip_connect~0|+|skip_connect~0|nor_conv_1x1~1|+|avg_pool_3x3~0|avg_pool_3x3~1|none~2|",
            )
            .unwrap(),
    );
    pieces_add_up(&kind4, &children);
    let shared = kind4.composition(&children[children.len() - 1]);
    assert!(shared.contains(&(PieceKey::Op { at: 2, op: Op::AvgPool3x3 }, 1)), "{shared:?}");
    assert!(!shared.iter().any(|(k, _)| matches!(k, PieceKey::Op { op: Op::NorConv1x1, .. })), "{shared:?}");
    let dead = kind4.composition(&children[children.len() - 2]);
    assert!(!dead.iter().any(|(k, _)| *k == PieceKey::Op { at: 0, op: Op::NorConv3x3 }), "{dead:?}");
    assert!(dead.contains(&(PieceKey::Merge { stage: 1, terms: 2 }, 1)), "{dead:?}");
}

#[test]
fn mobile_pieces_add_up_to_children() {
    let kind = common::tiny_mobile();
    let space = Space::full(kind.clone());
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    let children: Vec<Arch> = (0..40).map(|_| space.sample(&mut rng)).collect();
    pieces_add_up(&kind, &children);
}

/// A darts space with both reduction cells and a normal cell in every stage (L = 5: reductions
/// at cells 1 and 3), or none in stage 1 (L = 4: reductions at cells 1 and 2).
fn tiny_darts(layers: usize) -> SpaceKind {
    SpaceKind::new(DartsParams {
        channels: 2,
        layers,
        classes: 3,
        input_channels: 1,
        input_size: 8,
        ..DartsParams::default()
    })
}

#[test]
fn darts_pieces_add_up_to_genotypes() {
    for layers in [4, 5] {
        let kind = tiny_darts(layers);
        let mut children: Vec<Arch> = ["DARTS_V1", "DARTS_V2", "PDARTS"]
            .iter()
            .map(|n| Arch { ops: Genotype::named(n).unwrap().to_ops() })
            .collect();
        let space = Space::full(kind.clone());
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(layers as u64);
        children.extend((0..30).map(|_| space.sample_child(&mut rng)));
        // Every node of both cells reads a pool of input 1 (node 2 also input 0 through a sep_conv):
        // the lowering computes each pool of input 1 once per cell, not four times.
        let pooled = kind
            .parse_arch(&format!(
                "Genotype(normal=[{n}], normal_concat=range(2, 6), reduce=[{n}], reduce_concat=range(2, 6))",
                n = "('sep_conv_3x3', 0), ('max_pool_3x3', 1), ('max_pool_3x3', 1), ('avg_pool_3x3', 2), \
                     ('max_pool_3x3', 1), ('avg_pool_3x3', 3), ('max_pool_3x3', 1), ('skip_connect', 4)"
            ))
            .unwrap();
        children.push(pooled.clone());
        for child in &children {
            space.check_child(child).unwrap();
        }
        pieces_add_up(&kind, &children);

        let pieces = kind.composition(&pooled);
        let count = |key: PieceKey| pieces.iter().find(|(k, _)| *k == key).map_or(0, |(_, n)| *n);
        let normal_cells = layers - 2;
        assert_eq!(count(PieceKey::Op { at: 0, op: Op::MaxPool3x3 }), 1, "{pieces:?}");
        assert_eq!(count(PieceKey::Reduce { stage: 1, op: Op::MaxPool3x3 }), 1, "{pieces:?}");
        assert_eq!(count(PieceKey::Reduce { stage: 2, op: Op::SkipConnect }), 0, "skip 5<-4 is at stride 1");
        let adds: usize = (0..3).map(|stage| count(PieceKey::Merge { stage, terms: 2 })).sum();
        assert_eq!(adds, 4 * layers);
        let sep: usize = (0..3).map(|at| count(PieceKey::Op { at, op: Op::SepConv { kernel: 3 } })).sum();
        assert_eq!(sep, normal_cells, "one stride-1 sep_conv per normal cell");
        assert_eq!(count(PieceKey::Preprocess { cell: layers - 1, input: 1 }), 1);
    }
}

#[test]
fn darts_pieces_are_those_of_the_evaluation_network() {
    let kind = tiny_darts(4);
    let net = Supernet::new(&Space::full(kind.clone()), Device::Cpu);
    let pieces = net.pieces();
    let piece = |key: PieceKey| *pieces.iter().find(|p| p.key == key).unwrap_or_else(|| panic!("no {key}"));
    // The search network puts a BN after each pool; its pieces do not (the exported child has none).
    assert_eq!(net.piece_graph(PieceKey::Op { at: 1, op: Op::AvgPool3x3 }, 2).op_types(), ["AveragePool"; 2]);
    let pool = piece(PieceKey::Reduce { stage: 2, op: Op::MaxPool3x3 });
    assert_eq!((pool.input, pool.chainable), ([8, 4, 4], false));
    assert_eq!(net.piece_graph(pool.key, 1).op_types(), ["MaxPool"]);
    // skip_connect at stride 2 is a FactorizedReduce (its BN in two halves); at stride 1 no piece.
    let reduce = PieceKey::Reduce { stage: 1, op: Op::SkipConnect };
    assert_eq!(
        net.piece_graph(reduce, 1).op_types(),
        ["Relu", "Slice", "Conv", "BatchNormalization", "Conv", "BatchNormalization", "Concat"]
    );
    assert!(!pieces.iter().any(|p| matches!(p.key, PieceKey::Op { op: Op::SkipConnect | Op::None, .. })));
    assert!(!pieces.iter().any(|p| matches!(p.key, PieceKey::Reduce { op: Op::None, .. })));
    // Cell 3 follows the reduction cell 2: its input 0 (cell 1's output, 4×4) is reduced.
    let pre = piece(PieceKey::Preprocess { cell: 3, input: 0 });
    assert_eq!(pre.input, [16, 4, 4]);
    assert!(net.piece_graph(pre.key, 1).op_types().contains(&"Slice".to_string()));
    assert_eq!(piece(PieceKey::Preprocess { cell: 3, input: 1 }).input, [32, 2, 2]);
    let sep = piece(PieceKey::Op { at: 2, op: Op::SepConv { kernel: 5 } });
    assert_eq!((sep.input, sep.chainable), ([8, 2, 2], true));
    assert_eq!(net.piece_graph(PieceKey::Merge { stage: 0, terms: 2 }, 3).op_types(), ["Add"; 3]);
    assert_eq!(net.piece_graph(PieceKey::Concat { stage: 1 }, 1).op_types(), ["Concat"]);
    assert_eq!(piece(PieceKey::Head).input, [32, 2, 2]);
    // Every key a child's composition lists is a piece the network times.
    let space = Space::full(kind.clone());
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
    for _ in 0..20 {
        for (key, _) in kind.composition(&space.sample_child(&mut rng)) {
            assert!(pieces.iter().any(|p| p.key == key), "{key}");
        }
    }
}

#[test]
fn chains_repeat_pieces_that_keep_their_shape() {
    let kind = SpaceKind::new(Nb201Params {
        channels: 4,
        cells_per_stage: 1,
        input_size: 8,
        ..Nb201Params::default()
    });
    let net = Supernet::new(&Space::full(kind), Device::Cpu);
    let pieces = net.pieces();
    let conv = pieces.iter().find(|p| p.key == PieceKey::Op { at: 1, op: Op::NorConv3x3 }).unwrap();
    assert!(conv.chainable);
    assert_eq!(conv.input, [8, 4, 4]);
    assert_eq!(net.piece_graph(conv.key, 3).op_types(), ["Conv", "BatchNormalization"].repeat(3));
    assert_eq!(net.piece_graph(PieceKey::Relu { stage: 1 }, 2).op_types(), ["Relu", "Relu"]);
    assert_eq!(net.piece_graph(PieceKey::Merge { stage: 0, terms: 3 }, 2).op_types(), ["Sum", "Sum"]);
    assert_eq!(net.piece_graph(PieceKey::Merge { stage: 2, terms: 0 }, 1).op_types(), ["Clip"]);
    for key in [PieceKey::Stem, PieceKey::Reduction(1), PieceKey::Reduction(2), PieceKey::Head] {
        let piece = pieces.iter().find(|p| p.key == key).unwrap();
        assert!(!piece.chainable, "{key}");
    }
    assert!(pieces.iter().all(|p| !matches!(p.key, PieceKey::Op { op: Op::None | Op::SkipConnect, .. })));
}

#[test]
#[should_panic(expected = "cannot be chained")]
fn a_piece_that_changes_its_shape_is_not_chained() {
    let kind = SpaceKind::new(Nb201Params {
        channels: 4,
        cells_per_stage: 1,
        input_size: 8,
        ..Nb201Params::default()
    });
    Supernet::new(&Space::full(kind), Device::Cpu).piece_graph(PieceKey::Reduction(1), 2);
}
