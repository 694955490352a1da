//! The pieces a latency table times add up to the graph of every child: the nodes of a child's
//! inference graph are exactly the nodes of the pieces `SpaceDef::composition` lists, counted with
//! their multiplicities — dead `nb201` nodes (every outgoing edge `none`) and the ops feeding them
//! left out, nodes with no input a zeros piece, single-input nodes no sum at all.
use std::collections::BTreeMap;

mod common;

use pwsnas_models::{Arch, Nb201Params, Op, PieceKey, Space, SpaceKind, Supernet};
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

/// Checks, for each of `children`, that the pieces of its composition have its graph's nodes.
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
        let actual = op_counts(&net.graph(arch, "child"));
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
